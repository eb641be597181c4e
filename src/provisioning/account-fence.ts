/**
 * The fence before a tenant database is dropped or replaced (restore, recreate, delete):
 * the tenant's MySQL account is locked, so no new session can log in as it, then every
 * session it holds is killed, so no statement of an API process that has not heard of the
 * change (a stale cache, a lost change message) can reach the database. The account is
 * unlocked once the database is back; `repair` converges the lock state (unlocked for a
 * live tenant). A locked login fails with ER_ACCOUNT_HAS_BEEN_LOCKED, which the API
 * answers as 503 `TENANT_UNAVAILABLE`.
 *
 * References: MySQL 8.4 Reference Manual §15.7.1.1 ALTER USER ("ACCOUNT LOCK",
 * "ACCOUNT UNLOCK"), §8.2.20 "Account Locking", §15.7.8.4 KILL, §28.3.23 The
 * INFORMATION_SCHEMA PROCESSLIST Table; MariaDB 10.4+ "Account Locking" (the same SQL).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Knex } from 'knex';
import { UnavailableError } from '../lib/errors.js';
import { mysqlErrno } from '../lib/knex.js';
import { checkAccount, type Account } from './mysql-admin.js';

/** ER_NO_SUCH_THREAD: the session ended before the KILL reached it. */
const NO_SUCH_THREAD = 1094;

/** How long {@link fenceAccount} waits for killed sessions to leave the processlist, ms. */
const SESSIONS_GONE_TIMEOUT_MS = 10_000;

/** Ids of the sessions the account's user holds on the server (`information_schema.PROCESSLIST`, by `USER`). */
export async function accountSessions(knex: Knex, a: Account): Promise<number[]> {
  checkAccount(a);
  const rows: Array<{ ID: number | string }> = await knex('information_schema.PROCESSLIST').where('USER', a.user).select('ID');
  return rows.map((r) => Number(r.ID));
}

/**
 * Locks the account (`ALTER USER IF EXISTS ... ACCOUNT LOCK`: no new login) and kills
 * every session it holds (`KILL <id>`), then waits until none is left. Idempotent; a
 * missing account is nothing to fence.
 * @param knex a server-level admin Knex (needs CREATE USER and CONNECTION_ADMIN/SUPER)
 * @returns the number of sessions killed
 * @throws UnavailableError `FENCE_TIMEOUT` when killed sessions are still there after 10 s
 */
export async function fenceAccount(knex: Knex, a: Account): Promise<number> {
  checkAccount(a);
  await knex.raw('ALTER USER IF EXISTS ?@? ACCOUNT LOCK', [a.user, a.host]);
  const killed = new Set<number>();
  const deadline = Date.now() + SESSIONS_GONE_TIMEOUT_MS;
  for (;;) {
    const ids = await accountSessions(knex, a);
    if (!ids.length) return killed.size;
    for (const id of ids) {
      if (killed.has(id)) continue;
      killed.add(id);
      await knex.raw('KILL ?', [id]).catch((err: unknown) => {
        if (mysqlErrno(err) !== NO_SUCH_THREAD) throw err;
      });
    }
    // A killed session leaves the processlist once its current statement notices the kill.
    if (Date.now() > deadline) {
      throw new UnavailableError(`${ids.length} session(s) of account ${a.user} did not end after KILL`, 'FENCE_TIMEOUT', 10, { sessions: ids });
    }
    await sleep(20);
  }
}

/** Unlocks the account (`ALTER USER IF EXISTS ... ACCOUNT UNLOCK`; idempotent). */
export async function unfenceAccount(knex: Knex, a: Account): Promise<void> {
  checkAccount(a);
  await knex.raw('ALTER USER IF EXISTS ?@? ACCOUNT UNLOCK', [a.user, a.host]);
}

/**
 * True when the account exists and is locked. Read from `SHOW CREATE USER` (the same on
 * MySQL 8 and MariaDB; its password hash is never returned or logged).
 */
export async function isAccountLocked(knex: Knex, a: Account): Promise<boolean> {
  checkAccount(a);
  const exists: unknown = await knex('mysql.user').where({ User: a.user, Host: a.host }).first('User');
  if (!exists) return false;
  const result: unknown = await knex.raw('SHOW CREATE USER ?@?', [a.user, a.host]);
  const [rows] = result as [Array<Record<string, string>>];
  const statement = Object.values(rows[0] ?? {})[0] ?? '';
  return /\bACCOUNT LOCK\b/.test(statement);
}
