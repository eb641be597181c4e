/**
 * Changing a tenant account's password on its server without refusing anyone in between.
 *
 * MySQL 8.0.14 and later keep a secondary password: `ALTER USER ... IDENTIFIED BY ?
 * RETAIN CURRENT PASSWORD` makes the new one primary and the old one secondary, both
 * accepted, until `ALTER USER ... DISCARD OLD PASSWORD` (MySQL 8.4 Reference Manual
 * §15.7.1.1 ALTER USER, §8.2.15 "Password Management", "Dual Password Support"). MariaDB
 * (10.11 here) has no dual passwords: after `ALTER USER ... IDENTIFIED BY ?` sessions
 * already authenticated stay open and new ones need the new password, so the API's pool
 * manager retries a refused connection with the catalog's current password
 * (`tenancy/connections.ts`). Values are bound (`?`), never concatenated; errors leave
 * without the statement's values.
 */
import type { Knex } from 'knex';
import { createTenantCredentialsRepository } from '../catalog/tenant-credentials.js';
import { SiloError } from '../lib/errors.js';
import { assertSafeIdentifier, MAX_USER_NAME } from '../lib/identifiers.js';
import { mysqlErrno } from '../lib/knex.js';
import type { Account } from './mysql-admin.js';

/** What a database server is, as far as passwords go. */
export interface ServerFlavor {
  /** `SELECT VERSION()`, e.g. `10.11.19-MariaDB-0+deb12u1` or `8.4.3`. */
  version: string;
  mariadb: boolean;
  /** True on MySQL 8.0.14 and later (`RETAIN CURRENT PASSWORD` / `DISCARD OLD PASSWORD`). */
  dualPasswords: boolean;
}

/** Parses a `VERSION()` string. */
export function parseServerVersion(version: string): ServerFlavor {
  const mariadb = /mariadb/i.test(version);
  const [major = 0, minor = 0, patch = 0] = (/^(\d+)\.(\d+)\.(\d+)/.exec(version) ?? []).slice(1).map(Number);
  const dualPasswords = !mariadb && (major > 8 || (major === 8 && (minor > 0 || patch >= 14)));
  return { version, mariadb, dualPasswords };
}

/** The flavor of the server behind an admin Knex (`SELECT VERSION()`). */
export async function serverFlavor(knex: Knex): Promise<ServerFlavor> {
  const [rows] = (await knex.raw('SELECT VERSION() AS v')) as [Array<{ v: string }>];
  return parseServerVersion(String(rows[0]?.v ?? ''));
}

function checkAccount(a: Account): void {
  assertSafeIdentifier(a.user, MAX_USER_NAME);
  if (!/^[A-Za-z0-9.%_:-]{1,255}$/.test(a.host)) throw new Error(`unsafe account host ${JSON.stringify(a.host)}`);
}

/** Runs an account statement; a failure leaves as a SiloError with the server's code, without the statement or its values. */
async function accountStatement(knex: Knex, what: string, a: Account, sql: string, bindings: readonly string[]): Promise<void> {
  try {
    await knex.raw(sql, bindings);
  } catch (err) {
    const e = err as { code?: unknown };
    const errno = mysqlErrno(err);
    throw new SiloError(
      `${what} for account ${a.user}@${a.host} failed: ${typeof e.code === 'string' ? e.code : 'error'}${errno ? ` (MySQL error ${errno})` : ''}`,
      {
        code: 'ACCOUNT_PASSWORD_FAILED',
        status: 500,
        details: { errno },
      },
    );
  }
}

/**
 * Gives an account a new password: `ALTER USER ?@? IDENTIFIED BY ?`, with `RETAIN CURRENT
 * PASSWORD` when the server keeps a secondary password (the old one then still opens new
 * sessions until {@link discardOldPassword}).
 * @throws SiloError `ACCOUNT_PASSWORD_FAILED` (no password in it)
 */
export async function setAccountPassword(knex: Knex, a: Account, password: string, flavor: ServerFlavor, opts: { retainCurrent: boolean }): Promise<void> {
  checkAccount(a);
  const retain = opts.retainCurrent && flavor.dualPasswords;
  await accountStatement(knex, 'ALTER USER', a, `ALTER USER ?@? IDENTIFIED BY ?${retain ? ' RETAIN CURRENT PASSWORD' : ''}`, [a.user, a.host, password]);
}

/**
 * Drops an account's secondary password (`ALTER USER ?@? DISCARD OLD PASSWORD`) on servers
 * that have one; nothing elsewhere (idempotent).
 * @throws SiloError `ACCOUNT_PASSWORD_FAILED`
 */
export async function discardOldPassword(knex: Knex, a: Account, flavor: ServerFlavor): Promise<void> {
  checkAccount(a);
  if (!flavor.dualPasswords) return;
  await accountStatement(knex, 'ALTER USER DISCARD OLD PASSWORD', a, 'ALTER USER ?@? DISCARD OLD PASSWORD', [a.user, a.host]);
}

/**
 * After the server was given the catalog's current password (repair's `user` step): drops
 * what an interrupted rotation left, the secondary password (MySQL 8.0.14+) and
 * `tenants.db_password_prev_enc`. Does nothing when no rotation was under way.
 * @param admin server-level admin Knex of the tenant's server
 * @param catalog the catalog Knex
 */
export async function forgetPreviousPassword(admin: Knex, a: Account, catalog: Knex, tenantId: number): Promise<void> {
  const creds = createTenantCredentialsRepository(catalog);
  const stored = await creds.get(tenantId);
  if (!stored?.dbPasswordPrevEnc) return;
  await discardOldPassword(admin, a, await serverFlavor(admin));
  await creds.clearPrevious(tenantId);
}
