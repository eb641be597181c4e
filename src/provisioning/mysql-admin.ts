/**
 * Server-level MySQL administration for tenants: databases, accounts, grants.
 * Every identifier is checked ({@link assertSafeIdentifier}) and passed to Knex as an
 * identifier binding (`??`); every value (user, host, password) as a value binding
 * (`?`). No statement is built by concatenating input.
 * References: MySQL 8.4 Reference Manual §15.1.12 CREATE DATABASE, §15.7.1.3 CREATE USER,
 * §15.7.1.6 GRANT, §15.7.1.1 ALTER USER; MariaDB accepts the same forms.
 */
import type { Knex } from 'knex';
import { assertSafeIdentifier, MAX_USER_NAME } from '../lib/identifiers.js';

/** The privileges a tenant account gets on its own database: data manipulation only. */
export const TENANT_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] as const;

/** A MySQL account: `'user'@'host'`. */
export interface Account {
  user: string;
  host: string;
}

function checkAccount(a: Account): void {
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
     * Creates the account if missing and (re)sets its password, so the stored password
     * and the server agree whatever happened before (idempotent).
     */
    async ensureUser(a: Account, password: string): Promise<void> {
      checkAccount(a);
      await knex.raw('CREATE USER IF NOT EXISTS ?@? IDENTIFIED BY ?', [a.user, a.host, password]);
      await knex.raw('ALTER USER ?@? IDENTIFIED BY ?', [a.user, a.host, password]);
    },

    /** `DROP USER IF EXISTS` (idempotent). */
    async dropUser(a: Account): Promise<void> {
      checkAccount(a);
      await knex.raw('DROP USER IF EXISTS ?@?', [a.user, a.host]);
    },

    /** Grants {@link TENANT_PRIVILEGES} on `database`.* and nothing else (idempotent). */
    async grantTenant(a: Account, database: string): Promise<void> {
      checkAccount(a);
      await knex.raw(`GRANT ${TENANT_PRIVILEGES.join(', ')} ON ??.* TO ?@?`, [assertSafeIdentifier(database), a.user, a.host]);
    },

    /**
     * True when the account holds exactly {@link TENANT_PRIVILEGES} on `database` (read
     * from `information_schema.SCHEMA_PRIVILEGES`) and no global privileges.
     */
    async hasTenantGrant(a: Account, database: string): Promise<boolean> {
      checkAccount(a);
      const grantee = `'${a.user}'@'${a.host}'`;
      const schema: Array<{ PRIVILEGE_TYPE: string }> = await knex('information_schema.SCHEMA_PRIVILEGES')
        .where({ GRANTEE: grantee, TABLE_SCHEMA: assertSafeIdentifier(database) })
        .select('PRIVILEGE_TYPE');
      const got = new Set(schema.map((r) => r.PRIVILEGE_TYPE));
      return TENANT_PRIVILEGES.every((p) => got.has(p)) && got.size === TENANT_PRIVILEGES.length;
    },

    /** Databases whose names start with `prefix` (compared in JS: `_` is a LIKE wildcard). */
    async listDatabases(prefix: string): Promise<string[]> {
      const rows: Array<{ SCHEMA_NAME: string }> = await knex('information_schema.SCHEMATA').select('SCHEMA_NAME');
      return rows.map((r) => r.SCHEMA_NAME).filter((n) => n.startsWith(prefix)).sort();
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
