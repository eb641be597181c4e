/** Catalog: one row per lifecycle action (create, migrate, repair, ...) with the step it reached. */
import { datetime, innodb } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['operations'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.createTable('operations', (t) => {
    innodb(t);
    t.bigIncrements('id').primary();
    t.string('kind', 32).notNullable();
    t.integer('tenant_id').unsigned().nullable().references('id').inTable('tenants');
    t.string('actor', 255).notNullable();
    t.string('step', 64).nullable();
    t.enu('status', ['running', 'succeeded', 'failed']).notNullable().defaultTo('running');
    t.text('error').nullable();
    t.json('details').nullable();
    t.specificType('started_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    datetime(t, 'finished_at');
    t.index(['tenant_id', 'id'], 'operations_tenant_idx');
    t.index(['status', 'id'], 'operations_status_idx');
  });
}

/** Undoes any prefix of `up`: drops the table only if `up` got as far as making it. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('operations');
}
