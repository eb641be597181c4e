/**
 * Request-history statistics from the rollups (issue 14, part 6): rows written through
 * the recorder (several tenants, routes, methods, statuses, over 30 hours), then
 * statistics of windows with odd edges, at each series bucket and with filters, compared
 * with figures computed here from the same rows: totals and every count exact,
 * percentiles within the histogram's stated relative error. A failure between the raw
 * insert and the rollups leaves neither (one transaction), also under retries and with
 * two recorders flushing the same keys at once; exact statistics are refused past their
 * bound; the backfill of rows the recorder did not write adds each row once.
 */
import t, { type Test } from 'tap';
import { HistoryRecorder, type HistoryRow } from '../src/history/recorder.js';
import { backfillRollups, bucketOf, bucketValue, GRAIN, pruneRollups, SKETCH_ALPHA } from '../src/history/rollup.js';
import { EXACT_MAX_WINDOW_MS, historyStats, type Bucket } from '../src/history/stats.js';
import { windowPieces } from '../src/history/stats-rollup.js';
import { setupSilo } from './fixtures/env.js';
import { prng } from './fixtures/prng.js';

const { ctx } = await setupSilo(t);
const k = ctx.catalog.knex;

const HOUR = 3_600_000;
const rnd = prng(14);
const TENANTS = [null, 990_001, 990_002, 990_003, 990_004];
const ROUTES = [null, '/api/v1/contacts', '/api/v1/contacts/:id', '/api/v1/deals', '/platform/v1/tenants'];
const METHODS = ['GET', 'GET', 'GET', 'POST', 'DELETE'];
const STATUSES = [200, 200, 200, 200, 201, 204, 304, 400, 404, 404, 409, 500, 503];
/** Whole hours, so that windows cut through minutes, hours and days. */
const base = Math.floor((Date.now() - 40 * HOUR) / HOUR) * HOUR;
let seq = 0;
function genRow(at: number): HistoryRow {
  const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const tenantId = pick(TENANTS);
  const user = rnd() < 0.7 ? 1 + Math.floor(rnd() * 6) : null;
  // Log-normal-ish durations over four decades, with some zeros.
  const durationMs = rnd() < 0.01 ? 0 : Math.round(Math.exp(rnd() * 4 + rnd() * 4 - 1) * 1000) / 1000;
  return {
    createdAt: new Date(at),
    requestId: `roll-${++seq}`,
    tenantId,
    userId: user,
    userKind: user === null ? null : tenantId === null ? 'platform' : 'tenant',
    method: pick(METHODS),
    route: pick(ROUTES),
    path: '/p',
    query: null,
    status: pick(STATUSES),
    durationMs,
    responseBytes: Math.floor(rnd() * 5000),
    ip: null,
    userAgent: null,
    errorCode: null,
  };
}

/** 8,000 rows over 30 h from `base`, in time order with some bursts. */
const rows: HistoryRow[] = [];
for (let i = 0; i < 8000; i++) rows.push(genRow(base + Math.floor((i / 8000) * 30 * HOUR + rnd() * 60_000)));
rows.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());

const recorder = new HistoryRecorder(k, { batchSize: 500, flushMs: 60_000, bufferMax: 100_000 });
for (const r of rows) recorder.record(r);
// A flush in flight (started by a full batch) answers for itself only: flush until all are written.
while (recorder.stats.written < rows.length) await recorder.flush(true);
t.teardown(() => recorder.close());

const nearestRank = (sorted: number[], p: number) => (sorted.length ? sorted[Math.ceil(p * sorted.length) - 1]! : null);
/** The relative error the API states, plus the 6 significant digits it rounds to. */
const TOL = SKETCH_ALPHA + 1e-5;
function within(t: Test, got: number | null, want: number | null, what: string) {
  if (want === null || got === null) return t.equal(got, want, what);
  t.ok(Math.abs(got - want) <= TOL * want, `${what}: ${got} within ${SKETCH_ALPHA * 100}% of ${want}`);
}

type Filter = { tenantId?: number; route?: string; method?: string; statusClass?: number };
function expected(from: number, to: number, f: Filter, bucket: Bucket) {
  const step = { minute: 60_000, hour: HOUR, day: 24 * HOUR }[bucket];
  const inWin = rows.filter(
    (r) =>
      r.createdAt.getTime() >= from &&
      r.createdAt.getTime() < to &&
      (f.tenantId === undefined || r.tenantId === f.tenantId) &&
      (!f.route || r.route === f.route) &&
      (!f.method || r.method === f.method) &&
      (!f.statusClass || Math.floor(r.status / 100) === f.statusClass),
  );
  const count = <K>(key: (r: HistoryRow) => K) => {
    const m = new Map<K, HistoryRow[]>();
    for (const r of inWin) m.set(key(r), [...(m.get(key(r)) ?? []), r]);
    return m;
  };
  const sortedDur = (xs: HistoryRow[]) => xs.map((r) => r.durationMs).sort((a, b) => a - b);
  return { inWin, count, sortedDur, step };
}

