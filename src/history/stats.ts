/**
 * Request-history statistics for a time window and filters, by one of two methods (the
 * document's `method` says which):
 *
 * - `rollups` (the default): from the rollups the recorder writes with the raw rows
 *   (src/history/stats-rollup.ts). Totals, counts, error rates, mean and max are exact;
 *   percentiles come from a log-linear latency histogram (DDSketch mapping) and are within
 *   `SKETCH_ALPHA` (src/history/rollup.ts) = 0.5% relative error of the exact value (`latency.relativeError`),
 *   for durations above 0.001 ms. The cost depends on the window's length, not on the
 *   number of requests in it.
 * - `exact` (`exact: true`, and always with a user filter, which the rollups cannot
 *   apply to latency): from the raw rows, percentiles exact; it scans the window's rows,
 *   so the window may span at most {@link EXACT_MAX_WINDOW_MS} (1 h).
 *
 * Percentiles are by the nearest-rank method (the value at rank ceil(p x N) of the N
 * durations sorted ascending; NIST/Hyndman-Fan definition 1); exact ones are computed in
 * MySQL with `ROW_NUMBER()` and `COUNT(*)` window functions (MySQL 8.0+, MariaDB 10.2+).
 * The error rate is (4xx + 5xx) / requests. Durations are in ms.
 */
import type { Knex } from 'knex';
import { ValidationError } from '../lib/errors.js';
import { applyFilter, checkWindow, type HistoryEntry, type HistoryFilter } from './query.js';
import { rollupStats } from './stats-rollup.js';

/** Time bucket of the series. */
export type Bucket = 'minute' | 'hour' | 'day';

/** Where statistics come from: the rollups (percentiles within 0.5%) or the raw rows (exact). */
export type StatsMethod = 'rollups' | 'exact';

/** The longest window of exact statistics (computed from the raw rows), ms: 1 h. */
export const EXACT_MAX_WINDOW_MS = 3_600_000;

/** The statistics document (the same shape in the API and `silo history stats --json`). */
export interface HistoryStats {
  /** How the figures were computed: from the rollups, or from the raw rows. */
  method: StatsMethod;
  window: { from: Date; to: Date; bucket: Bucket };
  totals: { requests: number; clientErrors: number; serverErrors: number; errorRate: number };
  /** ms; `relativeError` bounds the percentiles' error relative to the exact value (0: exact). */
  latency: { mean: number | null; p50: number | null; p95: number | null; p99: number | null; max: number | null; relativeError: number };
  byStatus: Array<{ status: number; count: number }>;
  byMethod: Array<{ method: string; count: number }>;
  byRoute: Array<{ route: string | null; count: number; errorRate: number; p95: number | null }>;
  byTenant: Array<{ tenantId: number | null; slug: string | null; count: number; errorRate: number }>;
  /** null from the rollups when a route, method or status-class filter is set (users are counted per tenant only). */
  byUser: Array<{ userKind: 'tenant' | 'platform' | null; userId: number | null; tenantId: number | null; count: number }> | null;
  series: Array<{ start: Date; count: number; errors: number; p95: number | null }>;
}

const BUCKET_FORMAT: Record<Bucket, string> = { minute: '%Y-%m-%d %H:%i:00', hour: '%Y-%m-%d %H:00:00', day: '%Y-%m-%d 00:00:00' };
const BUCKET_MS: Record<Bucket, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };

/** The bucket for a window: minutes up to 3 h, hours up to 7 days, else days. */
export function autoBucket(from: Date, to: Date): Bucket {
  const span = to.getTime() - from.getTime();
  if (span <= 3 * 3_600_000) return 'minute';
  if (span <= 7 * 86_400_000) return 'hour';
  return 'day';
}

/** A number as MySQL returns it for an aggregate: a number, a DECIMAL string, or NULL. */
type Cell = number | string | null;

const num = (v: unknown) => (v === null || v === undefined ? null : Math.round(Number(v) * 1000) / 1000);
const rate = (errors: unknown, n: unknown) => (Number(n) ? Math.round((Number(errors) / Number(n)) * 1e6) / 1e6 : 0);
const utc = (s: string | Date) => (s instanceof Date ? s : new Date(`${s.replace(' ', 'T')}Z`));

