/**
 * Tenant: `quota_locks`, one row per plan limit that a create is checked against
 * (`users`, `contacts`, `attachments`; data: inserts those three rows). A create under a
 * limit locks its row `FOR UPDATE` before it counts and inserts, in the same transaction
 * (src/crm/quotas.ts), so that creates of one tenant racing for the last free place queue
 * on that row: the second counts after the first committed. A row lock on a row that
 * always exists, rather than a locking count over the records themselves, because a
 * locking read of an empty or short range takes only gap locks, which InnoDB grants to
 * both transactions at once; both would then pass and deadlock on their inserts.
 * The tenant account needs only SELECT ... FOR UPDATE (its DML grant) on it.
 */
import { createTableInline, innodb } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['quota_locks'];

/** The rows: one per quota a create may pass. */
export const QUOTA_LOCKS = ['users', 'contacts', 'attachments'] as const;

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await createTableInline(knex, 'quota_locks', (t) => {
    innodb(t);
    t.string('name', 32).notNullable().primary();
  });
  await knex('quota_locks').insert(QUOTA_LOCKS.map((name) => ({ name })));
}

/** Undoes any prefix of `up`: drops the table (and with it its rows) only if `up` got as far as making it. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('quota_locks');
}
