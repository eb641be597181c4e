/** Catalog: tenants (one database and one MySQL user each) and their custom domains. */
import { datetime, innodb, timestamps } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['tenants', 'tenant_domains'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.createTable('tenants', (t) => {
    innodb(t);
    t.increments('id').primary();
    t.string('slug', 32).notNullable().unique();
    t.string('name', 200).notNullable();
    t.string('plan', 32).notNullable().defaultTo('standard');
    t.enu('status', ['provisioning', 'active', 'suspended', 'maintenance', 'failed', 'deleted']).notNullable();
    t.string('status_reason', 1000).nullable();
    t.integer('database_server_id').unsigned().notNullable().references('id').inTable('database_servers');
    t.string('database_name', 64).notNullable();
    t.string('db_user', 32).notNullable();
    t.string('db_password_enc', 512).notNullable();
    t.string('schema_version', 255).nullable();
    t.string('admin_email', 254).nullable();
    timestamps(t, knex);
    datetime(t, 'suspended_at');
    datetime(t, 'deleted_at');
    t.index(['status'], 'tenants_status_idx');
    t.unique(['database_server_id', 'database_name'], { indexName: 'tenants_server_database_uq' });
  });
  await knex.schema.createTable('tenant_domains', (t) => {
    innodb(t);
    t.increments('id').primary();
    t.integer('tenant_id').unsigned().notNullable().references('id').inTable('tenants').onDelete('CASCADE');
    t.string('domain', 253).notNullable().unique();
    timestamps(t, knex);
    t.index(['tenant_id'], 'tenant_domains_tenant_idx');
  });
}

/** Undoes any prefix of `up`: drops each table only if `up` got as far as making it (the newest first). */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('tenant_domains');
  await knex.schema.dropTableIfExists('tenants');
}