async function check(t: Test, from: number, to: number, f: Filter, bucket: Bucket) {
  const s = await historyStats(k, { from: new Date(from), to: new Date(to), ...f }, { bucket, top: 100 });
  const { inWin, count, sortedDur, step } = expected(from, to, f, bucket);
  t.equal(s.method, 'rollups');
  t.equal(s.latency.relativeError, SKETCH_ALPHA, 'the answer states the percentile error');
  const c4 = inWin.filter((r) => r.status >= 400 && r.status < 500).length;
  const c5 = inWin.filter((r) => r.status >= 500).length;
  t.same({ ...s.totals, errorRate: undefined }, { requests: inWin.length, clientErrors: c4, serverErrors: c5, errorRate: undefined }, 'totals exact');
  t.ok(inWin.length > 0, `${inWin.length} rows in the window`);
  const all = sortedDur(inWin);
  within(t, s.latency.p50, nearestRank(all, 0.5), 'p50');
  within(t, s.latency.p95, nearestRank(all, 0.95), 'p95');
  within(t, s.latency.p99, nearestRank(all, 0.99), 'p99');
  t.equal(s.latency.max, all.at(-1), 'max exact');
  t.equal(s.latency.mean, Math.round((all.reduce((a, b) => a + b, 0) / all.length) * 1000) / 1000, 'mean exact');
  const byStatus = [...count((r) => r.status).entries()].map(([status, xs]) => ({ status, count: xs.length })).sort((a, b) => a.status - b.status);
  t.same(s.byStatus, byStatus, 'byStatus exact');
  t.same(
    Object.fromEntries(s.byMethod.map((m) => [m.method, m.count])),
    Object.fromEntries([...count((r) => r.method).entries()].map(([m, xs]) => [m, xs.length])),
    'byMethod exact',
  );
  t.same(
    Object.fromEntries(s.byTenant.map((x) => [String(x.tenantId), x.count])),
    Object.fromEntries([...count((r) => r.tenantId).entries()].map(([id, xs]) => [String(id), xs.length])),
    'byTenant exact',
  );
  const routes = count((r) => r.route);
  t.equal(s.byRoute.length, routes.size);
  for (const r of s.byRoute) {
    const xs = routes.get(r.route)!;
    t.equal(r.count, xs.length, `route ${r.route} count`);
    within(t, r.p95, nearestRank(sortedDur(xs), 0.95), `route ${r.route} p95`);
  }
  const points = count((r) => Math.floor(r.createdAt.getTime() / step) * step);
  const nonEmpty = s.series.filter((p) => p.count);
  t.equal(nonEmpty.length, points.size, 'series: one point per non-empty bucket');
  for (const p of nonEmpty) {
    const xs = points.get(p.start.getTime())!;
    t.equal(p.count, xs.length, `series ${p.start.toISOString()} count`);
    t.equal(p.errors, xs.filter((r) => r.status >= 400).length);
    within(t, p.p95, nearestRank(sortedDur(xs), 0.95), `series ${p.start.toISOString()} p95`);
  }
  if (f.route || f.method || f.statusClass) t.equal(s.byUser, null, 'byUser: not kept with a route/method/status filter');
  else
    t.same(
      Object.fromEntries(s.byUser!.map((u) => [`${u.userKind}/${u.userId}/${u.tenantId}`, u.count])),
      Object.fromEntries(
        [...count((r) => (r.userId === null ? null : `${r.userKind}/${r.userId}/${r.tenantId}`)).entries()]
          .filter(([key]) => key !== null)
          .map(([key, xs]) => [key, xs.length]),
      ),
      'byUser exact',
    );
}

t.test('the window pieces are disjoint, cover it exactly, and use grains up to the bucket', (t) => {
  const from = new Date(base + 37_123);
  const to = new Date(base + 26 * HOUR + 13 * 60_000 + 5_400);
  for (const g of ['minute', 'hour', 'day'] as const) {
    const p = windowPieces(from, to, g).sort((a, b) => a.from.getTime() - b.from.getTime());
    t.equal(p[0]!.from.getTime(), from.getTime());
    t.equal(p.at(-1)!.to.getTime(), to.getTime());
    for (let i = 1; i < p.length; i++) t.equal(p[i]!.from.getTime(), p[i - 1]!.to.getTime(), 'contiguous');
    t.ok(p.every((x) => x.grain === null || GRAIN[x.grain] <= GRAIN[g]));
    t.ok(
      p.filter((x) => x.grain === null).every((x) => x.to.getTime() - x.from.getTime() < 60_000),
      'raw pieces are under a minute',
    );
  }
  t.end();
});

