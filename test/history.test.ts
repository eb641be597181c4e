/**
 * Request history: a row for every /api/v1 and /platform/v1 request (success, 4xx, 5xx,
 * unknown tenant, platform), nothing secret stored, batched inserts, a catalog outage
 * that loses nothing under the bound and counts drops past it, statistics checked
 * against figures computed here from the same rows, and tenant admins limited to their
 * own tenant.
 */
import t from 'tap';
import { buildApp } from '../src/http/app.js';
import { HistoryRecorder, type HistoryRow } from '../src/history/recorder.js';
import { historyStats } from '../src/history/stats.js';
import { addTenantUser } from '../src/provisioning/users-service.js';
import { login, makeTenant, PASSWORD, platformLogin, setupApp } from './fixtures/app.js';

const { app, ctx } = await setupApp(t, { SILO_HISTORY_BATCH: '50', SILO_HISTORY_FLUSH_MS: '60000' });
const k = ctx.catalog.knex;
const ta = await makeTenant(ctx, 'hist-a');
const tb = await makeTenant(ctx, 'hist-b');
await addTenantUser(ctx, 'hist-a', { email: 'staff@hist-a.test', role: 'staff', password: PASSWORD });
const tokA = await login(app, 'hist-a');
const tokB = await login(app, 'hist-b');
const staffA = await login(app, 'hist-a', 'staff@hist-a.test');
// A route that fails, to see a 5xx recorded (added before the app is used).
const boomApp = await buildApp({ ctx });
boomApp.get('/api/v1/test-boom', () => {
  throw new Error('boom with secret-ish internals');
});
await boomApp.ready();
t.teardown(() => boomApp.close());

const flush = async () => {
  await app.historyRecorder!.flush(true);
  await boomApp.historyRecorder!.flush(true);
};

t.test('rows are written for success, 4xx, 5xx, unknown tenant and platform calls', async (t) => {
  const before = app.historyRecorder!.stats.written;
  const ok = await app.inject({
    url: '/api/v1/auth/me?tenant=hist-a&access_token=leaky',
    headers: { authorization: `Bearer ${tokA.accessToken}`, 'user-agent': 'tap-test/1.0' },
  });
  t.equal(ok.statusCode, 200);
  const notFound = await app.inject({ url: '/api/v1/companies/424242', headers: { 'x-tenant': 'hist-a', authorization: `Bearer ${tokA.accessToken}` } });
  t.equal(notFound.statusCode, 404);
  const unknown = await app.inject({ url: '/api/v1/auth/me', headers: { 'x-tenant': 'no-such-tenant' } });
  t.equal(unknown.statusCode, 404);
  const boom = await boomApp.inject({ url: '/api/v1/test-boom' });
  t.equal(boom.statusCode, 500);
  const ptoken = await platformLogin(app, ctx, 'support');
  const plat = await app.inject({ url: '/platform/v1/tenants', headers: { authorization: `Bearer ${ptoken}` } });
  t.equal(plat.statusCode, 200);
  await app.inject('/health');
  await flush();
  t.ok(app.historyRecorder!.stats.written > before);

  const rows = await k('request_history').select('*');
  const byReq = new Map(rows.map((r: any) => [r.request_id, r]));
  const okRow: any = byReq.get(ok.headers['x-request-id']);
  t.match(okRow, {
    tenant_id: ta.id,
    user_kind: 'tenant',
    user_id: 1,
    method: 'GET',
    route: '/api/v1/auth/me',
    path: '/api/v1/auth/me',
    status: 200,
    user_agent: 'tap-test/1.0',
    error_code: null,
  });
  t.equal(okRow.query, 'tenant=hist-a&access_token=%5Bredacted%5D', 'secret-looking query values are redacted');
  t.ok(okRow.duration_ms > 0);
  t.ok(okRow.response_bytes > 0);
  t.ok(okRow.ip);
  t.match(byReq.get(notFound.headers['x-request-id']), {
    status: 404,
    error_code: 'COMPANY_NOT_FOUND',
    route: '/api/v1/companies/:id',
    tenant_id: ta.id,
  });
  t.match(byReq.get(unknown.headers['x-request-id']), { status: 404, error_code: 'TENANT_NOT_FOUND', tenant_id: null, user_id: null });
  t.match(byReq.get(boom.headers['x-request-id']), { status: 500, error_code: 'INTERNAL' });
  t.match(byReq.get(plat.headers['x-request-id']), { status: 200, user_kind: 'platform', route: '/platform/v1/tenants' });
  t.notOk(
    rows.some((r: any) => r.path === '/health'),
    '/health is not recorded',
  );
});

