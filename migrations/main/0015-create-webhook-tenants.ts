/**
 * Catalog: `webhook_tenants`, the tenants that have at least one active webhook, with how
 * many (issue 16 part 6). The webhook dispatcher of every API process sweeps only these
 * tenants' outboxes for due retries, so tenants without webhooks cost nothing. Written by
 * the webhook routes after each change (a recount of the tenant's active webhooks: a row
 * with 0 is deleted). A tenant's row goes with the tenant (ON DELETE CASCADE).
 * No data is changed.
 */
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['webhook_tenants'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await knex.raw(`
    CREATE TABLE IF NOT EXISTS webhook_tenants (
      tenant_id INT UNSIGNED NOT NULL,
      active_webhooks INT UNSIGNED NOT NULL,
      updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
      PRIMARY KEY (tenant_id),
      CONSTRAINT webhook_tenants_tenant_fk FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);
}

/** Undoes any prefix of `up`. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('webhook_tenants');
}
