/**
 * Catalog: `tenant_schema_scripts`, the tenant schema as one script per database server
 * and tenant migration set (src/provisioning/schema-script.ts says how it is made: the
 * migrations run once on a scratch database, then `SHOW CREATE TABLE` of each table and
 * the rows the migrations wrote). `migrations_sha256` is the SHA-256 of the set (names
 * and file contents, hex), so a changed or added migration makes a new script; `script`
 * is a JSON array of statements. A cache: any row may be deleted, it is made again.
 */
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['tenant_schema_scripts'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await knex.raw(`
    CREATE TABLE IF NOT EXISTS tenant_schema_scripts (
      database_server_id INT UNSIGNED NOT NULL,
      migrations_sha256 CHAR(64) NOT NULL,
      latest_migration VARCHAR(255) NOT NULL,
      script LONGTEXT NOT NULL,
      created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
      PRIMARY KEY (database_server_id, migrations_sha256)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);
}

/** Undoes any prefix of `up` (one statement): drops the table if it exists. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('tenant_schema_scripts');
}
