/** Catalog: index on `tenants.updated_at`, for the API's poll of tenant changes. */
import type { MigrationParams } from '../../src/migrations/types.js';

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.alterTable('tenants', (t) => t.index(['updated_at'], 'tenants_updated_idx'));
}

export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.alterTable('tenants', (t) => t.dropIndex(['updated_at'], 'tenants_updated_idx'));
}
