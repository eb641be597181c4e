/** Tenant: the tenant's own users (admin, manager, staff), with argon2id password hashes. */
import { createTableInline, datetime, innodb, timestamps } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['users'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await createTableInline(knex, 'users', (t) => {
    innodb(t);
    t.bigIncrements('id').primary();
    t.string('email', 254).notNullable().unique('users_email_uq');
    t.string('full_name', 200).nullable();
    t.string('password_hash', 255).notNullable();
    t.enu('role', ['admin', 'manager', 'staff']).notNullable();
    t.boolean('active').notNullable().defaultTo(true);
    t.integer('version').unsigned().notNullable().defaultTo(1);
    timestamps(t, knex);
    datetime(t, 'last_login_at');
  });
}

/** Undoes any prefix of `up`: drops the table only if `up` got as far as making it. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('users');
}
