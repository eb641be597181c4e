/**
 * Data access for `platform_users` (operators and support staff).
 */
import type { Knex } from 'knex';
import { ConflictError } from '../lib/errors.js';
import { MysqlErrno, mysqlErrno } from '../lib/knex.js';
import type { PlatformRole, PlatformUser } from './types.js';

interface Row {
  id: number;
  email: string;
  password_hash: string;
  role: PlatformRole;
  active: number | boolean;
  created_at: Date;
}

const toUser = (r: Row): PlatformUser => ({ id: r.id, email: r.email, role: r.role, active: Boolean(r.active), createdAt: r.created_at });

/** Repository over `platform_users`. */
export function createPlatformUsersRepository(knex: Knex) {
  return {
    /** @throws ConflictError `USER_EXISTS` when the email is taken */
    async insert(u: { email: string; passwordHash: string; role: PlatformRole }, trx?: Knex.Transaction): Promise<number> {
      try {
        const [id] = await (trx ?? knex)('platform_users').insert({ email: u.email, password_hash: u.passwordHash, role: u.role });
        return Number(id);
      } catch (err) {
        if (mysqlErrno(err) === MysqlErrno.DUP_ENTRY) throw new ConflictError(`platform user ${u.email} already exists`, 'USER_EXISTS');
        throw err;
      }
    },

    /** The user and its password hash, for sign-in. */
    async findForLogin(email: string, trx?: Knex.Transaction): Promise<(PlatformUser & { passwordHash: string }) | undefined> {
      const row = await (trx ?? knex)<Row>('platform_users').where({ email }).first();
      return row && { ...toUser(row), passwordHash: row.password_hash };
    },

    async findById(id: number, trx?: Knex.Transaction): Promise<PlatformUser | undefined> {
      const row = await (trx ?? knex)<Row>('platform_users').where({ id }).first();
      return row && toUser(row);
    },

    async list(trx?: Knex.Transaction): Promise<PlatformUser[]> {
      return (await (trx ?? knex)<Row>('platform_users').orderBy('email')).map(toUser);
    },
  };
}
