/**
 * Connections reused across tenants (COM_CHANGE_USER) never run a query in another
 * tenant's session. 30 tenants share a budget of 4 connections; concurrent queries (plain,
 * inside a transaction, and mysql2 `execute()` prepared statements on the lent connection)
 * each read `CURRENT_USER()` and `DATABASE()`, while tenants' connections are dropped at
 * random moments: every answer is that tenant's own account and database. A change the
 * server refuses (the tenant's account was dropped) fails that tenant's query, destroys
 * the connection and never lends it.
 */
import t from 'tap';
import pLimit from 'p-limit';
import type { Tenant } from '../src/catalog/index.js';
import { isUtcTimeZone } from '../src/lib/knex.js';
import { makeTenant, setupApp } from './fixtures/app.js';
import { rootKnex } from './fixtures/env.js';

const TENANTS = 30;
const BUDGET = 4;
const QUERIES = 900;

const { app, ctx } = await setupApp(t, {
  SILO_POOL_MAX_CONNECTIONS: String(BUDGET),
  SILO_POOL_MAX_PER_TENANT: '2',
  SILO_POOL_ACQUIRE_TIMEOUT_MS: '10000',
  SILO_TENANT_CHANGE_POLL_MS: '0',
});
const root = rootKnex();
t.teardown(() => root.destroy());
const provision = pLimit(4);
const tenants: Tenant[] = await Promise.all(Array.from({ length: TENANTS }, (_, i) => provision(() => makeTenant(ctx, `chu-${String(i).padStart(2, '0')}`))));
const pool = app.tenantConnections;

interface Seen {
  u: string;
  d: string | null;
  /** Minutes between the session's clock and UTC: 0 when the session runs in UTC. */
  tz: number | string;
}
const SQL = 'SELECT CURRENT_USER() AS u, DATABASE() AS d, TIMESTAMPDIFF(MINUTE, NOW(), UTC_TIMESTAMP()) AS tz';
const ownUser = (u: string) => u.split('@')[0]!;
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

/** One query of `tenant` by `how`; returns who the server says ran it. */
async function whoAmI(tenant: Tenant, how: 'query' | 'transaction' | 'execute'): Promise<Seen> {
  const lease = await pool.acquire(tenant);
  try {
    if (how === 'query') return ((await lease.knex.raw(SQL)) as unknown as [Seen[]])[0][0]!;
    if (how === 'transaction') {
      return await lease.knex.transaction(async (trx) => {
        await trx.raw('SELECT 1');
        return ((await trx.raw(SQL)) as unknown as [Seen[]])[0][0]!;
      });
    }
    // A prepared statement on the lent connection itself: after a change mysql2 must not reuse a statement id of the previous session.
    const client = lease.knex.client as { acquireConnection(): Promise<unknown>; releaseConnection(c: unknown): Promise<void> };
    const raw = (await client.acquireConnection()) as {
      execute(sql: string, values: unknown[], cb: (err: Error | null, rows: unknown) => void): void;
    };
    try {
      return await new Promise<Seen>((resolve, reject) =>
        raw.execute(`${SQL}, ? AS x`, [1], (err, rows) => (err ? reject(err) : resolve((rows as Seen[])[0]!))),
      );
    } finally {
      await client.releaseConnection(raw);
    }
  } finally {
    lease.release();
  }
}

