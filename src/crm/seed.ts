/**
 * First data of a new tenant database: the first admin user (and, once the CRM tables
 * exist, the default pipeline stages). Idempotent: running it again adds nothing.
 */
import type { Knex } from 'knex';
import { hashPassword } from '../lib/passwords.js';
import { createUsersRepository } from './users-repository.js';

/** What seeding did. `adminCreated` is false when an admin already existed. */
export interface SeedResult {
  adminCreated: boolean;
}

/**
 * Seeds a tenant database.
 * @param knex a Knex on the tenant database (admin or tenant account)
 * @param admin email and plain password of the first admin (hashed with argon2id here,
 *   unless `passwordHash` is the hash of that password already being computed)
 */
export async function seedTenant(knex: Knex, admin: { email: string; password: string; passwordHash?: Promise<string> }): Promise<SeedResult> {
  const users = createUsersRepository(knex);
  let adminCreated = false;
  if ((await users.countActiveAdmins()) === 0 && !(await users.findForLogin(admin.email))) {
    const passwordHash = await (admin.passwordHash ?? hashPassword(admin.password));
    await users.insert({ email: admin.email, passwordHash, role: 'admin', fullName: 'Administrator' });
    adminCreated = true;
  }
  return { adminCreated };
}
