/**
 * Tenant connections are bounded: serving 200 tenants with SILO_POOL_MAX_CONNECTIONS=20 and
 * SILO_POOL_MAX_PER_TENANT=2 never opens more than 20 tenant connections on the MySQL
 * server (as MySQL itself counts them in information_schema.PROCESSLIST), reuses idle
 * connections of other tenants (COM_CHANGE_USER) to make room, and answers every request.
 */
import t from 'tap';
import pLimit from 'p-limit';
import type { Tenant } from '../src/catalog/index.js';
import { makeTenant, setupApp } from './fixtures/app.js';
import { rootKnex } from './fixtures/env.js';

const TENANTS = 200;
const REQUESTS_PER_TENANT = 10;
const CONCURRENCY = 40;
const MAX_PER_TENANT = 2;
const BUDGET = 20;

const { app, ctx, names } = await setupApp(t, {
  SILO_POOL_MAX_CONNECTIONS: String(BUDGET),
  SILO_POOL_MAX_PER_TENANT: String(MAX_PER_TENANT),
  SILO_TENANT_CHANGE_POLL_MS: '0',
});
const root = rootKnex();
t.teardown(() => root.destroy());

/** Tenant connections open on the server now: in total, and the most held by one account. */
async function serverConnections(): Promise<{ total: number; perUser: number }> {
  const [rows] = await root.raw('SELECT USER AS user, COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE LEFT(USER, ?) = ? GROUP BY USER', [
    names.prefix.length,
    names.prefix,
  ]);
  const counts = (rows as Array<{ n: number | string }>).map((r) => Number(r.n));
  return { total: counts.reduce((a, b) => a + b, 0), perUser: Math.max(0, ...counts) };
}

const started = Date.now();
const provision = pLimit(4);
const tenants: Tenant[] = await Promise.all(Array.from({ length: TENANTS }, (_, i) => provision(() => makeTenant(ctx, `pool-${String(i).padStart(3, '0')}`))));
const provisionMs = Date.now() - started;
t.comment(`provisioned ${TENANTS} tenants in ${(provisionMs / 1000).toFixed(1)} s`);

t.test(`${TENANTS} tenants are served with at most ${BUDGET} tenant connections open on the server`, async (t) => {
  t.equal((await serverConnections()).total, 0, 'no tenant connection is open before the first request');
  const tokens = new Map(tenants.map((tenant) => [tenant.id, app.signAccessToken({ aud: 'tenant', sub: '1', tid: tenant.id, role: 'admin' })]));

  // Every tenant REQUESTS_PER_TENANT times, in random order.
  const order = Array.from({ length: REQUESTS_PER_TENANT }, () => tenants).flat();
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }

  let loadDone = false;
  const seen = { total: 0, perUser: 0, samples: 0 };
  const watch = (async () => {
    while (!loadDone) {
      const now = await serverConnections();
      seen.total = Math.max(seen.total, now.total);
      seen.perUser = Math.max(seen.perUser, now.perUser);
      seen.samples++;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();

  const failures: string[] = [];
  const limit = pLimit(CONCURRENCY);
  const loadStarted = Date.now();
  try {
    await Promise.all(
      order.map((tenant) =>
        limit(async () => {
          const res = await app.inject({ url: '/api/v1/auth/me', headers: { 'x-tenant': tenant.slug, authorization: `Bearer ${tokens.get(tenant.id)}` } });
          if (res.statusCode !== 200 || res.json().email !== `admin@${tenant.slug}.test`) failures.push(`${tenant.slug}: ${res.statusCode} ${res.body}`);
        }),
      ),
    );
  } finally {
    loadDone = true;
    await watch;
  }
  const loadMs = Date.now() - loadStarted;
  const stats = app.tenantConnections.stats();
  t.comment(
    `${order.length} requests in ${(loadMs / 1000).toFixed(1)} s; ${seen.samples} PROCESSLIST samples; max ${seen.total} tenant connections (${seen.perUser} for one tenant); ${JSON.stringify(stats)}`,
  );

  t.same(failures.slice(0, 5), [], `all ${order.length} requests answered 200 with their own tenant's user`);
  t.ok(seen.samples >= 5, `PROCESSLIST was sampled during the load (${seen.samples} times)`);
  t.ok(seen.total > 0, 'tenant connections were seen on the server');
  t.ok(seen.total <= BUDGET, `at most ${BUDGET} tenant connections at any sample (max ${seen.total})`);
  t.ok(seen.perUser <= MAX_PER_TENANT, `at most ${MAX_PER_TENANT} connections per tenant account (max ${seen.perUser})`);
  t.ok(stats.evictions > 0, `idle connections were changed to other tenants to make room (${stats.evictions})`);
  t.ok(stats.openConnections <= BUDGET, `the manager counts at most ${BUDGET} connections (${stats.openConnections})`);
  t.ok(stats.peakConnections <= BUDGET, `its peak is within the budget (${stats.peakConnections})`);
  t.ok((await serverConnections()).total <= BUDGET, 'the bound still holds after the load');
});
