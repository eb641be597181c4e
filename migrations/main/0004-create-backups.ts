/** Catalog: tenant backups stored in S3 (filled by `silo tenants backup`). */
import { datetime, innodb } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['backups'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.createTable('backups', (t) => {
    innodb(t);
    t.bigIncrements('id').primary();
    t.integer('tenant_id').unsigned().notNullable().references('id').inTable('tenants');
    t.bigInteger('operation_id').unsigned().nullable().references('id').inTable('operations');
    t.enu('kind', ['manual', 'pre-recreate', 'pre-delete', 'pre-restore']).notNullable();
    t.enu('status', ['running', 'completed', 'failed']).notNullable().defaultTo('running');
    t.string('storage_key', 1024).notNullable();
    t.bigInteger('size_bytes').unsigned().nullable();
    t.specificType('sha256', 'CHAR(64)').nullable();
    t.string('schema_version', 255).nullable();
    t.text('error').nullable();
    t.specificType('created_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    datetime(t, 'finished_at');
    t.index(['tenant_id', 'id'], 'backups_tenant_idx');
  });
}

/** Undoes any prefix of `up`: drops the table only if `up` got as far as making it. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('backups');
}
