/**
 * Tenant: `roles` (a named set of permissions; see src/crm/permissions.ts) and
 * `users.role_id`, the user's one role.
 *
 * Rows: inserts the three built-in roles `admin`, `manager`, `staff` (`built_in` = 1,
 * `permissions` NULL: a built-in role's permissions are those of `BUILT_IN_PERMISSIONS` in
 * the code, today's rights exactly, so a permission added later reaches them without a data
 * migration). Custom roles keep their permissions as a JSON array of names.
 *
 * `users.role` stays, as the role's name (what tokens, the CLI and the API show), widened
 * from ENUM('admin','manager','staff') to VARCHAR(64); every user's `role_id` is set from
 * it. One foreign key `(role_id, role) -> roles (id, name)` keeps the two in step (role
 * names cannot change) and refuses to delete a role that users hold.
 *
 * `down` undoes any prefix; once users hold custom roles it refuses (their names do not fit
 * the old ENUM): move them to built-in roles first.
 */
import { createTableInline, hasIndex, innodb, timestamps } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['roles'];

const BUILT_IN = [
  { name: 'admin', description: 'Everything, including users, roles and settings' },
  { name: 'manager', description: 'Reads, creates and edits records; deletes attachments' },
  { name: 'staff', description: 'Reads and creates records' },
];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await createTableInline(knex, 'roles', (t) => {
    innodb(t);
    t.bigIncrements('id').primary();
    t.string('name', 64).notNullable().unique('roles_name_uq');
    t.string('description', 500).nullable();
    t.json('permissions').nullable();
    t.boolean('built_in').notNullable().defaultTo(false);
    t.integer('version').unsigned().notNullable().defaultTo(1);
    timestamps(t, knex);
    // The target of users' (role_id, role) foreign key.
    t.unique(['id', 'name'], { indexName: 'roles_id_name_uq' });
  });
  await knex('roles').insert(BUILT_IN.map((r) => ({ ...r, built_in: true })));
  await knex.raw('ALTER TABLE users MODIFY role VARCHAR(64) NOT NULL');
  await knex.schema.alterTable('users', (t) => t.bigInteger('role_id').unsigned().nullable().after('role'));
  await knex('users').update({ role_id: knex('roles').select('roles.id').where('roles.name', knex.ref('users.role')) });
  await knex.raw(
    'ALTER TABLE users MODIFY role_id BIGINT UNSIGNED NOT NULL, ADD CONSTRAINT users_role_fk FOREIGN KEY (role_id, role) REFERENCES roles (id, name)',
  );
}

/** Undoes any prefix of `up`, the newest change first. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  // Before any change: custom role names do not fit the old ENUM.
  const custom = await knex('users').whereNotIn('role', ['admin', 'manager', 'staff']).count({ n: '*' }).first();
  if (Number(custom?.n ?? 0) > 0) {
    throw new Error(`cannot undo 0015-create-roles: ${String(custom?.n)} user(s) hold custom roles; give them admin, manager or staff first`);
  }
  const [fks] = (await knex.raw(
    "SELECT 1 FROM information_schema.TABLE_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = 'users' AND CONSTRAINT_NAME = 'users_role_fk' AND CONSTRAINT_TYPE = 'FOREIGN KEY'",
  )) as [unknown[]];
  if (fks.length) await knex.raw('ALTER TABLE users DROP FOREIGN KEY users_role_fk');
  if (await hasIndex(knex, 'users', 'users_role_fk')) await knex.raw('ALTER TABLE users DROP INDEX users_role_fk');
  if (await knex.schema.hasColumn('users', 'role_id')) await knex.schema.alterTable('users', (t) => t.dropColumn('role_id'));
  await knex.raw("ALTER TABLE users MODIFY role ENUM('admin','manager','staff') NOT NULL");
  await knex.schema.dropTableIfExists('roles');
}
