/**
 * Invitations may name any role of the tenant (issue 16, custom roles): `invitations.role`
 * goes from ENUM('admin','manager','staff') to VARCHAR(64), the length of `roles.name`.
 * The name is checked against `roles` when the invitation is made and again, under a
 * shared lock of the role row, when it is accepted (src/crm/invitations.ts); no foreign
 * key, so deleting a role is not blocked by a pending invitation (its acceptance is then
 * refused).
 *
 * One statement; `down` narrows the column back, refusing while an invitation names a
 * custom role (MySQL would otherwise fail the ALTER in strict mode, or blank the value).
 */
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates: string[] = [];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await knex.raw('ALTER TABLE invitations MODIFY role VARCHAR(64) NOT NULL');
}

/** Undoes `up` (a prefix of it is all of it or nothing). */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  const custom = (await knex('invitations').whereNotIn('role', ['admin', 'manager', 'staff']).count({ n: '*' }).first()) as { n: number | string } | undefined;
  if (Number(custom?.n ?? 0) > 0) {
    throw new Error(`cannot undo 0018-widen-invitations-role: ${String(custom?.n)} invitation(s) name custom roles; revoke them first`);
  }
  await knex.raw("ALTER TABLE invitations MODIFY role ENUM('admin','manager','staff') NOT NULL");
}
