/** Catalog: the MySQL servers that host tenant databases (placement picks one at create). */
import { innodb, timestamps } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['database_servers'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.createTable('database_servers', (t) => {
    innodb(t);
    t.increments('id').primary();
    t.string('name', 64).notNullable().unique();
    t.string('host', 255).notNullable();
    t.integer('port').unsigned().notNullable().defaultTo(3306);
    t.string('admin_user', 80).notNullable();
    t.string('admin_password_enc', 512).notNullable();
    t.enu('status', ['active', 'draining', 'disabled']).notNullable().defaultTo('active');
    timestamps(t, knex);
  });
}

/** Undoes any prefix of `up`: drops the table only if `up` got as far as making it. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('database_servers');
}
