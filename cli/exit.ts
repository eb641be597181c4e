/** Exit codes of `silo` (a module of its own so that the entry loads nothing else to use them). */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;
