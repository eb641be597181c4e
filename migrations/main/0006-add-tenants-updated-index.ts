/** Catalog: index on `tenants.updated_at`, for the API's poll of tenant changes. */
import { hasIndex } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.alterTable('tenants', (t) => t.index(['updated_at'], 'tenants_updated_idx'));
}

/** Undoes `up` (or nothing, if it stopped before its one statement): the index is dropped only if it exists. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  if (await hasIndex(knex, 'tenants', 'tenants_updated_idx'))
    await knex.schema.alterTable('tenants', (t) => t.dropIndex(['updated_at'], 'tenants_updated_idx'));
}