t.test(`${QUERIES} concurrent queries over ${TENANTS} tenants with ${BUDGET} connections each run as their own tenant`, async (t) => {
  const wrong: string[] = [];
  const errors = new Map<string, number>();
  const counts = { query: 0, transaction: 0, execute: 0 };
  let drops = 0;
  let running = true;
  // Random forced evictions: a tenant's connections closed while the load runs.
  const dropper = (async () => {
    while (running) {
      await pool.drop(pick(tenants).id);
      drops++;
      await new Promise((r) => setTimeout(r, Math.random() * 20));
    }
  })();
  const limit = pLimit(16);
  try {
    await Promise.all(
      Array.from({ length: QUERIES }, (_, i) =>
        limit(async () => {
          const tenant = pick(tenants);
          const how = (['query', 'transaction', 'execute'] as const)[i % 3]!;
          try {
            const seen = await whoAmI(tenant, how);
            counts[how]++;
            if (ownUser(seen.u) !== tenant.dbUser || seen.d !== tenant.databaseName) {
              wrong.push(`${tenant.slug} (${how}) ran as ${seen.u} on ${seen.d}`);
            }
            if (Number(seen.tz) !== 0) wrong.push(`${tenant.slug} (${how}) ran ${seen.tz} min off UTC`);
          } catch (err) {
            const key = `${how}: ${(err as Error).message}`;
            errors.set(key, (errors.get(key) ?? 0) + 1);
          }
        }),
      ),
    );
  } finally {
    running = false;
    await dropper;
  }
  const stats = pool.stats();
  t.comment(`${JSON.stringify(counts)}; ${drops} drops; ${JSON.stringify(stats)}`);
  t.same(wrong, [], 'every query ran as its own tenant account on its own database, in UTC');
  t.same(Object.fromEntries(errors), {}, 'no query failed');
  t.ok(stats.evictions > 50, `connections were changed from one tenant to another (${stats.evictions} changes)`);
  t.ok(drops > 5, `tenants' connections were dropped during the load (${drops})`);
  t.ok(stats.peakConnections <= BUDGET, `never more than ${BUDGET} tenant connections open (peak ${stats.peakConnections})`);
});

t.test('a refused change (the account was dropped) destroys the connection, fails that query only, and never lends it', async (t) => {
  const victim = tenants[0]!;
  const others = tenants.slice(1, 1 + BUDGET);
  // The victim has no connection; the budget is full of the other tenants' idle connections.
  await pool.drop(victim.id);
  await Promise.all(others.map((o) => whoAmI(o, 'query')));
  const before = pool.stats();
  t.equal(before.openConnections, BUDGET, `the budget is full (${before.openConnections} open)`);
  await root.raw('DROP USER ?@?', [victim.dbUser, ctx.config.tenantDbUserHost]);
  try {
    await t.rejects(whoAmI(victim, 'query'), { errno: 1045 } as unknown as Error, "the dropped account's query fails with the server's refusal");
    const after = pool.stats();
    t.equal(after.failedChanges, before.failedChanges + 1, 'the refused change was counted');
    t.ok(after.openConnections <= BUDGET - 1 || after.idleConnections <= BUDGET - 1, `the refused connection is gone (${JSON.stringify(after)})`);
    // Every connection left (and new ones) still answers as its own tenant, many times over.
    for (let round = 0; round < 5; round++) {
      const seen = await Promise.all(tenants.slice(1).map(async (o) => [o, await whoAmI(o, pick(['query', 'transaction', 'execute'] as const))] as const));
      const wrong = seen.filter(([o, s]) => ownUser(s.u) !== o.dbUser || s.d !== o.databaseName).map(([o, s]) => `${o.slug}: ${s.u} ${s.d}`);
      t.same(wrong, [], `round ${round + 1}: every other tenant runs as itself`);
    }
    t.ok(pool.stats().peakConnections <= BUDGET, 'the budget held');
  } finally {
    await t.rejects(whoAmI(victim, 'query'), 'the victim stays refused (no session of its old account is lent)');
  }
});

t.test("a failed query through a tenant's Knex is cleaned of its bound values (the template Knex's query-error listener runs)", async (t) => {
  const lease = await pool.acquire(tenants[1]!);
  try {
    const secret = 'bound-secret-4f9a';
    const err = (await lease.knex.raw('SELECT * FROM no_such_table WHERE x = ?', [secret]).then(
      () => undefined,
      (e: unknown) => e,
    )) as { message?: string; sql?: string } | undefined;
    t.ok(err, 'the query failed');
    t.notMatch(`${err?.message} ${err?.sql ?? ''}`, secret, 'its value is not in the error');
  } finally {
    lease.release();
  }
});

t.test('SET time_zone is skipped only where new sessions start in UTC', (t) => {
  t.ok(isUtcTimeZone('+00:00', 'CET'), "global '+00:00'");
  t.ok(isUtcTimeZone('UTC', null), "global 'UTC'");
  t.ok(isUtcTimeZone('SYSTEM', 'UTC'), 'SYSTEM on a UTC machine');
  t.notOk(isUtcTimeZone('SYSTEM', 'CET'), 'SYSTEM on a CET machine');
  t.notOk(isUtcTimeZone('+01:00', 'UTC'), "global '+01:00'");
  t.notOk(isUtcTimeZone('Europe/Paris', 'UTC'), 'a named zone');
  t.notOk(isUtcTimeZone(undefined, undefined), 'unknown');
  t.end();
});
