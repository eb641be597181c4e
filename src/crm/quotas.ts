/**
 * Plan limits inside a tenant database: a create that would take the tenant past its
 * plan's limit is refused (403 `QUOTA_EXCEEDED`), checked in the create's own transaction
 * so that racing creates cannot both pass, and the tenant's usage.
 *
 * What counts: active users (a deactivated user does not), live contacts (soft-deleted
 * ones do not; restoring one counts as a create), and the sizes of all attachment rows
 * (attachments are deleted for good, and their objects stay in S3 while the row exists,
 * also when the record they belong to is soft-deleted).
 *
 * How a create is serialized (tenant migration 0012): it locks its quota's row of
 * `quota_locks` FOR UPDATE, then counts with a plain (consistent) read, then inserts; the
 * lock is held to the commit, so the next create of that quota counts after this one
 * committed. The count must be the transaction's FIRST consistent read: under REPEATABLE
 * READ InnoDB takes the transaction's snapshot at its first consistent read (MySQL 8.4
 * §17.7.2.3 "Consistent Nonlocking Reads"), and a snapshot taken before the lock was
 * granted would not see the rows of the creates that held it before. Locking reads
 * (`FOR SHARE` / `FOR UPDATE`, foreign key checks) and INSERTs before it are fine: they
 * read the newest committed rows and take no snapshot. So callers lock first thing in
 * their transaction (after an `Idempotency-Key` INSERT at most). The count itself is not a
 * locking read: that would lock every counted row (and, under REPEATABLE READ, the gaps
 * between them) until the commit, queueing every update of those records behind a create.
 * Unlimited quotas take no lock and count nothing.
 */
import type { Knex } from 'knex';
import { QuotaExceededError, type QuotaName } from '../lib/errors.js';

export type { QuotaName } from '../lib/errors.js';

/** The limits a tenant database enforces on creates; null: unlimited. */
export interface QuotaLimits {
  maxUsers: number | null;
  maxContacts: number | null;
  maxAttachmentBytes: number | null;
}

/** No limits (operators' tools, plans without limits). */
export const UNLIMITED: QuotaLimits = Object.freeze({ maxUsers: null, maxContacts: null, maxAttachmentBytes: null });

/** The limit of a quota in `limits`. */
export function limitOf(limits: QuotaLimits, quota: QuotaName): number | null {
  return quota === 'users' ? limits.maxUsers : quota === 'contacts' ? limits.maxContacts : limits.maxAttachmentBytes;
}

/** The `quota_locks` row of each quota. */
const LOCK_ROW: Record<QuotaName, string> = { users: 'users', contacts: 'contacts', attachmentBytes: 'attachments' };

/** What a quota counts (see the module comment). */
const USAGE_SQL: Record<QuotaName, string> = {
  users: 'SELECT COUNT(*) AS n FROM users WHERE active = 1',
  contacts: 'SELECT COUNT(*) AS n FROM contacts WHERE deleted_at IS NULL',
  attachmentBytes: 'SELECT COALESCE(SUM(size_bytes), 0) AS n FROM attachments',
};

/**
 * Locks a quota's row for the rest of `trx`, when the quota is limited. Call it before any
 * consistent read of `trx` (see the module comment).
 * @returns whether it locked (false: unlimited, nothing to check)
 */
export async function lockQuota(trx: Knex.Transaction, quota: QuotaName, limit: number | null): Promise<boolean> {
  if (limit === null) return false;
  await trx.raw('SELECT name FROM quota_locks WHERE name = ? FOR UPDATE', [LOCK_ROW[quota]]);
  return true;
}

/**
 * Counts a quota's usage now and refuses `requested` more past `limit`. Call it once the
 * quota is locked ({@link lockQuota}).
 * @param requested what the create adds: 1 record, or a file's bytes
 * @throws QuotaExceededError (403 `QUOTA_EXCEEDED`, with `quota`, `limit`, `usage`, `requested`)
 */
export async function checkQuota(trx: Knex.Transaction, quota: QuotaName, limit: number | null, requested: number): Promise<void> {
  if (limit === null) return;
  const [rows] = (await trx.raw(USAGE_SQL[quota])) as [Array<{ n: number | string | null }>];
  const usage = Number(rows[0]?.n ?? 0);
  if (usage + requested > limit) throw new QuotaExceededError(quota, limit, usage, requested);
}

/**
 * {@link lockQuota} then {@link checkQuota}: the first thing a create under a limit does in its transaction.
 * @throws QuotaExceededError when `requested` more would pass the limit
 */
export async function reserveQuota(trx: Knex.Transaction, quota: QuotaName, limit: number | null, requested: number): Promise<void> {
  if (await lockQuota(trx, quota, limit)) await checkQuota(trx, quota, limit, requested);
}

/** A tenant database's usage: live records and attachment bytes. */
export interface RecordUsage {
  users: number;
  contacts: number;
  companies: number;
  deals: number;
  attachmentBytes: number;
}

/** Reads {@link RecordUsage} (one statement; counts as the quotas count, companies and deals not soft-deleted). */
export async function recordUsage(knex: Knex): Promise<RecordUsage> {
  const [rows] = (await knex.raw(
    `SELECT (${USAGE_SQL.users}) AS users, (${USAGE_SQL.contacts}) AS contacts,
            (SELECT COUNT(*) FROM companies WHERE deleted_at IS NULL) AS companies,
            (SELECT COUNT(*) FROM deals WHERE deleted_at IS NULL) AS deals,
            (${USAGE_SQL.attachmentBytes}) AS attachment_bytes`,
  )) as [Array<Record<string, number | string | null>>];
  const r = rows[0] ?? {};
  return {
    users: Number(r.users ?? 0),
    contacts: Number(r.contacts ?? 0),
    companies: Number(r.companies ?? 0),
    deals: Number(r.deals ?? 0),
    attachmentBytes: Number(r.attachment_bytes ?? 0),
  };
}
