/**
 * Catalog, for self-service signup (issue 15):
 * - `tenants.status` gains `pending`: a tenant provisioned ahead (database, account,
 *   migrations, no admin) under a placeholder slug that no request can name, waiting to
 *   be claimed by a signup;
 * - `tenants.unverified_since`: set when a signup made the tenant and its admin's email
 *   is not verified yet (NULL for operator-made tenants and once verified), and
 *   `tenants.verify_token_hash`, the SHA-256 (hex) of the link's token sent to verify it;
 * - `slug_reservations`: a slug given up by a rename stays reserved until
 *   `reserved_until`, so nobody else takes it while old links still point at it.
 */
import { datetime, hasIndex } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['slug_reservations'];

const WITH_PENDING = "'pending','provisioning','active','suspended','maintenance','failed','deleted'";
const WITHOUT_PENDING = "'provisioning','active','suspended','maintenance','failed','deleted'";

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await knex.raw(`ALTER TABLE tenants MODIFY status ENUM(${WITH_PENDING}) NOT NULL`);
  if (!(await knex.schema.hasColumn('tenants', 'unverified_since'))) await knex.schema.alterTable('tenants', (t) => datetime(t, 'unverified_since'));
  if (!(await knex.schema.hasColumn('tenants', 'verify_token_hash')))
    await knex.schema.alterTable('tenants', (t) => t.specificType('verify_token_hash', 'CHAR(64)').nullable());
  if (!(await hasIndex(knex, 'tenants', 'tenants_verify_token_uq')))
    await knex.raw('ALTER TABLE tenants ADD UNIQUE KEY tenants_verify_token_uq (verify_token_hash)');
  await knex.raw(`
    CREATE TABLE IF NOT EXISTS slug_reservations (
      slug VARCHAR(32) NOT NULL,
      tenant_id INT UNSIGNED NOT NULL,
      reserved_until DATETIME(3) NOT NULL,
      PRIMARY KEY (slug),
      KEY slug_reservations_tenant_idx (tenant_id),
      CONSTRAINT slug_reservations_tenant_fk FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);
}

/** Undoes any prefix of `up` (pending tenants, if any, are a state `down` cannot keep: refused). */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('slug_reservations');
  if (await hasIndex(knex, 'tenants', 'tenants_verify_token_uq')) await knex.raw('ALTER TABLE tenants DROP INDEX tenants_verify_token_uq');
  if (await knex.schema.hasColumn('tenants', 'verify_token_hash')) await knex.schema.alterTable('tenants', (t) => t.dropColumn('verify_token_hash'));
  if (await knex.schema.hasColumn('tenants', 'unverified_since')) await knex.schema.alterTable('tenants', (t) => t.dropColumn('unverified_since'));
  const [rows] = (await knex.raw("SELECT COUNT(*) AS n FROM tenants WHERE status = 'pending'")) as [Array<{ n: number | string }>];
  if (Number(rows[0]?.n) > 0) throw new Error('pending tenants exist: delete them (silo tenants delete) before rolling this migration back');
  await knex.raw(`ALTER TABLE tenants MODIFY status ENUM(${WITHOUT_PENDING}) NOT NULL`);
}