t.test('nothing secret appears in any column of any row', async (t) => {
  await app.inject({
    method: 'POST',
    url: '/api/v1/auth/login',
    headers: { 'x-tenant': 'hist-a' },
    payload: { email: 'admin@hist-a.test', password: PASSWORD },
  });
  await app.inject({ method: 'POST', url: '/api/v1/auth/refresh', headers: { 'x-tenant': 'hist-a' }, payload: { refreshToken: tokA.refreshToken } });
  await flush();
  const rows = await k('request_history').select('*');
  const text = JSON.stringify(rows);
  for (const secret of [PASSWORD, tokA.accessToken, tokA.refreshToken, tokB.accessToken, 'leaky', 'Bearer']) {
    t.notOk(text.includes(secret), `no ${secret.slice(0, 12)}... in request_history`);
  }
});

t.test('many requests are written in few multi-row inserts', async (t) => {
  const s0 = { ...app.historyRecorder!.stats };
  await Promise.all(
    Array.from({ length: 200 }, () => app.inject({ url: '/api/v1/auth/me', headers: { 'x-tenant': 'hist-b', authorization: `Bearer ${tokB.accessToken}` } })),
  );
  await flush();
  const s1 = app.historyRecorder!.stats;
  t.equal(s1.written - s0.written, 200);
  t.ok(s1.inserts - s0.inserts <= 5, `200 rows in ${s1.inserts - s0.inserts} inserts (batch 50)`);
});

function row(i: number, at: Date): HistoryRow {
  return {
    createdAt: at,
    requestId: `outage-${i}`,
    tenantId: null,
    userId: null,
    userKind: null,
    method: 'GET',
    route: '/x',
    path: '/x',
    query: null,
    status: 200,
    durationMs: 1,
    responseBytes: 1,
    ip: null,
    userAgent: null,
    errorCode: null,
  };
}

t.test('a catalog outage loses nothing under the bound; past it the oldest are dropped and counted', async (t) => {
  const rec = new HistoryRecorder(k, { batchSize: 10, flushMs: 20, bufferMax: 100, maxBackoffMs: 40 });
  t.teardown(() => rec.close(100));
  // The outage: the table is gone for a while (inserts fail as they would with MySQL down).
  await k.raw('RENAME TABLE request_history TO request_history_away');
  try {
    const now = new Date();
    for (let i = 0; i < 80; i++) rec.record(row(i, now));
    await rec.flush(true);
    t.equal(rec.stats.written, 0, 'nothing written during the outage');
    t.ok(rec.stats.failedFlushes >= 1);
    t.equal(rec.stats.buffered, 80, 'rows wait in the buffer');
    for (let i = 80; i < 130; i++) rec.record(row(i, now));
    t.equal(rec.stats.dropped, 30, 'past the bound of 100, the 30 oldest are dropped and counted');
  } finally {
    await k.raw('RENAME TABLE request_history_away TO request_history');
  }
  await rec.close(5000);
  t.equal(rec.stats.written, 100, 'everything under the bound is written after recovery');
  const ids = (await k('request_history').where('request_id', 'like', 'outage-%').select('request_id')).map((r: any) => r.request_id);
  t.equal(ids.length, 100);
  t.notOk(ids.includes('outage-0'), 'the oldest were the ones dropped');
  t.ok(ids.includes('outage-129'));
});

