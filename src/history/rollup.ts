/**
 * Rollups of the request history: what the statistics read instead of the raw rows.
 *
 * Tables (catalog migration 0010), each at three grains (1 minute, 1 hour, 1 day; UTC):
 * - `request_rollup`: per period x tenant x route pattern x method x status (the exact
 *   code, so `byStatus` and the status-class filter both come from it): requests, 4xx,
 *   5xx, sum and max of the duration (ms), sum of the response bytes.
 * - `request_rollup_latency` (all tenants) and `request_rollup_tenant_latency` (per
 *   tenant, the tenant first in the key): per period x route x method x status class x
 *   latency bucket, the number of requests in that bucket.
 * - `request_rollup_users`: per period x tenant x user kind x user id, requests.
 * A request with no tenant is stored with `tenant_id` 0 and no route with route `''`
 * (tenant ids start at 1), as key columns cannot be NULL.
 *
 * The latency histogram is the logarithmic mapping of DDSketch (Masson, Rim, Lee,
 * "DDSketch: a fast and fully-mergeable quantile sketch with relative-error guarantees",
 * VLDB 2019) with relative accuracy {@link SKETCH_ALPHA} = 0.5%: bucket i holds the
 * durations in (γ^(i-1), γ^i] with γ = (1 + α) / (1 - α), and reads back as 2γ^i / (γ + 1),
 * which is within α of every value in the bucket; durations of at most 0.001 ms go to
 * bucket {@link ZERO_BUCKET} and read back as 0. Buckets are integers, so histograms
 * merge by adding counts, in SQL (`n = n + VALUES(n)`). No library is used: the npm
 * sketches (`@datadog/sketches-js`, `hdr-histogram-js`) serialize a whole sketch to one
 * binary value, which cannot be added in SQL, and the mapping is the few lines below.
 *
 * Every grain is written at the same time, by the recorder's flush, in the same
 * transaction as the raw rows ({@link addToRollups}): a batch is in both or in neither,
 * so a failed or retried flush never double counts, and a row the recorder drops or the
 * database refuses is in neither. Concurrent flushes from several API processes add
 * their deltas with `INSERT ... ON DUPLICATE KEY UPDATE` (row locks make each addition
 * exact); rows are sent in key order so that two flushes lock in the same order.
 */
import type { Knex } from 'knex';
import type { HistoryRow } from './recorder.js';

/** Relative accuracy of the latency histogram (DDSketch α). */
export const SKETCH_ALPHA = 0.005;
const GAMMA = (1 + SKETCH_ALPHA) / (1 - SKETCH_ALPHA);
const LN_GAMMA = Math.log(GAMMA);
/** The bucket of durations <= {@link MIN_MS} (read back as 0). */
export const ZERO_BUCKET = -32768;
/** Durations at or below this (ms) are counted as 0. */
export const MIN_MS = 0.001;

/** The histogram bucket of a duration in ms. */
export function bucketOf(ms: number): number {
  if (!(ms > MIN_MS)) return ZERO_BUCKET;
  return Math.ceil(Math.log(ms) / LN_GAMMA);
}

/** The value a bucket reads back as (ms), within {@link SKETCH_ALPHA} of every duration in it. */
export function bucketValue(bucket: number): number {
  return bucket === ZERO_BUCKET ? 0 : (2 * Math.pow(GAMMA, bucket)) / (GAMMA + 1);
}

/**
 * The nearest-rank percentile (the value at rank ceil(p x N)) of a histogram.
 * @param buckets [bucket, count] pairs, in any order
 * @returns ms, or null when the histogram is empty
 */
export function histogramPercentile(buckets: ReadonlyArray<readonly [number, number]>, p: number): number | null {
  let total = 0;
  for (const [, n] of buckets) total += n;
  if (!total) return null;
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const rank = Math.max(1, Math.ceil(p * total));
  let seen = 0;
  for (const [b, n] of sorted) {
    seen += n;
    if (seen >= rank) return bucketValue(b);
  }
  return bucketValue(sorted.at(-1)![0]);
}

/** Rollup grains: the `grain` column's values. */
export const GRAIN = { minute: 1, hour: 2, day: 3 } as const;
export type Grain = keyof typeof GRAIN;
const GRAIN_MS = { minute: 60_000, hour: 3_600_000, day: 86_400_000 } as const;
const GRAINS: Grain[] = ['minute', 'hour', 'day'];

