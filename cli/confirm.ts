/**
 * Confirmation of the destructive tenant commands (`delete`, `recreate`, `restore`), the
 * same rule for each, and never a wait for input that cannot come:
 *
 * | given                          | with a backup taken first | without a backup (`--no-backup`) |
 * | ------------------------------ | ------------------------- | -------------------------------- |
 * | `--confirm <slug>` (the slug)  | runs                      | runs                             |
 * | `--confirm <other>`            | refused, exit 2           | refused, exit 2                  |
 * | `--yes`                        | runs                      | refused, exit 2: add `--confirm <slug>` |
 * | nothing, on a terminal         | asks to type the slug     | asks to type the slug            |
 * | nothing, stdin not a terminal  | refused, exit 2           | refused, exit 2                  |
 *
 * Refusals happen before anything is changed. A wrong answer typed at the prompt is
 * `NOT_CONFIRMED` (exit 1), as before.
 */
import { ValidationError } from '../src/lib/errors.js';
import { confirmTyped } from './runtime.js';

/** What the operator gave on the command line. */
export interface DestructiveConfirmation {
  /** The tenant the command acts on. */
  slug: string;
  /** What the prompt says the command does. */
  question: string;
  /** `--yes` was given. */
  yes?: boolean | undefined;
  /** The value of `--confirm`, if given. */
  confirm?: string | undefined;
  /** false with `--no-backup`: the data is lost for good, so `--yes` is not enough. */
  backedUp: boolean;
}

/**
 * Decides whether a destructive command may run (see the module comment), asking on a
 * terminal when nothing on the command line decides it.
 * @throws ValidationError (exit 2) `CONFIRMATION_MISMATCH` (a `--confirm` other than the slug),
 *         `CONFIRMATION_REQUIRED` (`--yes` without a backup, or no terminal to ask on);
 *         SiloError `NOT_CONFIRMED` (exit 1) when the typed answer differs
 */
export async function confirmDestructive(c: DestructiveConfirmation): Promise<void> {
  const flag = `--confirm ${c.slug}`;
  if (c.confirm !== undefined) {
    if (c.confirm !== c.slug) {
      throw new ValidationError(
        `--confirm "${c.confirm}" does not name this tenant: give ${flag} to confirm; nothing was changed`,
        { field: 'confirm', expected: c.slug },
        'CONFIRMATION_MISMATCH',
      );
    }
    return;
  }
  if (c.yes && c.backedUp) return;
  if (c.yes) {
    throw new ValidationError(
      `--yes is not enough with --no-backup (the data would be lost for good): add ${flag}; nothing was changed`,
      { field: 'confirm', expected: c.slug },
      'CONFIRMATION_REQUIRED',
    );
  }
  if (!process.stdin.isTTY) {
    const skip = c.backedUp ? `--yes or ${flag}` : flag;
    throw new ValidationError(
      `no terminal to confirm on: give ${skip} to run without a question; nothing was changed`,
      { field: 'confirm', expected: c.slug },
      'CONFIRMATION_REQUIRED',
    );
  }
  await confirmTyped(c.question, c.slug, c.backedUp ? `--yes or ${flag}` : flag);
}
