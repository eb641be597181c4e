/**
 * Tenant: `users.token_version`, bumped when a user is deactivated, changes role or has
 * its password reset. Access tokens carry the version they were issued at (`tv`); the API
 * refuses one whose version is no longer the user's (see `src/http/plugins/auth.ts`).
 * Existing users start at 0, as do tokens issued before this migration.
 */
import type { MigrationParams } from '../../src/migrations/types.js';

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.alterTable('users', (t) => t.integer('token_version').unsigned().notNullable().defaultTo(0));
}

/** Undoes `up` (or nothing, if it stopped before its one statement). */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  if (await knex.schema.hasColumn('users', 'token_version')) await knex.schema.alterTable('users', (t) => t.dropColumn('token_version'));
}