/**
 * Computes the statistics, from the rollups unless `opts.exact` is set or the filter
 * names a user (then from the raw rows).
 * @param opts.top rows of the top-N breakdowns (default 10); `bucket` forces the series bucket
 * @throws ValidationError `INVALID_WINDOW`; `EXACT_WINDOW_TOO_LONG` when exact statistics
 *   (asked for, or needed by a user filter) are asked for a window over {@link EXACT_MAX_WINDOW_MS}
 */
export async function historyStats(knex: Knex, f: HistoryFilter, opts: { top?: number; bucket?: Bucket; exact?: boolean } = {}): Promise<HistoryStats> {
  checkWindow(f);
  const top = opts.top ?? 10;
  const bucket = opts.bucket ?? autoBucket(f.from, f.to);
  const byUserFilter = f.userId !== undefined || f.userKind !== undefined;
  if (!opts.exact && !byUserFilter) {
    const s = await rollupStats(knex, f, top, bucket);
    return { ...s, series: fillSeries(s.series, f.from, f.to, bucket) };
  }
  if (f.to.getTime() - f.from.getTime() > EXACT_MAX_WINDOW_MS) {
    throw new ValidationError(
      `exact statistics${opts.exact ? '' : ' (needed by a user filter: the rollups do not keep latency per user)'} are computed from the raw rows: the window may span at most ${EXACT_MAX_WINDOW_MS / 60_000} minutes`,
      { field: 'from', maxMinutes: EXACT_MAX_WINDOW_MS / 60_000 },
      'EXACT_WINDOW_TOO_LONG',
    );
  }
  return exactStats(knex, f, top, bucket);
}

