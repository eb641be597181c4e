/**
 * Data access for `operations`: one row per lifecycle action, updated as it reaches each
 * step, closed as `succeeded` or `failed` with the error.
 */
import type { Knex } from 'knex';
import type { Operation, OperationKind } from './types.js';

interface OperationRow {
  id: number;
  kind: OperationKind;
  tenant_id: number | null;
  actor: string;
  step: string | null;
  status: Operation['status'];
  error: string | null;
  details: unknown;
  started_at: Date;
  finished_at: Date | null;
  slug?: string | null;
}

function parseDetails(v: unknown): Record<string, unknown> | null {
  if (v == null) return null;
  if (typeof v === 'string') {
    try {
      return JSON.parse(v) as Record<string, unknown>;
    } catch {
      return { raw: v };
    }
  }
  return v as Record<string, unknown>;
}

function toOperation(r: OperationRow): Operation {
  return {
    id: Number(r.id),
    kind: r.kind,
    tenantId: r.tenant_id,
    tenantSlug: r.slug ?? null,
    actor: r.actor,
    step: r.step,
    status: r.status,
    error: r.error,
    details: parseDetails(r.details),
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}

/** Repository over `operations`. */
export function createOperationsRepository(knex: Knex) {
  return {
    /** Opens an operation in status `running`. @returns its id */
    async start(
      op: { kind: OperationKind; tenantId: number | null; actor: string; details?: Record<string, unknown> },
      trx?: Knex.Transaction,
    ): Promise<number> {
      const [id] = await (trx ?? knex)('operations').insert({
        kind: op.kind,
        tenant_id: op.tenantId,
        actor: op.actor,
        status: 'running',
        details: op.details ? JSON.stringify(op.details) : null,
      });
      return Number(id);
    },

    /** Records the step an operation has completed. */
    async step(id: number, step: string, trx?: Knex.Transaction): Promise<void> {
      await (trx ?? knex)('operations').where({ id }).update({ step });
    },

    /** Sets the tenant of an operation started before the tenant row existed. */
    async setTenant(id: number, tenantId: number, trx?: Knex.Transaction): Promise<void> {
      await (trx ?? knex)('operations').where({ id }).update({ tenant_id: tenantId });
    },

    /** Merges `details` into the operation's details. */
    async mergeDetails(id: number, details: Record<string, unknown>, trx?: Knex.Transaction): Promise<void> {
      const row = await (trx ?? knex)<OperationRow>('operations').where({ id }).first('details');
      const merged = { ...(parseDetails(row?.details) ?? {}), ...details };
      await (trx ?? knex)('operations')
        .where({ id })
        .update({ details: JSON.stringify(merged) });
    },

    /** Closes an operation as succeeded. */
    async succeed(id: number, details?: Record<string, unknown>, trx?: Knex.Transaction): Promise<void> {
      if (details) await this.mergeDetails(id, details, trx);
      await (trx ?? knex)('operations')
        .where({ id })
        .update({ status: 'succeeded', error: null, finished_at: knex.raw('CURRENT_TIMESTAMP(3)') });
    },

    /** Closes an operation as failed with the error message (the step stays the last completed one). */
    async fail(id: number, error: string, trx?: Knex.Transaction): Promise<void> {
      await (trx ?? knex)('operations')
        .where({ id })
        .update({ status: 'failed', error: error.slice(0, 60_000), finished_at: knex.raw('CURRENT_TIMESTAMP(3)') });
    },

    /**
     * Marks as failed the operations of a tenant still `running` (but `exceptId`): called by
     * the holder of the tenant lock, which proves their processes are gone.
     * @returns ids closed
     */
    async closeInterrupted(tenantId: number, byOperationId: number, trx?: Knex.Transaction): Promise<number[]> {
      const db = trx ?? knex;
      const rows: Array<{ id: number }> = await db('operations').where({ tenant_id: tenantId, status: 'running' }).whereNot('id', byOperationId).select('id');
      if (rows.length) {
        await db('operations')
          .whereIn(
            'id',
            rows.map((r) => r.id),
          )
          .update({
            status: 'failed',
            error: `interrupted: its process stopped before it finished (closed by operation ${byOperationId})`,
            finished_at: knex.raw('CURRENT_TIMESTAMP(3)'),
          });
      }
      return rows.map((r) => Number(r.id));
    },

    /** Running operations of a tenant. */
    async running(tenantId: number, trx?: Knex.Transaction): Promise<Operation[]> {
      return (await (trx ?? knex)<OperationRow>('operations').where({ tenant_id: tenantId, status: 'running' }).orderBy('id')).map(toOperation);
    },

    /** One operation with its tenant slug, or undefined. */
    async get(id: number, trx?: Knex.Transaction): Promise<Operation | undefined> {
      const row = await (trx ?? knex)('operations as o')
        .leftJoin('tenants as t', 't.id', 'o.tenant_id')
        .where('o.id', id)
        .first<OperationRow | undefined>('o.*', 't.slug');
      return row && toOperation(row);
    },

    /** Newest operations first, optionally of one tenant. `limit` rows at most (default 50). */
    async list(
      filter: { tenantId?: number; kind?: OperationKind; status?: Operation['status']; limit?: number; beforeId?: number } = {},
      trx?: Knex.Transaction,
    ): Promise<Operation[]> {
      const q = (trx ?? knex)<OperationRow>('operations as o')
        .leftJoin('tenants as t', 't.id', 'o.tenant_id')
        .select('o.*', 't.slug')
        .orderBy('o.id', 'desc')
        .limit(filter.limit ?? 50);
      if (filter.tenantId !== undefined) q.where('o.tenant_id', filter.tenantId);
      if (filter.kind) q.where('o.kind', filter.kind);
      if (filter.status) q.where('o.status', filter.status);
      if (filter.beforeId) q.where('o.id', '<', filter.beforeId);
      return (await q).map(toOperation);
    },

    /** The newest operation of a kind for a tenant, or undefined. */
    async latest(tenantId: number, kinds: readonly OperationKind[], trx?: Knex.Transaction): Promise<Operation | undefined> {
      const row = await (trx ?? knex)<OperationRow>('operations')
        .where({ tenant_id: tenantId })
        .whereIn('kind', kinds as OperationKind[])
        .orderBy('id', 'desc')
        .first();
      return row && toOperation(row);
    },
  };
}

/** The operations repository type. */
export type OperationsRepository = ReturnType<typeof createOperationsRepository>;
