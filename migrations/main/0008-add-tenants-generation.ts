/**
 * Catalog: `tenants.generation` (the token epoch: every token carries the generation it
 * was issued in, and one of another generation is refused; recreate, restore, delete and
 * `silo tenants revoke-tokens` bump it) and `tenants.auth_version` (bumped, with
 * `updated_at`, whenever a user's `token_version` moves in the tenant database, so every
 * API process re-checks older tokens of that tenant after one change-poll interval).
 * Existing tenants start at generation 1 and auth version 0: tokens issued before this
 * migration carry neither claim and count as generation 1, auth version 0.
 */
import type { MigrationParams } from '../../src/migrations/types.js';

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.alterTable('tenants', (t) => t.integer('generation').unsigned().notNullable().defaultTo(1));
  await knex.schema.alterTable('tenants', (t) => t.integer('auth_version').unsigned().notNullable().defaultTo(0));
}

/** Undoes any prefix of `up`: each column is dropped only if it exists. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  if (await knex.schema.hasColumn('tenants', 'auth_version')) await knex.schema.alterTable('tenants', (t) => t.dropColumn('auth_version'));
  if (await knex.schema.hasColumn('tenants', 'generation')) await knex.schema.alterTable('tenants', (t) => t.dropColumn('generation'));
}