/** The statistics from the raw rows (percentiles exact). */
async function exactStats(knex: Knex, f: HistoryFilter, top: number, bucket: Bucket): Promise<HistoryStats> {
  const base = () => applyFilter(knex('request_history as h'), f);
  const pct = (p: number, col = 'd') => knex.raw(`MAX(CASE WHEN rn = CEIL(${p} * cnt) THEN ${col} END)`);

  const [totalsRow, pctRow, byStatus, byMethod, byRoute, byTenant, byUser, series] = (await Promise.all([
    base().first(
      knex.raw('COUNT(*) AS n'),
      knex.raw('SUM(h.status BETWEEN 400 AND 499) AS c4'),
      knex.raw('SUM(h.status >= 500) AS c5'),
      knex.raw('AVG(h.duration_ms) AS mean'),
      knex.raw('MAX(h.duration_ms) AS mx'),
    ),
    knex
      .from(base().select({ d: 'h.duration_ms' }, knex.raw('ROW_NUMBER() OVER (ORDER BY h.duration_ms) AS rn'), knex.raw('COUNT(*) OVER () AS cnt')).as('x'))
      .first({ p50: pct(0.5), p95: pct(0.95), p99: pct(0.99) }),
    base().select('h.status', knex.raw('COUNT(*) AS n')).groupBy('h.status').orderBy('h.status'),
    base().select('h.method', knex.raw('COUNT(*) AS n')).groupBy('h.method').orderBy('n', 'desc').orderBy('h.method'),
    knex
      .from(
        base()
          .select(
            'h.route',
            'h.status',
            { d: 'h.duration_ms' },
            knex.raw('ROW_NUMBER() OVER (PARTITION BY h.route ORDER BY h.duration_ms) AS rn'),
            knex.raw('COUNT(*) OVER (PARTITION BY h.route) AS cnt'),
          )
          .as('x'),
      )
      .select('route', knex.raw('COUNT(*) AS n'), knex.raw('SUM(status >= 400) AS errors'), { p95: pct(0.95) })
      .groupBy('route')
      .orderBy('n', 'desc')
      .orderBy('route')
      .limit(top),
    base()
      .leftJoin('tenants as t', 't.id', 'h.tenant_id')
      .select('h.tenant_id', 't.slug', knex.raw('COUNT(*) AS n'), knex.raw('SUM(h.status >= 400) AS errors'))
      .groupBy('h.tenant_id', 't.slug')
      .orderBy('n', 'desc')
      .orderBy('h.tenant_id')
      .limit(top),
    base()
      .select('h.user_kind', 'h.user_id', 'h.tenant_id', knex.raw('COUNT(*) AS n'))
      .whereNotNull('h.user_id')
      .groupBy('h.user_kind', 'h.user_id', 'h.tenant_id')
      .orderBy('n', 'desc')
      .orderBy('h.user_kind')
      .orderBy('h.user_id')
      .orderBy('h.tenant_id')
      .limit(top),
    knex
      .from(
        base()
          .select(
            { b: knex.raw('DATE_FORMAT(h.created_at, ?)', [BUCKET_FORMAT[bucket]]) },
            'h.status',
            { d: 'h.duration_ms' },
            knex.raw(`ROW_NUMBER() OVER (PARTITION BY DATE_FORMAT(h.created_at, ?) ORDER BY h.duration_ms) AS rn`, [BUCKET_FORMAT[bucket]]),
            knex.raw(`COUNT(*) OVER (PARTITION BY DATE_FORMAT(h.created_at, ?)) AS cnt`, [BUCKET_FORMAT[bucket]]),
          )
          .as('x'),
      )
      .select('b', knex.raw('COUNT(*) AS n'), knex.raw('SUM(status >= 400) AS errors'), { p95: pct(0.95) })
      .groupBy('b')
      .orderBy('b'),
  ])) as [
    { n: Cell; c4: Cell; c5: Cell; mean: Cell; mx: Cell } | undefined,
    { p50: Cell; p95: Cell; p99: Cell } | undefined,
    Array<{ status: Cell; n: Cell }>,
    Array<{ method: string; n: Cell }>,
    Array<{ route: string; n: Cell; errors: Cell; p95: Cell }>,
    Array<{ tenant_id: number | null; slug: string | null; n: Cell; errors: Cell }>,
    Array<{ user_kind: HistoryEntry['userKind']; user_id: Cell; tenant_id: number | null; n: Cell }>,
    Array<{ b: string; n: Cell; errors: Cell; p95: Cell }>,
  ];

  const n = Number(totalsRow?.n ?? 0);
  const c4 = Number(totalsRow?.c4 ?? 0);
  const c5 = Number(totalsRow?.c5 ?? 0);
  return {
    method: 'exact',
    window: { from: f.from, to: f.to, bucket },
    totals: { requests: n, clientErrors: c4, serverErrors: c5, errorRate: rate(c4 + c5, n) },
    latency: { mean: num(totalsRow?.mean), p50: num(pctRow?.p50), p95: num(pctRow?.p95), p99: num(pctRow?.p99), max: num(totalsRow?.mx), relativeError: 0 },
    byStatus: byStatus.map((r) => ({ status: Number(r.status), count: Number(r.n) })),
    byMethod: byMethod.map((r) => ({ method: r.method, count: Number(r.n) })),
    byRoute: byRoute.map((r) => ({ route: r.route, count: Number(r.n), errorRate: rate(r.errors, r.n), p95: num(r.p95) })),
    byTenant: byTenant.map((r) => ({ tenantId: r.tenant_id, slug: r.slug ?? null, count: Number(r.n), errorRate: rate(r.errors, r.n) })),
    byUser: byUser.map((r) => ({
      userKind: r.user_kind,
      userId: r.user_id === null ? null : Number(r.user_id),
      tenantId: r.tenant_id,
      count: Number(r.n),
    })),
    series: fillSeries(
      series.map((r) => ({ start: utc(r.b), count: Number(r.n), errors: Number(r.errors), p95: num(r.p95) })),
      f.from,
      f.to,
      bucket,
    ),
  };
}

/** Adds zero points for empty buckets between `from` and `to` (at most 2000 points). */
function fillSeries(points: HistoryStats['series'], from: Date, to: Date, bucket: Bucket): HistoryStats['series'] {
  const step = BUCKET_MS[bucket];
  const start = bucket === 'day' ? Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate()) : Math.floor(from.getTime() / step) * step;
  if ((to.getTime() - start) / step > 2000) return points;
  const byStart = new Map(points.map((p) => [p.start.getTime(), p]));
  const out: HistoryStats['series'] = [];
  for (let t = start; t < to.getTime(); t += step) out.push(byStart.get(t) ?? { start: new Date(t), count: 0, errors: 0, p95: null });
  return out;
}