t.test('the histogram reads every duration back within its relative error', (t) => {
  const bad: string[] = [];
  for (let v = 0.0011; v < 1e7; v *= 1.0007) {
    const back = bucketValue(bucketOf(v));
    if (Math.abs(back - v) > SKETCH_ALPHA * v * (1 + 1e-9)) bad.push(`${v} read back as ${back}`);
  }
  t.same(bad.slice(0, 5), [], '0.0011 ms .. 10^7 ms');
  t.end();
});

t.test('statistics from the rollups equal the raw rows: totals exact, percentiles within the stated error', async (t) => {
  const odd = base + 2 * HOUR + 37_123;
  // 26 h 13 min: days, hours, minutes and raw edges (day bucket), hours (hour bucket).
  await check(t, odd, odd + 26 * HOUR + 13 * 60_000 + 5_400, {}, 'day');
  await check(t, odd, odd + 26 * HOUR + 13 * 60_000 + 5_400, {}, 'hour');
  // Whole days from midnight: only day rollups.
  const midnight = Math.ceil(base / (24 * HOUR)) * 24 * HOUR;
  if (midnight + 24 * HOUR <= base + 30 * HOUR) await check(t, midnight, midnight + 24 * HOUR, {}, 'day');
  await check(t, odd, odd + 2 * HOUR + 59_999, {}, 'minute');
  // Inside one minute: raw rows only.
  await check(t, base + 5 * HOUR + 1_000, base + 5 * HOUR + 59_000, {}, 'minute');
});

t.test('filters: tenant, route, method and status class from the rollups', async (t) => {
  const from = base + HOUR + 12_345;
  const to = from + 20 * HOUR + 7 * 60_000;
  await check(t, from, to, { tenantId: 990_002 }, 'hour');
  await check(t, from, to, { route: '/api/v1/contacts/:id' }, 'hour');
  await check(t, from, to, { method: 'POST', statusClass: 4 }, 'hour');
  await check(t, from, to, { tenantId: 990_003, route: '/api/v1/deals', statusClass: 2 }, 'day');
});

t.test('exact statistics: the same rows, percentiles exact; refused past the bound', async (t) => {
  const from = base + 3 * HOUR + 1_000;
  const to = from + EXACT_MAX_WINDOW_MS;
  const exact = await historyStats(k, { from: new Date(from), to: new Date(to) }, { exact: true, top: 100 });
  const roll = await historyStats(k, { from: new Date(from), to: new Date(to) }, { top: 100 });
  t.equal(exact.method, 'exact');
  t.equal(exact.latency.relativeError, 0);
  t.same(exact.totals, roll.totals, 'the same totals by both methods');
  const all = expected(from, to, {}, 'minute').sortedDur(expected(from, to, {}, 'minute').inWin);
  t.equal(exact.latency.p95, nearestRank(all, 0.95));
  await t.rejects(historyStats(k, { from: new Date(from), to: new Date(to + 1) }, { exact: true }), { code: 'EXACT_WINDOW_TOO_LONG', status: 400 });
  await t.rejects(
    historyStats(k, { from: new Date(from), to: new Date(from + 2 * HOUR), userId: 1 }),
    { code: 'EXACT_WINDOW_TOO_LONG' },
    'a user filter needs exact',
  );
  t.equal((await historyStats(k, { from: new Date(from), to: new Date(to), userId: 1 })).method, 'exact');
});

const rawCount = async () => Number(((await k('request_history').count({ n: '*' }).first()) as { n: number }).n);
const rolledCount = async () =>
  Number(((await k('request_rollup').where('grain', GRAIN.minute).sum({ n: 'requests' }).first()) as { n: number | null }).n ?? 0);
const latencyCount = async (table: string, grain: number) =>
  Number(((await k(table).where('grain', grain).sum({ n: 'n' }).first()) as { n: number | null }).n ?? 0);
async function allEqual(t: Test, what: string) {
  const raw = await rawCount();
  const grains = [GRAIN.minute, GRAIN.hour, GRAIN.day];
  const got = {
    counts: await Promise.all(
      grains.map(async (g) => Number(((await k('request_rollup').where('grain', g).sum({ n: 'requests' }).first()) as { n: number }).n ?? 0)),
    ),
    latency: await Promise.all(grains.map((g) => latencyCount('request_rollup_latency', g))),
    tenantLatency: await Promise.all(grains.map((g) => latencyCount('request_rollup_tenant_latency', g))),
  };
  t.same(
    got,
    { counts: [raw, raw, raw], latency: [raw, raw, raw], tenantLatency: [raw, raw, raw] },
    `${what}: ${raw} raw rows, as many in every rollup at every grain`,
  );
}

