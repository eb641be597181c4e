/**
 * Catalog: `plans` (issue 15), what a tenant on a plan may use: `max_users` (active
 * users), `max_contacts` (live contacts), `max_attachment_bytes` (sum of attachment
 * sizes) and `requests_per_minute` (API requests of the tenant per minute); NULL means
 * unlimited. `tenants.plan` (migration 0002, default `standard`) names one.
 *
 * Data: inserts the plan `standard` and one plan for every other name `tenants.plan`
 * holds now, all unlimited, so existing tenants keep working as before. The rows go with
 * the table in `down`.
 *
 * Foreign key `tenants.plan -> plans.name`: yes. The catalog is the one source of truth of
 * what a tenant may use, and every writer of `tenants.plan` (create, set-plan, the
 * platform PATCH, a signup claiming a pending tenant) then gets a tenant whose plan exists
 * or an error, whatever code path it takes; the API never has to guess the limits of a
 * plan nobody defined. Plans are never renamed or deleted (no command does), so RESTRICT
 * costs nothing; a tenant insert or plan change holds a shared lock on one `plans` row
 * until it commits (InnoDB checks the parent with a locking read), which only makes a
 * concurrent `plans set` of the same plan wait for it. The index the key needs is made
 * explicitly (`tenants_plan_idx`), so that `down` can drop it: MySQL keeps an index it
 * made for a foreign key when the key is dropped.
 */
import { hasIndex } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['plans'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await knex.raw(`
    CREATE TABLE IF NOT EXISTS plans (
      name VARCHAR(32) NOT NULL,
      max_users INT UNSIGNED NULL,
      max_contacts INT UNSIGNED NULL,
      max_attachment_bytes BIGINT UNSIGNED NULL,
      requests_per_minute INT UNSIGNED NULL,
      created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
      updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
      PRIMARY KEY (name)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);
  // One statement: `standard` and every plan name tenants already have, unlimited.
  await knex.raw("INSERT IGNORE INTO plans (name) SELECT 'standard' UNION SELECT DISTINCT plan FROM tenants");
  await knex.raw('CREATE INDEX tenants_plan_idx ON tenants (plan)');
  await knex.raw('ALTER TABLE tenants ADD CONSTRAINT tenants_plan_fk FOREIGN KEY (plan) REFERENCES plans (name)');
}

/** Undoes any prefix of `up`, the newest change first (the plans' rows go with their table). */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  const [fks] = (await knex.raw(
    "SELECT 1 FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'tenants' AND CONSTRAINT_NAME = 'tenants_plan_fk' AND CONSTRAINT_TYPE = 'FOREIGN KEY'",
  )) as [unknown[]];
  if (fks.length) await knex.raw('ALTER TABLE tenants DROP FOREIGN KEY tenants_plan_fk');
  if (await hasIndex(knex, 'tenants', 'tenants_plan_idx')) await knex.raw('DROP INDEX tenants_plan_idx ON tenants');
  await knex.schema.dropTableIfExists('plans');
}