t.test('statistics equal figures computed here from the same rows', async (t) => {
  // A known set of rows for a tenant id no one uses, in a window of its own.
  const tenantId = 999_001;
  const from = new Date(Date.UTC(2026, 10, 1, 10, 0, 0));
  const durations: number[] = [];
  const statuses: number[] = [];
  const rows: any[] = [];
  for (let i = 0; i < 137; i++) {
    const d = ((i * 37) % 101) + 0.5;
    const s = i % 10 === 0 ? 500 : i % 7 === 0 ? 404 : 200;
    durations.push(d);
    statuses.push(s);
    rows.push({
      created_at: new Date(from.getTime() + i * 20_000),
      request_id: `stat-${i}`,
      tenant_id: tenantId,
      method: i % 3 ? 'GET' : 'POST',
      route: i % 2 ? '/api/v1/a' : '/api/v1/b',
      path: '/p',
      status: s,
      duration_ms: d,
    });
  }
  await k('request_history').insert(rows);
  const to = new Date(from.getTime() + 3600_000);
  // Inserted by SQL (not in the rollups): the exact statistics, from the raw rows.
  const s = await historyStats(k, { from, to, tenantId }, { exact: true });
  t.equal(s.method, 'exact');
  const sorted = [...durations].sort((a, b) => a - b);
  const nearest = (p: number) => sorted[Math.ceil(p * sorted.length) - 1];
  const c4 = statuses.filter((x) => x >= 400 && x < 500).length;
  const c5 = statuses.filter((x) => x >= 500).length;
  t.same(s.totals, { requests: 137, clientErrors: c4, serverErrors: c5, errorRate: Math.round(((c4 + c5) / 137) * 1e6) / 1e6 });
  t.equal(s.latency.p50, nearest(0.5));
  t.equal(s.latency.p95, nearest(0.95));
  t.equal(s.latency.p99, nearest(0.99));
  t.equal(s.latency.max, sorted.at(-1));
  t.equal(s.latency.mean, Math.round((durations.reduce((a, b) => a + b, 0) / 137) * 1000) / 1000);
  t.same(
    s.byStatus,
    [200, 404, 500].map((st) => ({ status: st, count: statuses.filter((x) => x === st).length })),
  );
  const routeA = durations.filter((_, i) => i % 2).sort((a, b) => a - b);
  const a = s.byRoute.find((r) => r.route === '/api/v1/a')!;
  t.equal(a.count, routeA.length);
  t.equal(a.p95, routeA[Math.ceil(0.95 * routeA.length) - 1]);
  t.equal(s.window.bucket, 'minute');
  t.equal(s.series.length, 60, 'one point per minute of the hour, empty ones included');
  t.equal(
    s.series.reduce((n, p) => n + p.count, 0),
    137,
  );
  const firstMinute = durations.slice(0, 3).sort((x, y) => x - y);
  t.equal(s.series[0]!.p95, firstMinute[Math.ceil(0.95 * 3) - 1]);
  t.equal(
    s.byMethod.reduce((n, m) => n + m.count, 0),
    137,
  );
});

t.test('tenant admins see their own tenant only; staff see none; platform sees all', async (t) => {
  await flush();
  const mine = await app.inject({ url: '/api/v1/history?pageSize=100', headers: { 'x-tenant': 'hist-a', authorization: `Bearer ${tokA.accessToken}` } });
  t.equal(mine.statusCode, 200);
  t.ok(mine.json().data.length > 0);
  t.ok(
    mine.json().data.every((r: any) => r.tenantId === ta.id),
    'only tenant A rows',
  );
  const sneaky = await app.inject({
    url: `/api/v1/history/stats?tenant=hist-b`,
    headers: { 'x-tenant': 'hist-a', authorization: `Bearer ${tokA.accessToken}` },
  });
  t.equal(sneaky.statusCode, 400, 'naming another tenant is a conflict, not a filter');
  const stats = await app.inject({ url: '/api/v1/history/stats', headers: { 'x-tenant': 'hist-a', authorization: `Bearer ${tokA.accessToken}` } });
  t.equal(stats.statusCode, 200);
  t.ok(stats.json().byTenant.every((r: any) => r.tenantId === ta.id));
  const staff = await app.inject({ url: '/api/v1/history', headers: { 'x-tenant': 'hist-a', authorization: `Bearer ${staffA.accessToken}` } });
  t.equal(staff.statusCode, 403);
  const ptoken = await platformLogin(app, ctx, 'support');
  const all = await app.inject({ url: '/platform/v1/history/stats', headers: { authorization: `Bearer ${ptoken}` } });
  t.equal(all.statusCode, 200);
  const tenants = all.json().byTenant.map((r: any) => r.tenantId);
  t.ok(tenants.includes(ta.id) && tenants.includes(tb.id));
  const onlyB = await app.inject({ url: '/platform/v1/history?tenant=hist-b&pageSize=5', headers: { authorization: `Bearer ${ptoken}` } });
  t.ok(onlyB.json().data.every((r: any) => r.tenantSlug === 'hist-b'));
  const one = await app.inject({ url: `/platform/v1/history/${onlyB.json().data[0].id}`, headers: { authorization: `Bearer ${ptoken}` } });
  t.equal(one.json().tenantSlug, 'hist-b');
  t.equal((await app.inject({ url: '/platform/v1/history/999999999', headers: { authorization: `Bearer ${ptoken}` } })).statusCode, 404);
  t.equal(
    (
      await app.inject({ url: '/platform/v1/history/stats?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z', headers: { authorization: `Bearer ${ptoken}` } })
    ).json().code,
    'INVALID_WINDOW',
  );
});

t.test('graceful close flushes what is buffered', async (t) => {
  const app2 = await buildApp({ ctx });
  await app2.ready();
  await app2.inject({
    url: '/api/v1/auth/me',
    headers: { 'x-tenant': 'hist-b', authorization: `Bearer ${tokB.accessToken}`, 'x-request-id': 'flush-on-close' },
  });
  t.equal(app2.historyRecorder!.stats.written, 0, 'still buffered (flush interval is long)');
  await app2.close();
  t.equal((await k('request_history').where({ request_id: 'flush-on-close' })).length, 1);
});