t.test('a failure between the raw insert and the rollups leaves neither; the retry writes both once', async (t) => {
  await allEqual(t, 'before');
  const rec = new HistoryRecorder(k, { batchSize: 100, flushMs: 60_000, bufferMax: 10_000, maxAttempts: 100 });
  t.teardown(() => rec.close(100));
  const before = await rawCount();
  // The last of the rollup statements of each batch fails (its table is gone), after the raw INSERT and three upserts ran.
  await k.raw('RENAME TABLE request_rollup_users TO request_rollup_users_away');
  try {
    for (let i = 0; i < 250; i++) rec.record(genRow(Date.now() - 5 * 60_000 + i));
    await rec.flush(true);
    t.ok(rec.stats.failedFlushes >= 1, 'the flush failed');
    t.equal(await rawCount(), before, 'no raw row written without its rollups');
    await allEqual(t, 'after the failed flush');
  } finally {
    await k.raw('RENAME TABLE request_rollup_users_away TO request_rollup_users');
  }
  while (rec.stats.buffered) await rec.flush(true);
  t.equal(await rawCount(), before + 250);
  await allEqual(t, 'after the retry');
});

t.test('two recorders flushing the same keys at once: the rollups still equal the raw rows', async (t) => {
  const a = new HistoryRecorder(k, { batchSize: 200, flushMs: 60_000, bufferMax: 10_000 });
  const b = new HistoryRecorder(k, { batchSize: 200, flushMs: 60_000, bufferMax: 10_000, maxAttempts: 10 });
  t.teardown(async () => {
    await a.close(100);
    await b.close(100);
  });
  const now = Date.now() - 60_000;
  for (let i = 0; i < 2000; i++) {
    a.record(genRow(now + (i % 50)));
    b.record(genRow(now + (i % 50)));
  }
  await Promise.all([a.flush(true), b.flush(true)]);
  while (a.stats.buffered || b.stats.buffered) await Promise.all([a.flush(true), b.flush(true)]);
  t.equal(a.stats.written + b.stats.written, 4000);
  await allEqual(t, 'after concurrent flushes');
});

t.test('the backfill adds rows inserted without the recorder once, resuming where it stopped', async (t) => {
  const before = await rawCount();
  const old = Array.from({ length: 1234 }, () => genRow(base + 6 * HOUR + Math.floor(rnd() * HOUR)));
  await k('request_history').insert(
    old.map((r) => ({
      created_at: r.createdAt,
      request_id: r.requestId,
      tenant_id: r.tenantId,
      method: r.method,
      route: r.route,
      path: r.path,
      status: r.status,
      duration_ms: r.durationMs,
    })),
  );
  t.equal(await rolledCount(), before, 'rows inserted by SQL are not in the rollups');
  const maxId = Number(((await k('request_history').max({ id: 'id' }).first()) as { id: number }).id);
  const lastRecorded = maxId - 1234;
  await k('request_rollup_backfill').where({ id: 1 }).update({ done_id: lastRecorded, through_id: maxId });
  const first = await backfillRollups(k, { batch: 500, maxRows: 500 });
  t.same({ added: first.added, done: first.done }, { added: 500, done: false }, 'interrupted after one batch');
  const rest = await backfillRollups(k, { batch: 500 });
  t.same({ added: rest.added, done: rest.done }, { added: 734, done: true });
  t.same((await backfillRollups(k)).added, 0, 'a second run adds nothing');
  await allEqual(t, 'after the backfill');
});

t.test('pruning: minute rollups go with the raw rows, hours and days stay', async (t) => {
  const cutoff = new Date(base + 10 * HOUR);
  const hourBefore = await k('request_rollup').where('grain', GRAIN.hour).andWhere('period_start', '<', cutoff).count({ n: '*' }).first();
  t.ok(await pruneRollups(k, cutoff, new Date(), 100), 'rows deleted (in batches of 100)');
  for (const table of ['request_rollup', 'request_rollup_latency', 'request_rollup_tenant_latency', 'request_rollup_users']) {
    const left = await k(table).where('grain', GRAIN.minute).andWhere('period_start', '<', cutoff).count({ n: '*' }).first();
    t.equal(Number((left as { n: number }).n), 0, `${table}: no minute rollup before the cutoff`);
  }
  t.same(await k('request_rollup').where('grain', GRAIN.hour).andWhere('period_start', '<', cutoff).count({ n: '*' }).first(), hourBefore, 'hour rollups kept');
});
