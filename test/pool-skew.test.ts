/**
 * A skewed load over more tenants than the budget can keep open is served, steadily:
 * 40 tenants, requests picked by a Zipf law (tenant k with weight 1/k, as real SaaS
 * traffic), 48 at a time, with a budget of 6 tenant connections (at most 2 per tenant).
 * Every request is answered 200 (none waits for ever, none gets 503 POOL_EXHAUSTED while
 * connections sit idle), the hot tenants get their share and the cold ones are not
 * starved. And with every connection idle, the one changed for a new tenant is the coldest
 * tenant's, not the hot tenant's least recently used one. Not timed: the acquire timeout (3 s) is far above what any request needs when
 * the manager hands idle connections on.
 */
import t from 'tap';
import pLimit from 'p-limit';
import type { Tenant } from '../src/catalog/index.js';
import { makeTenant, setupApp } from './fixtures/app.js';

const TENANTS = 40;
const REQUESTS = 600;
const CONCURRENCY = 48;
const BUDGET = 6;
const MAX_PER_TENANT = 2;

const { app, ctx } = await setupApp(t, {
  SILO_POOL_MAX_CONNECTIONS: String(BUDGET),

  SILO_POOL_MAX_PER_TENANT: String(MAX_PER_TENANT),
  SILO_POOL_ACQUIRE_TIMEOUT_MS: '3000',
  SILO_TENANT_CHANGE_POLL_MS: '0',
});

const provision = pLimit(4);
const tenants: Tenant[] = await Promise.all(Array.from({ length: TENANTS }, (_, i) => provision(() => makeTenant(ctx, `skew-${String(i).padStart(2, '0')}`))));

/** Tenant index by a Zipf law with s = 1 (index k, from 0, with weight 1/(k+1)). */
const weights = tenants.map((_, k) => 1 / (k + 1));
const total = weights.reduce((a, b) => a + b, 0);
function zipf(): number {
  let r = Math.random() * total;
  for (let k = 0; k < weights.length; k++) {
    r -= weights[k]!;
    if (r <= 0) return k;
  }
  return weights.length - 1;
}

t.test(
  'with every connection idle, a query of a new tenant changes the connection of the tenant that queries least, not the least recently used one',
  async (t) => {
    const pools = app.tenantConnections;
    const hot = tenants[0]!;
    const cold = tenants.slice(1, BUDGET);
    const newcomer = tenants[BUDGET]!;
    const runAs = async (tenant: Tenant) => {
      const lease = await pools.acquire(tenant);
      try {
        const [rows] = (await lease.knex.raw('SELECT CURRENT_USER() AS u, DATABASE() AS db')) as unknown as [Array<{ u: string; db: string }>];
        t.equal(rows[0]!.db, tenant.databaseName, `${tenant.slug} on its own database`);
        t.match(rows[0]!.u, new RegExp(`^${tenant.dbUser}@`), `${tenant.slug} as its own account`);
      } finally {
        lease.release();
      }
    };
    // The hot tenant queries most, then goes quiet first: its connection is the least recently used.
    for (let i = 0; i < 20; i++) await runAs(hot);
    for (const c of cold) await runAs(c);
    const before = pools.stats();
    t.equal(before.openConnections, BUDGET, 'the budget is used up, every connection idle');
    t.equal(before.idleConnections, BUDGET);
    await runAs(newcomer);
    t.equal(pools.stats().evictions, before.evictions + 1, 'the newcomer got a connection by one change');
    await runAs(hot);
    t.equal(pools.stats().evictions, before.evictions + 1, "the hot tenant's own connection was still there: no change for it");
    t.equal(pools.stats().openConnections, BUDGET);
  },
);

t.test(`a Zipf load over ${TENANTS} tenants with a budget of ${BUDGET} connections: every request answered 200`, async (t) => {
  const tokens = tenants.map((tenant) => app.signAccessToken({ aud: 'tenant', sub: '1', tid: tenant.id, role: 'admin' }));
  const order = Array.from({ length: REQUESTS }, zipf);
  const asked = new Array<number>(TENANTS).fill(0);
  const served = new Array<number>(TENANTS).fill(0);
  const failures = new Map<string, number>();
  const limit = pLimit(CONCURRENCY);
  await Promise.all(
    order.map((k) =>
      limit(async () => {
        asked[k]!++;
        const tenant = tenants[k]!;
        const res = await app.inject({ url: '/api/v1/auth/me', headers: { 'x-tenant': tenant.slug, authorization: `Bearer ${tokens[k]}` } });
        if (res.statusCode === 200 && res.json<{ email: string }>().email === `admin@${tenant.slug}.test`) served[k]!++;
        else {
          const key = `${res.statusCode} ${res.json<{ code?: string }>().code ?? ''}`;
          failures.set(key, (failures.get(key) ?? 0) + 1);
        }
      }),
    ),
  );
  const classes = [
    ['hot (tenant 1)', 0, 1],
    ['warm (tenants 2-5)', 1, 5],
    ['cold (tenants 6-40)', 5, TENANTS],
  ] as const;
  const sum = (xs: number[], a: number, b: number) => xs.slice(a, b).reduce((x, y) => x + y, 0);
  const stats = app.tenantConnections.stats();
  t.comment(`failures ${JSON.stringify(Object.fromEntries(failures))}; ${JSON.stringify(stats)}`);
  t.same(Object.fromEntries(failures), {}, `all ${REQUESTS} requests answered 200 with their own tenant's user`);
  for (const [name, a, b] of classes) {
    t.equal(sum(served, a, b), sum(asked, a, b), `${name}: ${sum(served, a, b)} of ${sum(asked, a, b)} requests served`);
  }
  t.ok(stats.peakConnections <= BUDGET, `at most ${BUDGET} tenant connections open at once (peak ${stats.peakConnections})`);
});
