/** Catalog: platform users (operators and support staff) who use the CLI-equivalent API and history. */
import { innodb, timestamps } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['platform_users'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.createTable('platform_users', (t) => {
    innodb(t);
    t.increments('id').primary();
    t.string('email', 254).notNullable().unique();
    t.string('password_hash', 255).notNullable();
    t.enu('role', ['operator', 'support']).notNullable();
    t.boolean('active').notNullable().defaultTo(true);
    timestamps(t, knex);
  });
}

/** Undoes any prefix of `up`: drops the table only if `up` got as far as making it. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('platform_users');
}
