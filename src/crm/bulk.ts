/**
 * Bulk actions on the rows of one resource (`POST /api/v1/<resource>/bulk`): delete,
 * restore or update up to {@link MAX_BULK_IDS} rows, all or nothing, in ONE transaction.
 * Each row runs the resource service's own single-row code (the same checks, writes,
 * cascades and activity rows as the single-row route) inside a savepoint; a row that
 * fails with an expected error (a {@link SiloError}: not found, conflict, invalid
 * reference, ...) is rolled back to its savepoint and recorded, the others go on, so the
 * answer lists EVERY failing id; then, if any failed, the whole transaction is rolled
 * back and nothing is changed. Rows are handled in ascending id order (the order in which
 * their locks are taken, so two bulk requests lock in one order). Any other error (a
 * deadlock, a lost connection) rolls back everything and propagates.
 */
import type { Knex } from 'knex';
import { z } from 'zod';
import { SiloError } from '../lib/errors.js';

export const BULK_ACTIONS = ['delete', 'restore', 'update'] as const;
export type BulkAction = (typeof BULK_ACTIONS)[number];
/** The most ids one bulk request may name. */
export const MAX_BULK_IDS = 500;

/** One row that failed: its id, the error code and message its single-row route would answer. */
export interface BulkFailure {
  id: number;
  code: string;
  detail: string;
}

/** A bulk action failed on some rows and changed nothing (HTTP 409 `BULK_FAILED`, with `failures`). */
export class BulkFailedError extends SiloError {
  constructor(action: BulkAction, total: number, failures: BulkFailure[]) {
    super(`${failures.length} of ${total} rows cannot be ${action === 'update' ? 'updated' : `${action}d`}; nothing was changed`, {
      code: 'BULK_FAILED',
      status: 409,
      details: { failures },
      members: { failures },
    });
  }
}

/**
 * Single-row operations of a resource, each run in the caller's transaction (a savepoint
 * of the bulk's), throwing the resource's typed errors.
 */
export interface BulkOps<P> {
  /** What the single DELETE does (with its cascades). @throws NotFoundError for a missing or deleted row */
  remove(trx: Knex.Transaction, id: number): Promise<void>;
  /** What the single restore does; a row that is not deleted is an error here. @throws ConflictError `NOT_DELETED` */
  restore(trx: Knex.Transaction, id: number): Promise<void>;
  /** What the single PATCH does, without a version check (a bulk names no versions). */
  update(trx: Knex.Transaction, id: number, patch: P): Promise<void>;
}

/** A bulk request as validated by {@link bulkBody}. */
export interface BulkRequest<P> {
  action: BulkAction;
  ids: number[];
  patch?: P | undefined;
}

const id = z
  .number()
  .int()
  .positive()
  .max(2 ** 53 - 1);

/**
 * The body schema of a resource's bulk route: `action`, `ids` (1 to 500, unique) and, for
 * `update` only (and then required, with at least one field), `patch` validated by
 * `patch` (the PATCH body's schema without `version`).
 */
export function bulkBody<P extends z.ZodObject>(patch: P) {
  return z
    .strictObject({
      action: z.enum(BULK_ACTIONS),
      ids: z
        .array(id)
        .min(1)
        .max(MAX_BULK_IDS)
        .refine((ids) => new Set(ids).size === ids.length, 'ids must be unique')
        .describe(`1 to ${MAX_BULK_IDS} distinct ids`),
      patch: patch
        .refine((p) => Object.values(p).some((v) => v !== undefined), 'patch needs at least one field')
        .optional()
        .describe('the fields to set (update only): the fields of the PATCH of this resource'),
    })
    .superRefine((b, ctx) => {
      if (b.action === 'update' && b.patch === undefined) ctx.addIssue({ code: 'custom', path: ['patch'], message: 'update needs a patch' });
      if (b.action !== 'update' && b.patch !== undefined) ctx.addIssue({ code: 'custom', path: ['patch'], message: `${b.action} takes no patch` });
    });
}

/**
 * Runs a bulk action all or nothing (see the module comment).
 * @returns the action and the number of rows changed (= ids.length)
 * @throws BulkFailedError (409 `BULK_FAILED`) listing every failing id; nothing is changed then
 */
export async function runBulk<P>(knex: Knex, ops: BulkOps<P>, req: BulkRequest<P>): Promise<{ action: BulkAction; count: number }> {
  const ids = [...req.ids].sort((a, b) => a - b);
  await knex.transaction(async (trx) => {
    const failures: BulkFailure[] = [];
    for (const rowId of ids) {
      try {
        await trx.transaction(async (sp) => {
          if (req.action === 'delete') await ops.remove(sp, rowId);
          else if (req.action === 'restore') await ops.restore(sp, rowId);
          else await ops.update(sp, rowId, req.patch!);
        });
      } catch (err) {
        if (!(err instanceof SiloError) || err.status >= 500) throw err;
        failures.push({ id: rowId, code: err.code, detail: err.message });
      }
    }
    if (failures.length) throw new BulkFailedError(req.action, ids.length, failures);
  });
  return { action: req.action, count: ids.length };
}
