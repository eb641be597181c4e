/**
 * Runs a lifecycle action as a journaled operation: an `operations` row is opened,
 * updated after every completed step (and a crash may be injected there in tests), and
 * closed as succeeded or failed with the error.
 */
import type { OperationKind } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { OperationFailedError, SiloError, UnavailableError } from '../lib/errors.js';
import { safeErrorText } from '../lib/error-text.js';
import { faultPoint } from '../lib/faults.js';
import { assertLockHeld, LockLostError } from './tenant-lock.js';

/** Handle given to the body of an operation. */
export interface OperationHandle {
  id: number;
  kind: OperationKind;
  /**
   * Records that `step` completed (then a configured fault may kill the process), then
   * checks the tenant lock the operation runs under is still held.
   * @throws LockLostError `LOCK_LOST`
   */
  step(step: string): Promise<void>;
  /** Merges facts into the operation's details (never secrets). */
  note(details: Record<string, unknown>): Promise<void>;
}

/** What starts an operation. */
export interface OperationStart {
  kind: OperationKind;
  tenantId: number | null;
  actor: string;
  details?: Record<string, unknown>;
}

/**
 * Runs `body` as an operation.
 * @param onFailure called with the error before the operation is closed as failed (e.g. to mark the tenant)
 * @returns what `body` returns
 * @throws OperationFailedError naming the operation id and the last completed step, with the cause;
 *         a {@link SiloError} from `body` with status < 500, or an {@link UnavailableError} (503), is
 *         rethrown as it is (after the row is closed); {@link LockLostError} `LOCK_LOST` when the
 *         tenant lock was lost (checked after every step; `onFailure` is not called then)
 */
export async function runOperation<T>(
  ctx: SiloContext,
  start: OperationStart | { existingId: number; kind: OperationKind },
  body: (op: OperationHandle) => Promise<T>,
  onFailure?: (err: unknown, lastStep: string | null) => Promise<void>,
): Promise<T> {
  const ops = ctx.catalog.operations;
  const id = 'existingId' in start ? start.existingId : await ops.start(start);
  let lastStep: string | null = null;
  const handle: OperationHandle = {
    id,
    kind: start.kind,
    async step(step) {
      await ops.step(id, step);
      lastStep = step;
      ctx.log.debug({ operation: id, kind: start.kind, step }, 'operation step completed');
      faultPoint(ctx.config, start.kind, step);
      // Before the next step: is the tenant lock still ours? (tenant-lock.ts)
      await assertLockHeld();
    },
    note: (details) => ops.mergeDetails(id, details),
  };
  try {
    const result = await body(handle);
    await ops.succeed(id);
    return result;
  } catch (err) {
    const message = safeErrorText(err);
    ctx.log.error({ operation: id, kind: start.kind, step: lastStep, err }, 'operation failed');
    try {
      // A lost lock means another runner may own the tenant now: leave the tenant alone.
      if (onFailure && !(err instanceof LockLostError)) await onFailure(err, lastStep);
      await ops.fail(id, message);
    } catch (journalErr) {
      ctx.log.error({ operation: id, err: journalErr }, 'could not record the failure of an operation');
    }
    // Explained failures keep their code: client errors, and a dependency that is down (503).
    if (err instanceof SiloError && (err.status < 500 || err instanceof UnavailableError)) throw err;
    throw new OperationFailedError(
      `${start.kind} failed after step ${lastStep ?? '(none)'}: ${message} (operation ${id})`,
      { operationId: id, kind: start.kind, step: lastStep },
      err,
    );
  }
}