/** User kinds as stored in `request_rollup_users.user_kind` (0: none), in the order of the raw table's ENUM. */
const USER_KIND_CODE = { tenant: 1, platform: 2 } as const;
/** The user kind of a `request_rollup_users.user_kind` code. */
export function userKindOf(code: number): 'tenant' | 'platform' | null {
  return code === 1 ? 'tenant' : code === 2 ? 'platform' : null;
}

/** Start of the period of `grain` containing `t` (UTC), ms. */
export function periodStart(t: number, grain: Grain): number {
  return Math.floor(t / GRAIN_MS[grain]) * GRAIN_MS[grain];
}

const cut = (s: string | null, n: number) => (s === null ? '' : s.length > n ? s.slice(0, n) : s);

/** Accumulated deltas of one batch, keyed by the rollup key joined with `\u0000`. */
interface Deltas {
  counts: Map<string, { key: unknown[]; n: number; c4: number; c5: number; sumMs: number; maxMs: number; bytes: number }>;
  latency: Map<string, { key: unknown[]; n: number }>;
  tenantLatency: Map<string, { key: unknown[]; n: number }>;
  users: Map<string, { key: unknown[]; n: number }>;
}

function bump(m: Map<string, { key: unknown[]; n: number }>, key: unknown[]): void {
  const k = key.join('\u0000');
  const e = m.get(k);
  if (e) e.n++;
  else m.set(k, { key, n: 1 });
}

/** Adds one row to the deltas of each table at each grain. */
function accumulate(d: Deltas, r: HistoryRow): void {
  const t = r.createdAt.getTime();
  const tenant = r.tenantId ?? 0;
  const route = cut(r.route, 255);
  const method = cut(r.method, 10);
  const cls = Math.floor(r.status / 100);
  const bucket = bucketOf(r.durationMs);
  const c4 = r.status >= 400 && r.status < 500 ? 1 : 0;
  const c5 = r.status >= 500 ? 1 : 0;
  for (const g of GRAINS) {
    const p = periodStart(t, g);
    const key = [GRAIN[g], p, tenant, route, method, r.status];
    const k = key.join('\u0000');
    const e = d.counts.get(k);
    if (e) {
      e.n++;
      e.c4 += c4;
      e.c5 += c5;
      e.sumMs += r.durationMs;
      if (r.durationMs > e.maxMs) e.maxMs = r.durationMs;
      e.bytes += r.responseBytes ?? 0;
    } else d.counts.set(k, { key, n: 1, c4, c5, sumMs: r.durationMs, maxMs: r.durationMs, bytes: r.responseBytes ?? 0 });
    bump(d.latency, [GRAIN[g], p, route, method, cls, bucket]);
    bump(d.tenantLatency, [tenant, GRAIN[g], p, route, method, cls, bucket]);
    if (r.userId !== null) bump(d.users, [GRAIN[g], p, tenant, r.userKind ? USER_KIND_CODE[r.userKind] : 0, r.userId]);
  }
}

/** Key order of the rows sent (so that concurrent flushes take their row locks in one order). */
function sortedByKey<T extends { key: unknown[] }>(m: Map<string, T>): T[] {
  const cmp = (a: unknown, b: unknown) => (typeof a === 'number' && typeof b === 'number' ? a - b : String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0);
  return [...m.values()].sort((x, y) => {
    for (let i = 0; i < x.key.length; i++) {
      const c = cmp(x.key[i], y.key[i]);
      if (c) return c;
    }
    return 0;
  });
}

/** At most this many rows per upsert statement. */
const CHUNK = 1000;

async function upsert(knex: Knex, table: string, columns: string[], update: string, rows: unknown[][]): Promise<void> {
  const ph = `(${columns.map(() => '?').join(',')})`;
  for (let i = 0; i < rows.length; i += CHUNK) {
    const part = rows.slice(i, i + CHUNK);
    const bindings: Knex.RawBinding[] = [];
    for (const r of part) bindings.push(...(r as Knex.RawBinding[]));
    // Fixed statement text (table and column names are constants here); every value is bound.
    await knex.raw(
      `INSERT INTO ${table} (${columns.join(',')}) VALUES ${new Array(part.length).fill(ph).join(',')} ON DUPLICATE KEY UPDATE ${update}`,
      bindings,
    );
  }
}

const asDate = (key: unknown[], i: number) => key.map((v, j) => (j === i ? new Date(v as number) : v));

