/**
 * Server-level MySQL administration for tenants: databases, accounts, grants.
 * Every identifier is checked ({@link assertSafeIdentifier}) and passed to Knex as an
 * identifier binding (`??`); every value (user, host, password) as a value binding
 * (`?`). No statement is built by concatenating input.
 * Database names in GRANT/REVOKE are escaped ({@link grantPattern}): `_` and `%` are
 * wildcards there.
 * References: MySQL 8.4 Reference Manual §15.1.12 CREATE DATABASE, §15.7.1.3 CREATE USER,
 * §15.7.1.6 GRANT, §15.7.1.8 REVOKE, §15.7.1.1 ALTER USER, §8.2.21 "Setting Account
 * Resource Limits"; MariaDB accepts the same forms.
 */
import type { Knex } from 'knex';
import { assertSafeIdentifier, MAX_USER_NAME } from '../lib/identifiers.js';
import { grantPattern, inspectTenantGrants, type TenantGrantState } from './grants.js';

/** The privileges a tenant account gets on its own database: data manipulation only. */
export const TENANT_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] as const;

/** A MySQL account: `'user'@'host'`. */
export interface Account {
  user: string;
  host: string;
}

/** `database` as a back-quoted grant pattern matching it alone (`\_` for `_`). */
function quotePattern(database: string): string {
  return `\`${grantPattern(database)}\``;
}

/** Checks an account name before it is bound into admin SQL. @throws Error for an unsafe user or host */
export function checkAccount(a: Account): void {
  assertSafeIdentifier(a.user, MAX_USER_NAME);
  if (!/^[A-Za-z0-9.%_:-]{1,255}$/.test(a.host)) throw new Error(`unsafe account host ${JSON.stringify(a.host)}`);
}

/** Admin SQL over a server-level Knex (connected as an administrator, no default database). */
export function createMysqlAdmin(knex: Knex) {
  return {
    async databaseExists(name: string): Promise<boolean> {
      const rows = await knex('information_schema.SCHEMATA').where('SCHEMA_NAME', assertSafeIdentifier(name)).select('SCHEMA_NAME');
      return rows.length > 0;
    },

    /** `CREATE DATABASE IF NOT EXISTS` with utf8mb4 (idempotent). */
    async createDatabase(name: string): Promise<void> {
      await knex.raw('CREATE DATABASE IF NOT EXISTS ?? CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci', [assertSafeIdentifier(name)]);
    },

    /** `DROP DATABASE IF EXISTS` (idempotent). */
    async dropDatabase(name: string): Promise<void> {
      await knex.raw('DROP DATABASE IF EXISTS ??', [assertSafeIdentifier(name)]);
    },

    async userExists(a: Account): Promise<boolean> {
      checkAccount(a);
      const rows = await knex('mysql.user').where({ User: a.user, Host: a.host }).select('User');
      return rows.length > 0;
    },

    /**
     * Creates the account if missing and (re)sets its password and its
     * `MAX_USER_CONNECTIONS`, so the stored password and the server agree whatever
     * happened before (idempotent).
     * @param maxUserConnections simultaneous sessions the account may hold (0 would mean "no limit": refused)
     */
    async ensureUser(a: Account, password: string, maxUserConnections: number): Promise<void> {
      checkAccount(a);
      if (!Number.isInteger(maxUserConnections) || maxUserConnections < 1) throw new Error('maxUserConnections must be a positive integer');
      await knex.raw('CREATE USER IF NOT EXISTS ?@? IDENTIFIED BY ? WITH MAX_USER_CONNECTIONS ?', [a.user, a.host, password, maxUserConnections]);
      await knex.raw('ALTER USER ?@? IDENTIFIED BY ? WITH MAX_USER_CONNECTIONS ?', [a.user, a.host, password, maxUserConnections]);
    },

    /** `DROP USER IF EXISTS` (idempotent). */
    async dropUser(a: Account): Promise<void> {
      checkAccount(a);
      await knex.raw('DROP USER IF EXISTS ?@?', [a.user, a.host]);
    },

    /**
     * Grants {@link TENANT_PRIVILEGES} on the escaped pattern of `database` (which matches
     * that database only), then revokes everything else the account holds (idempotent;
     * the GRANT comes first, so a running tenant never loses access to its own data).
     * @returns the problems found and fixed (empty when the account was exact)
     */
    async grantTenant(a: Account, database: string, maxUserConnections: number): Promise<string[]> {
      checkAccount(a);
      await knex.raw(`GRANT ${TENANT_PRIVILEGES.join(', ')} ON ${quotePattern(database)}.* TO ?@?`, [a.user, a.host]);
      const state = await inspectTenantGrants(knex, a, database, TENANT_PRIVILEGES, maxUserConnections);
      for (const fix of state.fixes) await knex.raw(fix.sql, fix.bindings);
      return state.fixes.map((f) => f.problem);
    },

    /**
     * What differs between the account's privileges and "exactly
     * {@link TENANT_PRIVILEGES} on `database`, no other database, no global, table,
     * routine or role privilege, and `maxUserConnections`" (read from
     * `information_schema.*_PRIVILEGES`, `mysql.procs_priv`, the role tables and
     * `mysql.user`).
     */
    async tenantGrantState(a: Account, database: string, maxUserConnections: number): Promise<TenantGrantState> {
      checkAccount(a);
      return inspectTenantGrants(knex, a, database, TENANT_PRIVILEGES, maxUserConnections);
    },

    /** Databases whose names start with `prefix` (compared in JS: `_` is a LIKE wildcard). */
    async listDatabases(prefix: string): Promise<string[]> {
      const rows: Array<{ SCHEMA_NAME: string }> = await knex('information_schema.SCHEMATA').select('SCHEMA_NAME');
      return rows
        .map((r) => r.SCHEMA_NAME)
        .filter((n) => n.startsWith(prefix))
        .sort();
    },

    /** Accounts whose user names start with `prefix`. */
    async listUsers(prefix: string): Promise<Account[]> {
      const rows: Array<{ User: string; Host: string }> = await knex('mysql.user').select('User', 'Host');
      return rows.filter((r) => r.User.startsWith(prefix)).map((r) => ({ user: r.User, host: r.Host }));
    },

    /** Names of the base tables of a database. */
    async listTables(database: string): Promise<string[]> {
      const rows: Array<{ TABLE_NAME: string }> = await knex('information_schema.TABLES')
        .where({ TABLE_SCHEMA: assertSafeIdentifier(database), TABLE_TYPE: 'BASE TABLE' })
        .select('TABLE_NAME');
      return rows.map((r) => r.TABLE_NAME).sort();
    },
  };
}

/** The admin SQL helper type. */
export type MysqlAdmin = ReturnType<typeof createMysqlAdmin>;
