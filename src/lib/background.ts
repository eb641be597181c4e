/**
 * Work a request starts and does not wait for (mails sent after the answer): tracked so
 * that shutdown waits for it (the app's `onClose`) and tests can await it instead of
 * sleeping.
 */

/** A set of running tasks. */
export class BackgroundTasks {
  private readonly running = new Set<Promise<void>>();

  /** Starts `task` now. It must handle its own errors: a rejection is swallowed here. */
  run(task: () => Promise<void>): void {
    const p = task().catch(() => undefined);
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }

  /** Tasks running now. */
  get size(): number {
    return this.running.size;
  }

  /** Resolves once no task is running (also those started while waiting). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }
}