/**
 * Adds `rows` to every rollup table at every grain: one multi-row upsert per table (per
 * 1,000 keys). Call it in the transaction that inserts the same rows into
 * `request_history`, so that both or neither are written.
 * @param knex a transaction (or the catalog Knex, for backfills that hold their own)
 */
export async function addToRollups(knex: Knex, rows: readonly HistoryRow[]): Promise<void> {
  if (!rows.length) return;
  const d: Deltas = { counts: new Map(), latency: new Map(), tenantLatency: new Map(), users: new Map() };
  for (const r of rows) accumulate(d, r);
  await upsert(
    knex,
    'request_rollup',
    ['grain', 'period_start', 'tenant_id', 'route', 'method', 'status', 'requests', 'client_errors', 'server_errors', 'sum_ms', 'max_ms', 'sum_bytes'],
    'requests = requests + VALUES(requests), client_errors = client_errors + VALUES(client_errors), server_errors = server_errors + VALUES(server_errors), ' +
      'sum_ms = sum_ms + VALUES(sum_ms), max_ms = GREATEST(max_ms, VALUES(max_ms)), sum_bytes = sum_bytes + VALUES(sum_bytes)',
    sortedByKey(d.counts).map((e) => [...asDate(e.key, 1), e.n, e.c4, e.c5, e.sumMs, e.maxMs, e.bytes]),
  );
  await upsert(
    knex,
    'request_rollup_latency',
    ['grain', 'period_start', 'route', 'method', 'status_class', 'bucket', 'n'],
    'n = n + VALUES(n)',
    sortedByKey(d.latency).map((e) => [...asDate(e.key, 1), e.n]),
  );
  await upsert(
    knex,
    'request_rollup_tenant_latency',
    ['tenant_id', 'grain', 'period_start', 'route', 'method', 'status_class', 'bucket', 'n'],
    'n = n + VALUES(n)',
    sortedByKey(d.tenantLatency).map((e) => [...asDate(e.key, 2), e.n]),
  );
  await upsert(
    knex,
    'request_rollup_users',
    ['grain', 'period_start', 'tenant_id', 'user_kind', 'user_id', 'requests'],
    'requests = requests + VALUES(requests)',
    sortedByKey(d.users).map((e) => [...asDate(e.key, 1), e.n]),
  );
}

/** The `request_history` columns the rollups are made of, as mysql2 reads them. */
export interface RollupSourceRow {
  created_at: Date;
  tenant_id: number | null;
  user_id: number | string | null;
  user_kind: 'tenant' | 'platform' | null;
  method: string;
  route: string | null;
  status: number;
  duration_ms: number | string;
}

/** A `request_history` row as read for a backfill. */
interface RawRow extends RollupSourceRow {
  id: number | string;
  response_bytes: number | null;
}

const toRow = (r: RawRow): HistoryRow => ({
  createdAt: r.created_at,
  requestId: '',
  tenantId: r.tenant_id,
  userId: r.user_id === null ? null : Number(r.user_id),
  userKind: r.user_kind,
  method: r.method,
  route: r.route,
  path: '',
  query: null,
  status: r.status,
  durationMs: Number(r.duration_ms),
  responseBytes: r.response_bytes,
  ip: null,
  userAgent: null,
  errorCode: null,
});

/** Up to `batch` raw rows with `afterId` < id <= `throughId`, by id, with the columns the rollups use. */
function rawRowsAfter(trx: Knex.Transaction, afterId: number, throughId: number, batch: number): Promise<RawRow[]> {
  return trx('request_history')
    .where('id', '>', afterId)
    .andWhere('id', '<=', throughId)
    .orderBy('id')
    .limit(batch)
    .select('id', 'created_at', 'tenant_id', 'user_id', 'user_kind', 'method', 'route', 'status', 'duration_ms', 'response_bytes') as Promise<RawRow[]>;
}

/**
 * Adds the raw rows with `afterId < id <= throughId` to the rollups, in id order, `batch`
 * rows per transaction. Rows written by the recorder are already in the rollups: this is
 * for rows that were not (existing rows when the rollups were created; rows inserted by SQL).
 * @returns the number of rows added
 */
