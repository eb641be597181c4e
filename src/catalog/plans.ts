/**
 * Data access for `plans` (catalog migration 0014). Methods take an optional transaction.
 */
import type { Knex } from 'knex';
import { ConflictError } from '../lib/errors.js';
import { MysqlErrno, mysqlErrno } from '../lib/knex.js';
import type { Plan, PlanLimits } from './types.js';

interface PlanRow {
  name: string;
  max_users: number | string | null;
  max_contacts: number | string | null;
  max_attachment_bytes: number | string | null;
  requests_per_minute: number | string | null;
  created_at: Date;
  updated_at: Date;
}

const limit = (v: number | string | null): number | null => (v === null ? null : Number(v));

function toPlan(r: PlanRow): Plan {
  return {
    name: r.name,
    maxUsers: limit(r.max_users),
    maxContacts: limit(r.max_contacts),
    maxAttachmentBytes: limit(r.max_attachment_bytes),
    requestsPerMinute: limit(r.requests_per_minute),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

const COLUMN: Record<keyof PlanLimits, string> = {
  maxUsers: 'max_users',
  maxContacts: 'max_contacts',
  maxAttachmentBytes: 'max_attachment_bytes',
  requestsPerMinute: 'requests_per_minute',
};

/** Columns of the limits given (undefined: left as it is; null: unlimited). */
function limitColumns(patch: Partial<PlanLimits>): Record<string, number | null> {
  const row: Record<string, number | null> = {};
  for (const [k, v] of Object.entries(patch)) if (v !== undefined) row[COLUMN[k as keyof PlanLimits]] = v;
  return row;
}

/** The limits of a plan record (no name, no times). */
export function pickLimits(p: PlanLimits): PlanLimits {
  return { maxUsers: p.maxUsers, maxContacts: p.maxContacts, maxAttachmentBytes: p.maxAttachmentBytes, requestsPerMinute: p.requestsPerMinute };
}

/** Repository over `plans`. */
export function createPlansRepository(knex: Knex) {
  return {
    /** Every plan, by name. */
    async list(trx?: Knex.Transaction): Promise<Plan[]> {
      return (await (trx ?? knex)<PlanRow>('plans').orderBy('name')).map(toPlan);
    },

    /** The plan of this name, or undefined. */
    async find(name: string, trx?: Knex.Transaction): Promise<Plan | undefined> {
      const row: PlanRow | undefined = await (trx ?? knex)<PlanRow>('plans').where({ name }).first();
      return row && toPlan(row);
    },

    /**
     * Inserts a plan; limits not given are unlimited.
     * @throws ConflictError `PLAN_EXISTS` when the name is taken
     */
    async insert(plan: { name: string } & Partial<PlanLimits>, trx?: Knex.Transaction): Promise<void> {
      const { name, ...limits } = plan;
      try {
        await (trx ?? knex)('plans').insert({ name, ...limitColumns(limits) });
      } catch (err) {
        if (mysqlErrno(err) === MysqlErrno.DUP_ENTRY) throw new ConflictError(`plan "${name}" already exists`, 'PLAN_EXISTS', { plan: name });
        throw err;
      }
    },

    /**
     * Changes some limits of a plan (and its `updated_at`).
     * @returns false when there is no such plan
     */
    async update(name: string, patch: Partial<PlanLimits>, trx?: Knex.Transaction): Promise<boolean> {
      const db = trx ?? knex;
      const row = limitColumns(patch);
      // updated_at is set even when no value differs, so every API process re-reads the plan.
      const n = await db('plans')
        .where({ name })
        .update({ ...row, updated_at: db.raw('CURRENT_TIMESTAMP(3)') });
      return n > 0;
    },

    /** Number of tenants (not deleted) on each plan, by plan name. */
    async tenantCounts(trx?: Knex.Transaction): Promise<Map<string, number>> {
      const rows: Array<{ plan: string; n: number | string }> = await (trx ?? knex)('tenants')
        .whereNot('status', 'deleted')
        .groupBy('plan')
        .select('plan', knex.raw('COUNT(*) AS n'));
      return new Map(rows.map((r) => [r.plan, Number(r.n)]));
    },
  };
}

/** The plans repository type. */
export type PlansRepository = ReturnType<typeof createPlansRepository>;
