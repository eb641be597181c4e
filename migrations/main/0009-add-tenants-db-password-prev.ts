/**
 * Catalog: `tenants.db_password_prev_enc`, the tenant account's previous password
 * (encrypted like `db_password_enc`) while `silo tenants rotate-credentials` changes it.
 * The new password is written to `db_password_enc` before the server is told (ALTER
 * USER), and the old one kept here until the server has the new one, so an API process
 * whose new connection is refused with one of the two tries the other: a crash between
 * the two writes never locks the API out. NULL when no rotation is under way.
 */
import type { MigrationParams } from '../../src/migrations/types.js';

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.alterTable('tenants', (t) => t.string('db_password_prev_enc', 512).nullable());
}

/** Undoes any prefix of `up`: the column is dropped only if it exists. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  if (await knex.schema.hasColumn('tenants', 'db_password_prev_enc')) await knex.schema.alterTable('tenants', (t) => t.dropColumn('db_password_prev_enc'));
}