export async function rollupRawRows(knex: Knex, afterId: number, throughId: number, opts: { batch?: number } = {}): Promise<number> {
  const batch = opts.batch ?? 5000;
  let from = afterId;
  let added = 0;
  while (from < throughId) {
    const n = await knex.transaction(async (trx) => {
      const rows = await rawRowsAfter(trx, from, throughId, batch);
      const last = rows.length ? Number(rows.at(-1)!.id) : throughId;
      await addToRollups(trx, rows.map(toRow));
      from = last;
      return rows.length;
    });
    added += n;
    if (!n) break;
  }
  return added;
}

/**
 * Resumable backfill of the rows that were in `request_history` when the rollups were
 * created: the migration recorded the newest id then (`through_id` of the one row of
 * `request_rollup_backfill`); each batch adds rows after `done_id` and moves `done_id` in
 * the same transaction, so an interrupted backfill continues where it stopped and never
 * adds a row twice. Run by `silo history maintain` (and safe to run concurrently: the
 * progress row is locked per batch).
 * @returns rows added by this call, and whether the backfill is complete
 */
export async function backfillRollups(
  knex: Knex,
  opts: { batch?: number; maxRows?: number } = {},
): Promise<{ added: number; done: boolean; remainingThroughId: number }> {
  const batch = opts.batch ?? 5000;
  const maxRows = opts.maxRows ?? Number.POSITIVE_INFINITY;
  let added = 0;
  for (;;) {
    const r = await knex.transaction(async (trx) => {
      const state = (await trx('request_rollup_backfill').where({ id: 1 }).forUpdate().first()) as
        { done_id: number | string; through_id: number | string } | undefined;
      if (!state) return { n: 0, done: true, through: 0 };
      const done = Number(state.done_id);
      const through = Number(state.through_id);
      if (done >= through) return { n: 0, done: true, through };
      const rows = await rawRowsAfter(trx, done, through, batch);
      const last = rows.length === batch ? Number(rows.at(-1)!.id) : through;
      await addToRollups(trx, rows.map(toRow));
      await trx('request_rollup_backfill').where({ id: 1 }).update({ done_id: last });
      return { n: rows.length, done: last >= through, through };
    });
    added += r.n;
    if (r.done || added >= maxRows) return { added, done: r.done, remainingThroughId: r.through };
  }
}

/** How long each grain of rollups is kept by {@link pruneRollups}, ms. */
export const ROLLUP_RETENTION_MS = {
  /** Minute rollups go with the raw rows (the same cutoff as `silo history prune`). */
  minute: 0,
  /** Hour and day rollups are kept 400 days (the longest statistics window), whatever the raw retention. */
  hour: 400 * 86_400_000,
  day: 400 * 86_400_000,
} as const;

/**
 * Deletes rollup rows: minute rollups of periods starting before `rawCutoff` (they go
 * with the raw rows), hour and day rollups of periods starting more than
 * {@link ROLLUP_RETENTION_MS} before `now` and before `rawCutoff` (kept as long as the
 * raw rows when those are kept longer). In
 * batches of `batchSize` rows, each its own autocommitted statement on a key prefix
 * (`grain, period_start`; per tenant for the per-tenant histograms, which are keyed by
 * tenant first).
 * @returns rows deleted
 */
export async function pruneRollups(knex: Knex, rawCutoff: Date, now = new Date(), batchSize = 10_000): Promise<number> {
  let deleted = 0;
  const cutoffs: Array<[Grain, Date]> = [
    ['minute', rawCutoff],
    ['hour', new Date(Math.min(rawCutoff.getTime(), now.getTime() - ROLLUP_RETENTION_MS.hour))],
    ['day', new Date(Math.min(rawCutoff.getTime(), now.getTime() - ROLLUP_RETENTION_MS.day))],
  ];
  const drain = async (q: () => Knex.QueryBuilder) => {
    for (;;) {
      const n: number = await q().limit(batchSize).del();
      deleted += n;
      if (n < batchSize) break;
    }
  };
  const tenantRows: Array<{ tenant_id: number }> = await knex('request_rollup_tenant_latency').distinct('tenant_id');
  const tenants = tenantRows.map((r) => r.tenant_id);
  for (const [g, before] of cutoffs) {
    for (const table of ['request_rollup', 'request_rollup_latency', 'request_rollup_users']) {
      await drain(() => knex(table).where('grain', GRAIN[g]).andWhere('period_start', '<', before));
    }
    for (const tenantId of tenants) {
      await drain(() => knex('request_rollup_tenant_latency').where({ tenant_id: tenantId, grain: GRAIN[g] }).andWhere('period_start', '<', before));
    }
  }
  return deleted;
}
