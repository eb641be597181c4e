/**
 * Request-history statistics answered from the rollups (src/history/rollup.ts) instead of
 * the raw rows: what {@link historyStats} does unless asked for exact figures.
 *
 * The window `[from, to)` is cut into pieces each read at the coarsest grain that fits,
 * never coarser than the series bucket: the whole days inside it from the day rollups,
 * the whole hours left from the hour rollups, the whole minutes left from the minute
 * rollups, and the seconds before the first and after the last whole minute (at most two
 * pieces under a minute each) from the raw rows, bucketed here as the recorder buckets
 * them. So a 24 h window reads at most 2 x 59 minutes, 2 x 23 hours of rollups and two
 * minutes of raw rows, whatever the traffic. Counts, error counts, the mean and the
 * maximum are exact (sums of exact counts); percentiles come from the merged latency
 * histogram, within {@link SKETCH_ALPHA} (0.5%) relative error of the exact nearest-rank
 * value for durations above 0.001 ms.
 *
 * Filters: tenant, route, method and status class are rollup keys. Users are not (the
 * rollups count requests per user, with no route, method or status), so `byUser` is null
 * when a route, method or status-class filter is set, and a user filter is answered from
 * the raw rows ({@link historyStats} decides).
 */
import type { Knex } from 'knex';
import type { HistoryFilter } from './query.js';
import { applyFilter } from './query.js';
import { bucketOf, GRAIN, histogramPercentile, SKETCH_ALPHA, userKindOf, type Grain, type RollupSourceRow } from './rollup.js';
import type { Bucket, HistoryStats } from './stats.js';

const GRAIN_MS: Record<Grain, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };
const ORDER: Grain[] = ['minute', 'hour', 'day'];
const BUCKET_FORMAT: Record<Bucket, string> = { minute: '%Y-%m-%d %H:%i:00', hour: '%Y-%m-%d %H:00:00', day: '%Y-%m-%d 00:00:00' };

/** A piece of the window: read from the rollups of `grain`, or from the raw rows (`grain` null). */
export interface WindowPiece {
  grain: Grain | null;
  from: Date;
  to: Date;
}

const floorTo = (t: number, step: number) => Math.floor(t / step) * step;
const ceilTo = (t: number, step: number) => Math.ceil(t / step) * step;

/**
 * Cuts `[from, to)` into pieces: whole periods of the coarsest grain up to `maxGrain` in
 * the middle, finer ones towards the ends, raw rows for what is left under a minute.
 * The pieces are disjoint and cover the window exactly.
 */
export function windowPieces(from: Date, to: Date, maxGrain: Grain): WindowPiece[] {
  const out: WindowPiece[] = [];
  const cover = (a: number, b: number, level: number) => {
    if (a >= b) return;
    const g = ORDER[level]!;
    const a1 = ceilTo(a, GRAIN_MS[g]);
    const b1 = floorTo(b, GRAIN_MS[g]);
    if (a1 >= b1) {
      // No whole period of this grain: finer pieces only (raw rows below the minute).
      if (level === 0) out.push({ grain: null, from: new Date(a), to: new Date(b) });
      else cover(a, b, level - 1);
      return;
    }
    if (level === 0) {
      if (a < a1) out.push({ grain: null, from: new Date(a), to: new Date(a1) });
      out.push({ grain: g, from: new Date(a1), to: new Date(b1) });
      if (b1 < b) out.push({ grain: null, from: new Date(b1), to: new Date(b) });
      return;
    }
    cover(a, a1, level - 1);
    out.push({ grain: g, from: new Date(a1), to: new Date(b1) });
    cover(b1, b, level - 1);
  };
  cover(from.getTime(), to.getTime(), ORDER.indexOf(maxGrain));
  return out;
}

/** Restricts a rollup query to the rollup pieces (`grain` and `period_start` in each range). */
function inPieces(q: Knex.QueryBuilder, pieces: WindowPiece[], alias: string): Knex.QueryBuilder {
  return q.where((w) => {
    for (const p of pieces) {
      void w.orWhere((x) => {
        void x.where(`${alias}.grain`, GRAIN[p.grain!]).andWhere(`${alias}.period_start`, '>=', p.from).andWhere(`${alias}.period_start`, '<', p.to);
      });
    }
  });
}

type Cell = number | string | null;
type Hist = Map<number, number>;

