/**
 * The activity log: one row per create, update, delete or restore of a company,
 * contact, deal, lead, user, pipeline stage, role, task or note, written in the caller's
 * transaction, so a change and its record commit or roll back together.
 */
import type { Knex } from 'knex';
import { pageOffset } from '../lib/validation.js';

/** Entities that are logged (the values of `activity_log.entity`). */
export const ACTIVITY_ENTITIES = ['company', 'contact', 'deal', 'lead', 'user', 'pipeline_stage', 'role', 'task', 'note'] as const;
export type ActivityEntity = (typeof ACTIVITY_ENTITIES)[number];
/** Logged actions. */
export type ActivityAction = 'create' | 'update' | 'delete' | 'restore';
/** `{ field: { old, new } }` in API (camelCase) field names. */
export type Changes = Record<string, { old: unknown; new: unknown }>;

/** Compares two API views field by field (ignoring `version`, `updatedAt`). */
export function diff(before: object | null, after: object | null): Changes {
  const b = before as Record<string, unknown> | null;
  const a = after as Record<string, unknown> | null;
  const changes: Changes = {};
  const keys = new Set([...Object.keys(b ?? {}), ...Object.keys(a ?? {})]);
  for (const k of keys) {
    if (k === 'version' || k === 'updatedAt' || k === 'createdAt') continue;
    const o = norm(b?.[k]);
    const n = norm(a?.[k]);
    if (JSON.stringify(o) !== JSON.stringify(n)) changes[k] = { old: o ?? null, new: n ?? null };
  }
  return changes;
}

function norm(v: unknown): unknown {
  return v instanceof Date ? v.toISOString() : v;
}

/** Writes one activity row in `trx`. */
export async function logActivity(
  trx: Knex.Transaction,
  row: { userId: number | null; action: ActivityAction; entity: ActivityEntity; entityId: number; changes: Changes },
): Promise<void> {
  await trx('activity_log').insert({
    user_id: row.userId,
    action: row.action,
    entity: row.entity,
    entity_id: row.entityId,
    changes: JSON.stringify(row.changes),
  });
}

/** An activity row as the API shows it. */
export interface Activity {
  id: number;
  userId: number | null;
  action: ActivityAction;
  entity: ActivityEntity;
  entityId: number;
  changes: Changes;
  createdAt: Date;
}

/** Newest first, optionally of one entity (and id). */
export async function listActivity(
  knex: Knex,
  q: { entity?: ActivityEntity; entityId?: number; userId?: number; page: number; pageSize: number },
): Promise<{ data: Activity[]; total: number }> {
  const base = knex('activity_log');
  if (q.entity) base.where('entity', q.entity);
  if (q.entityId) base.where('entity_id', q.entityId);
  if (q.userId) base.where('user_id', q.userId);
  const [rows, count] = await Promise.all([
    base.clone().orderBy('id', 'desc').limit(q.pageSize).offset(pageOffset(q.page, q.pageSize)).select('*'),
    base.clone().count({ n: '*' }).first(),
  ]);
  return {
    total: Number(count?.n ?? 0),
    data: rows.map(toActivity),
  };
}

/** Maps an `activity_log` row to the API view (`changes` parsed from its JSON). */
export function toActivity(r: Record<string, unknown>): Activity {
  return {
    id: Number(r.id),
    userId: r.user_id === null ? null : Number(r.user_id),
    action: r.action as ActivityAction,
    entity: r.entity as ActivityEntity,
    entityId: Number(r.entity_id),
    changes: (typeof r.changes === 'string' ? JSON.parse(r.changes) : (r.changes ?? {})) as Changes,
    createdAt: r.created_at as Date,
  };
}
