/**
 * Data access for a tenant's `users`. A factory over the tenant's Knex; methods take an
 * optional transaction.
 */
import type { Knex } from 'knex';
import { ConflictError } from '../lib/errors.js';
import { MysqlErrno, mysqlErrno } from '../lib/knex.js';
import { BUILT_IN_ROLES } from './permissions.js';

/**
 * A tenant user's role name: a built-in (`admin`, `manager`, `staff`) or a custom role of
 * the tenant (src/crm/roles.ts); the role's permissions decide what the user may do.
 */
export type TenantRole = string;
/** The built-in role names. */
export const TENANT_ROLES: readonly TenantRole[] = BUILT_IN_ROLES;

/** A tenant user as the services see it (no hash). */
export interface TenantUser {
  id: number;
  email: string;
  fullName: string | null;
  role: TenantRole;
  /** The role's id (`roles.id`). */
  roleId: number;
  active: boolean;
  version: number;
  createdAt: Date;
  updatedAt: Date;
  lastLoginAt: Date | null;
}

/**
 * What decides whether a user's access tokens still hold: a token is issued at the
 * user's `tokenVersion`, which moves on deactivation, role change and password reset.
 */
export interface UserTokenState {
  tokenVersion: number;
  active: boolean;
  role: TenantRole;
  roleId: number;
}

/** A row of a tenant's `users` table. */
export interface UserRow {
  id: number;
  email: string;
  full_name: string | null;
  password_hash: string;
  role: TenantRole;
  role_id: number;
  active: number | boolean;
  version: number;
  token_version: number;
  created_at: Date;
  updated_at: Date;
  last_login_at: Date | null;
}

const toUser = (r: UserRow): TenantUser => ({
  id: Number(r.id),
  email: r.email,
  fullName: r.full_name,
  role: r.role,
  roleId: Number(r.role_id),
  active: Boolean(r.active),
  version: r.version,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  lastLoginAt: r.last_login_at,
});

/** Repository over a tenant's `users`. */
export function createUsersRepository(knex: Knex) {
  return {
    /**
     * Inserts a user with the role `role` (its id looked up in the same statement, or
     * `roleId` when the caller resolved it; the foreign key refuses a pair that does not match).
     * @returns the new id
     * @throws ConflictError `USER_EXISTS` when the email is taken in this tenant
     */
    async insert(
      u: { email: string; fullName?: string | null; passwordHash: string; role: TenantRole; roleId?: number },
      trx?: Knex.Transaction,
    ): Promise<number> {
      const db = trx ?? knex;
      try {
        const [id] = await db('users').insert({
          email: u.email,
          full_name: u.fullName ?? null,
          password_hash: u.passwordHash,
          role: u.role,
          role_id: u.roleId ?? db('roles').select('id').where({ name: u.role }),
        });
        return Number(id);
      } catch (err) {
        if (mysqlErrno(err) === MysqlErrno.DUP_ENTRY) throw new ConflictError(`a user with email ${u.email} already exists`, 'USER_EXISTS', { field: 'email' });
        throw err;
      }
    },

    async findById(id: number, trx?: Knex.Transaction): Promise<TenantUser | undefined> {
      const row = await (trx ?? knex)<UserRow>('users').where({ id }).first();
      return row && toUser(row);
    },

    /** The user with its hash and token version, for sign-in. */
    async findForLogin(email: string, trx?: Knex.Transaction): Promise<(TenantUser & { passwordHash: string; tokenVersion: number }) | undefined> {
      const row = await (trx ?? knex)<UserRow>('users').where({ email }).first();
      return row && { ...toUser(row), passwordHash: row.password_hash, tokenVersion: Number(row.token_version) };
    },

    /** The user's token state (one primary-key read), or undefined when there is no such user. */
    async findTokenState(id: number, trx?: Knex.Transaction): Promise<UserTokenState | undefined> {
      const row = await (trx ?? knex)<UserRow>('users').where({ id }).first('token_version', 'active', 'role', 'role_id');
      return row && { tokenVersion: Number(row.token_version), active: Boolean(row.active), role: row.role, roleId: Number(row.role_id) };
    },

    /** Number of active admins. */
    async countActiveAdmins(trx?: Knex.Transaction): Promise<number> {
      const row = await (trx ?? knex)('users').where({ role: 'admin', active: true }).count({ n: '*' }).first();
      return Number(row?.n ?? 0);
    },
  };
}

/** The users repository type. */
export type UsersRepository = ReturnType<typeof createUsersRepository>;