const addTo = (h: Hist, bucket: number, n: number) => h.set(bucket, (h.get(bucket) ?? 0) + n);
const histOf = (h: Hist | undefined) => (h ? [...h.entries()] : []);
/** A percentile read from a histogram, to 6 significant digits (far below the histogram's error). */
const pctOf = (h: Hist | undefined, p: number) => {
  const v = histogramPercentile(histOf(h), p);
  return v === null ? null : Number(v.toPrecision(6));
};
const num = (v: number | null) => (v === null ? null : Math.round(v * 1000) / 1000);
const rate = (errors: number, n: number) => (n ? Math.round((errors / n) * 1e6) / 1e6 : 0);
const utc = (s: string | Date) => (s instanceof Date ? s : new Date(`${s.replace(' ', 'T')}Z`));

/** Counts of one rollup key (tenant, route, method, status) over the window. */
interface KeyCounts {
  tenantId: number | null;
  route: string | null;
  method: string;
  status: number;
  n: number;
  c4: number;
  c5: number;
  sumMs: number;
  maxMs: number;
}

/** A raw row of an edge piece: the columns the rollups keep. */
type EdgeRow = RollupSourceRow;

/**
 * The statistics from the rollups.
 * @param bucket the series bucket (also the coarsest grain read)
 * @returns the document with `method` 'rollups'; the series is not filled (the caller fills it)
 */
export async function rollupStats(knex: Knex, f: HistoryFilter, top: number, bucket: Bucket): Promise<HistoryStats> {
  const pieces = windowPieces(f.from, f.to, bucket);
  const rolled = pieces.filter((p) => p.grain !== null);
  const raw = pieces.filter((p) => p.grain === null);
  const fmt = BUCKET_FORMAT[bucket];
  const step = GRAIN_MS[bucket];
  const usersAnswerable = !f.route && !f.method && !f.statusClass;

  const counts = (q: Knex.QueryBuilder) => {
    inPieces(q, rolled, 'r');
    if (f.tenantId !== undefined) q.where('r.tenant_id', f.tenantId);
    if (f.route) q.where('r.route', f.route);
    if (f.method) q.where('r.method', f.method.toUpperCase());
    if (f.statusClass) q.whereBetween('r.status', [f.statusClass * 100, f.statusClass * 100 + 99]);
    return q;
  };
  // With a tenant filter the per-tenant histograms (tenant first in their key), else the all-tenant ones.
  const latencyTable = f.tenantId !== undefined ? 'request_rollup_tenant_latency as r' : 'request_rollup_latency as r';
  const latency = (q: Knex.QueryBuilder) => {
    inPieces(q, rolled, 'r');
    if (f.tenantId !== undefined) q.where('r.tenant_id', f.tenantId);
    if (f.route) q.where('r.route', f.route);
    if (f.method) q.where('r.method', f.method.toUpperCase());
    if (f.statusClass) q.where('r.status_class', f.statusClass);
    return q;
  };
  const none = Promise.resolve([]);

  const [keyRows, seriesRows, routeHistRows, seriesHistRows, userRows, edgeRows] = (await Promise.all([
    rolled.length
      ? counts(knex('request_rollup as r'))
          .select('r.tenant_id', 'r.route', 'r.method', 'r.status')
          .sum({ n: 'r.requests', c4: 'r.client_errors', c5: 'r.server_errors', s: 'r.sum_ms' })
          .max({ mx: 'r.max_ms' })
          .groupBy('r.tenant_id', 'r.route', 'r.method', 'r.status')
      : none,
    rolled.length
      ? counts(knex('request_rollup as r'))
          .select(
            { b: knex.raw('DATE_FORMAT(r.period_start, ?)', [fmt]) },
            knex.raw('SUM(r.requests) AS n'),
            knex.raw('SUM(r.client_errors + r.server_errors) AS e'),
          )
          .groupBy('b')
      : none,
    rolled.length ? latency(knex(latencyTable)).select('r.route', 'r.bucket').sum({ n: 'r.n' }).groupBy('r.route', 'r.bucket') : none,
    rolled.length
      ? latency(knex(latencyTable))
          .select({ b: knex.raw('DATE_FORMAT(r.period_start, ?)', [fmt]) }, 'r.bucket', knex.raw('SUM(r.n) AS n'))
          .groupBy('b', 'r.bucket')
      : none,
    rolled.length && usersAnswerable
      ? inPieces(knex('request_rollup_users as r'), rolled, 'r')
          .modify((q: Knex.QueryBuilder) => {
            if (f.tenantId !== undefined) void q.where('r.tenant_id', f.tenantId);
          })
          .select('r.tenant_id', 'r.user_kind', 'r.user_id')
          .sum({ n: 'r.requests' })
          .groupBy('r.tenant_id', 'r.user_kind', 'r.user_id')
      : none,
    // The edges under a minute: raw rows (each piece its own range on the time index).
    Promise.all(
      raw.map((p) =>
        applyFilter(knex('request_history as h'), { ...f, from: p.from, to: p.to }).select(
          'h.created_at',
          'h.tenant_id',
          'h.user_id',
          'h.user_kind',
          'h.method',
          'h.route',
          'h.status',
          'h.duration_ms',
        ),
      ),
    ),
  ])) as [
    Array<{ tenant_id: number; route: string; method: string; status: number; n: Cell; c4: Cell; c5: Cell; s: Cell; mx: Cell }>,
    Array<{ b: string | Date; n: Cell; e: Cell }>,
    Array<{ route: string; bucket: number; n: Cell }>,
    Array<{ b: string | Date; bucket: number; n: Cell }>,
    Array<{ tenant_id: number; user_kind: number; user_id: Cell; n: Cell }>,
    EdgeRow[][],
  ];

  // Stored keys: no tenant is tenant_id 0 and no route is '' (rollup.ts).
  const keys = new Map<string, KeyCounts>();
  const keyOf = (tenantId: number | null, route: string | null, method: string, status: number) => {
    const k = `${tenantId ?? ''}\u0000${route ?? '\u0001'}\u0000${method}\u0000${status}`;
    let e = keys.get(k);
    if (!e) keys.set(k, (e = { tenantId, route, method, status, n: 0, c4: 0, c5: 0, sumMs: 0, maxMs: -Infinity }));
    return e;
  };
  for (const r of keyRows) {
    const e = keyOf(r.tenant_id === 0 ? null : r.tenant_id, r.route === '' ? null : r.route, r.method, Number(r.status));
    e.n += Number(r.n);
    e.c4 += Number(r.c4);
    e.c5 += Number(r.c5);
    e.sumMs += Number(r.s);
    e.maxMs = Math.max(e.maxMs, Number(r.mx));
  }
  const series = new Map<number, { n: number; e: number; h: Hist }>();
  const pointOf = (t: number) => {
    let p = series.get(t);
    if (!p) series.set(t, (p = { n: 0, e: 0, h: new Map<number, number>() }));
    return p;
  };
  for (const r of seriesRows) {
    const p = pointOf(utc(r.b).getTime());
    p.n += Number(r.n);
    p.e += Number(r.e);
  }
  for (const r of seriesHistRows) addTo(pointOf(utc(r.b).getTime()).h, Number(r.bucket), Number(r.n));
  const routeHist = new Map<string | null, Hist>();
  const histOfRoute = (route: string | null) => {
    let h = routeHist.get(route);
    if (!h) routeHist.set(route, (h = new Map<number, number>()));
    return h;
  };
  for (const r of routeHistRows) addTo(histOfRoute(r.route === '' ? null : r.route), Number(r.bucket), Number(r.n));
  const users = new Map<string, { userKind: 'tenant' | 'platform' | null; userId: number; tenantId: number | null; n: number }>();
  const userOf = (userKind: 'tenant' | 'platform' | null, userId: number, tenantId: number | null) => {
    const k = `${userKind}\u0000${userId}\u0000${tenantId}`;
    let u = users.get(k);
    if (!u) users.set(k, (u = { userKind, userId, tenantId, n: 0 }));
    return u;
  };
  for (const r of userRows) userOf(userKindOf(Number(r.user_kind)), Number(r.user_id), r.tenant_id === 0 ? null : r.tenant_id).n += Number(r.n);

  // The raw edges, added as the recorder adds a row to the rollups.
  for (const r of edgeRows.flat()) {
    const d = Number(r.duration_ms);
    const b = bucketOf(d);
    const err = r.status >= 400 ? 1 : 0;
    const e = keyOf(r.tenant_id, r.route, r.method, r.status);
    e.n++;
    e.c4 += r.status >= 400 && r.status < 500 ? 1 : 0;
    e.c5 += r.status >= 500 ? 1 : 0;
    e.sumMs += d;
    e.maxMs = Math.max(e.maxMs, d);
    const p = pointOf(floorTo(r.created_at.getTime(), step));
    p.n++;
    p.e += err;
    addTo(p.h, b, 1);
    addTo(histOfRoute(r.route), b, 1);
    if (r.user_id !== null && usersAnswerable) userOf(r.user_kind, Number(r.user_id), r.tenant_id).n++;
  }

  // The window's histogram: the sum of the series points' (one scan fewer than its own query).
  const hist: Hist = new Map();
  for (const p of series.values()) for (const [bucket, c] of p.h) addTo(hist, bucket, c);

  // Breakdowns, in the order the exact statistics give them.
  let n = 0;
  let c4 = 0;
  let c5 = 0;
  let sumMs = 0;
  let maxMs = -Infinity;
  const byStatus = new Map<number, number>();
  const byMethod = new Map<string, number>();
  const byRoute = new Map<string | null, { n: number; e: number }>();
  const byTenant = new Map<number | null, { n: number; e: number }>();
  for (const e of keys.values()) {
    if (!e.n) continue;
    n += e.n;
    c4 += e.c4;
    c5 += e.c5;
    sumMs += e.sumMs;
    maxMs = Math.max(maxMs, e.maxMs);
    byStatus.set(e.status, (byStatus.get(e.status) ?? 0) + e.n);
    byMethod.set(e.method, (byMethod.get(e.method) ?? 0) + e.n);
    const r = byRoute.get(e.route) ?? { n: 0, e: 0 };
    r.n += e.n;
    r.e += e.c4 + e.c5;
    byRoute.set(e.route, r);
    const t = byTenant.get(e.tenantId) ?? { n: 0, e: 0 };
    t.n += e.n;
    t.e += e.c4 + e.c5;
    byTenant.set(e.tenantId, t);
  }
  const nullsFirst = <T extends string | number>(a: T | null, b: T | null) => (a === b ? 0 : a === null ? -1 : b === null ? 1 : a < b ? -1 : 1);
  const topTenants = [...byTenant.entries()].sort((a, b) => b[1].n - a[1].n || nullsFirst(a[0], b[0])).slice(0, top);
  const ids = topTenants.map(([id]) => id).filter((id): id is number => id !== null);
  const slugRows: Array<{ id: number; slug: string }> = ids.length ? await knex('tenants').whereIn('id', ids).select('id', 'slug') : [];
  const slugs = new Map(slugRows.map((r) => [r.id, r.slug]));

  return {
    method: 'rollups',
    window: { from: f.from, to: f.to, bucket },
    totals: { requests: n, clientErrors: c4, serverErrors: c5, errorRate: rate(c4 + c5, n) },
    latency: {
      mean: n ? num(sumMs / n) : null,
      p50: pctOf(hist, 0.5),
      p95: pctOf(hist, 0.95),
      p99: pctOf(hist, 0.99),
      max: n ? num(maxMs) : null,
      relativeError: SKETCH_ALPHA,
    },
    byStatus: [...byStatus.entries()].sort((a, b) => a[0] - b[0]).map(([status, count]) => ({ status, count })),
    byMethod: [...byMethod.entries()].sort((a, b) => b[1] - a[1] || nullsFirst(a[0], b[0])).map(([method, count]) => ({ method, count })),
    byRoute: [...byRoute.entries()]
      .sort((a, b) => b[1].n - a[1].n || nullsFirst(a[0], b[0]))
      .slice(0, top)
      .map(([route, r]) => ({ route, count: r.n, errorRate: rate(r.e, r.n), p95: pctOf(routeHist.get(route), 0.95) })),
    byTenant: topTenants.map(([tenantId, t]) => ({
      tenantId,
      slug: tenantId === null ? null : (slugs.get(tenantId) ?? null),
      count: t.n,
      errorRate: rate(t.e, t.n),
    })),
    byUser: usersAnswerable
      ? [...users.values()]
          .filter((u) => u.n)
          .sort((a, b) => b.n - a.n || nullsFirst(a.userKind, b.userKind) || a.userId - b.userId || nullsFirst(a.tenantId, b.tenantId))
          .slice(0, top)
          .map((u) => ({ userKind: u.userKind, userId: u.userId, tenantId: u.tenantId, count: u.n }))
      : null,
    series: [...series.entries()]
      .filter(([, p]) => p.n)
      .sort((a, b) => a[0] - b[0])
      .map(([t, p]) => ({ start: new Date(t), count: p.n, errors: p.e, p95: pctOf(p.h, 0.95) })),
  };
}
