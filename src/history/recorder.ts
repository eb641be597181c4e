/**
 * The request-history recorder: rows are buffered in memory and written to the catalog
 * in multi-row INSERTs, when `batchSize` rows are waiting or every `flushMs`. A request
 * never waits for its row.
 *
 * - The buffer is a deque (`denque`, a ring buffer): past `bufferMax` the oldest row is
 *   dropped in O(1) and counted; one warning per `warnIntervalMs` says how many went.
 * - When the catalog is unreachable (a connection error, a lock wait, a read-only
 *   server), rows stay buffered and the flush is retried with exponential backoff (from
 *   `flushMs` up to 30 s).
 * - A batch refused for its data (SQLSTATE class 22 or 23, e.g. a value out of range in
 *   STRICT mode) is split in halves until the refused rows are alone; those are dropped,
 *   counted in `rejected` and logged, the others written. Any other error is retried
 *   `maxAttempts` times, then the batch is dropped, counted and logged: nothing is
 *   retried forever.
 * - After `close()`, new rows are counted as dropped. `close()` waits for the flush in
 *   flight and flushes the rest, for up to `timeoutMs`; what it could not confirm written
 *   it logs and returns.
 */
import Denque from 'denque';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { isConnectionError, mysqlErrno } from '../lib/knex.js';
import { addToRollups } from './rollup.js';

/** One row of `request_history`, as the recorder receives it. Durations in ms. */
export interface HistoryRow {
  createdAt: Date;
  requestId: string;
  tenantId: number | null;
  userId: number | null;
  userKind: 'tenant' | 'platform' | null;
  method: string;
  route: string | null;
  path: string;
  query: string | null;
  status: number;
  durationMs: number;
  responseBytes: number | null;
  ip: string | null;
  userAgent: string | null;
  errorCode: string | null;
}

/** Recorder settings (from `SILO_HISTORY_*`). */
export interface RecorderOptions {
  batchSize: number;
  flushMs: number;
  bufferMax: number;
  /** Upper bound of the retry backoff, ms (default 30000). */
  maxBackoffMs?: number;
  /** At most one "buffer full" warning per this many ms (default 10000). */
  warnIntervalMs?: number;
  /** Attempts at a batch failing for a reason that is neither the connection nor its data (default 3). */
  maxAttempts?: number;
}

/** Counters, for `/metrics` and tests. */
export interface RecorderStats {
  buffered: number;
  written: number;
  inserts: number;
  /** Rows dropped unwritten: buffer full, batch given up, or recorded after `close()`. */
  dropped: number;
  /** Rows refused by the database for their values (also counted in `dropped`). */
  rejected: number;
  failedFlushes: number;
}

const cut = (s: string | null, n: number) => (s === null ? null : s.length > n ? s.slice(0, n) : s);

/** Columns of `request_history` in the order {@link pushValues} gives their values. */
const COLUMNS = [
  'created_at',
  'request_id',
  'tenant_id',
  'user_id',
  'user_kind',
  'method',
  'route',
  'path',
  'query',
  'status',
  'duration_ms',
  'response_bytes',
  'ip',
  'user_agent',
  'error_code',
];
const ROW_PLACEHOLDERS = `(${COLUMNS.map(() => '?').join(',')})`;
const INSERT_PREFIX = `INSERT INTO request_history (${COLUMNS.join(',')}) VALUES `;

/** Appends the values of `r` to `out`, in {@link COLUMNS} order, cut to the column widths. */
function pushValues(out: Knex.RawBinding[], r: HistoryRow): void {
  out.push(
    r.createdAt,
    cut(r.requestId, 64),
    r.tenantId,
    r.userId,
    r.userKind,
    cut(r.method, 10),
    cut(r.route, 255),
    cut(r.path, 2048),
    cut(r.query, 2048),
    r.status,
    r.durationMs,
    r.responseBytes,
    cut(r.ip, 45),
    cut(r.userAgent, 512),
    cut(r.errorCode, 64),
  );
}

/** The `(?,...),(?,...)` list for the largest batch asked so far; smaller batches take a prefix of it. */
let placeholders = ROW_PLACEHOLDERS;
let placeholderRows = 1;

/** The INSERT statement for `n` rows: a prefix of one cached text, built again only for a larger batch. */
function insertSql(n: number): string {
  if (n > placeholderRows) {
    placeholders = new Array<string>(n).fill(ROW_PLACEHOLDERS).join(',');
    placeholderRows = n;
  }
  return INSERT_PREFIX + placeholders.slice(0, n * (ROW_PLACEHOLDERS.length + 1) - 1);
}

/**
 * One multi-row INSERT for a batch: the statement text is fixed (column list and `?`
 * placeholders, no input in it; built once per process for the batch size) and every
 * value is bound, which costs less per row than the query builder for batches of
 * hundreds of rows.
 */
function insertBatch(knex: Knex, batch: readonly HistoryRow[]): Promise<unknown> {
  const bindings: Knex.RawBinding[] = [];
  for (const r of batch) pushValues(bindings, r);
  return knex.raw(insertSql(batch.length), bindings);
}

/** MySQL errors that say "not now" rather than "not this row": retried with backoff. */
const TRANSIENT_ERRNOS = new Set([
  1205, // ER_LOCK_WAIT_TIMEOUT
  1213, // ER_LOCK_DEADLOCK
  1290, // ER_OPTION_PREVENTS_STATEMENT (read-only server, e.g. during a failover)
  1836, // ER_READ_ONLY_MODE
  1792, // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
]);

/** How a failed INSERT is handled. */
type Failure = 'transient' | 'data' | 'other';

function classify(err: unknown): Failure {
  if (isConnectionError(err) || TRANSIENT_ERRNOS.has(mysqlErrno(err) ?? 0)) return 'transient';
  const state = (err as { sqlState?: unknown } | null)?.sqlState;
  // SQLSTATE class 22 "data exception", 23 "integrity constraint violation" (SQL:2016, MySQL 8.4 §B.1).
  if (typeof state === 'string' && /^2[23]/.test(state)) return 'data';
  return 'other';
}

/** Buffers rows and writes them in batches. */
export class HistoryRecorder {
  private readonly buffer = new Denque<HistoryRow>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  /** Rows taken from the buffer by the flush in flight and not yet written or dropped. */
  private inFlight = 0;
  private backoffMs: number;
  private nextAttempt = 0;
  private attempts = 0;
  private closed = false;
  private lastWarnAt = 0;
  private droppedSinceWarn = 0;
  readonly stats: RecorderStats = { buffered: 0, written: 0, inserts: 0, dropped: 0, rejected: 0, failedFlushes: 0 };

  constructor(
    private readonly knex: Knex,
    private readonly opts: RecorderOptions,
    private readonly log?: Logger,
  ) {
    this.backoffMs = opts.flushMs;
    this.timer = setInterval(() => void this.flush(), Math.max(10, opts.flushMs));
    this.timer.unref();
  }

  /** Queues a row (never blocks, never throws). After `close()` the row is counted as dropped. */
  record(row: HistoryRow): void {
    if (this.closed) {
      this.stats.dropped++;
      return;
    }
    this.buffer.push(row);
    if (this.buffer.length > this.opts.bufferMax) this.dropOldest(this.buffer.length - this.opts.bufferMax);
    this.stats.buffered = this.buffer.length;
    if (this.buffer.length >= this.opts.batchSize && !this.flushing) void this.flush(false, true);
  }

  /** Drops `n` rows from the front, O(1) each, warning at most once per interval. */
  private dropOldest(n: number): void {
    for (let i = 0; i < n; i++) this.buffer.shift();
    this.stats.dropped += n;
    this.droppedSinceWarn += n;
    const now = Date.now();
    if (now - this.lastWarnAt >= (this.opts.warnIntervalMs ?? 10_000)) {
      this.log?.warn(
        { dropped: this.droppedSinceWarn, droppedTotal: this.stats.dropped, bufferMax: this.opts.bufferMax },
        'request history buffer full: oldest rows dropped',
      );
      this.lastWarnAt = now;
      this.droppedSinceWarn = 0;
    }
  }

  /**
   * Writes buffered rows in batches of at most `batchSize`. Concurrent calls share one flush,
   * except that a forced call made while a flush runs (which writes only the rows buffered when
   * it started) flushes again after it: when a forced flush resolves, every row buffered at its
   * call was attempted. On a transient failure the rows go back to the front of the buffer and
   * the next attempt waits for the backoff (unless `force`).
   */
  flush(force = false, fullBatchesOnly = false): Promise<void> {
    if (this.flushing) return force ? this.flushing.then(() => this.flush(true, fullBatchesOnly)) : this.flushing;
    if (!this.buffer.length || (!force && Date.now() < this.nextAttempt)) return Promise.resolve();
    this.flushing = this.drain(fullBatchesOnly).finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  /**
   * Writes the rows buffered when it starts (with `fullBatchesOnly`, only whole batches);
   * rows that arrive meanwhile wait for the next flush, so that a busy server writes full
   * batches instead of chasing each new row with a tiny INSERT.
   */
  private async drain(fullBatchesOnly: boolean): Promise<void> {
    const size = this.opts.batchSize;
    let remaining = fullBatchesOnly ? Math.floor(this.buffer.length / size) * size : this.buffer.length;
    while (remaining > 0 && this.buffer.length) {
      const batch: HistoryRow[] = [];
      const n = Math.min(size, remaining, this.buffer.length);
      for (let i = 0; i < n; i++) batch.push(this.buffer.shift()!);
      remaining -= n;
      this.inFlight = n;
      this.stats.buffered = this.buffer.length;
      try {
        const failure = await this.write(batch);
        if (failure) {
          if (!this.retryLater(batch, failure)) return;
        } else {
          this.backoffMs = this.opts.flushMs;
          this.nextAttempt = 0;
          this.attempts = 0;
        }
      } finally {
        this.inFlight = 0;
      }
    }
  }

  /**
   * Inserts `rows`; a batch refused for its data is split in halves until each refused
   * row is alone, and those rows are dropped.
   * @returns undefined when every row is written or dropped, else the failure and its error
   */
  private async write(rows: readonly HistoryRow[]): Promise<{ kind: Failure; err: unknown } | undefined> {
    try {
      // The raw rows and their rollups (src/history/rollup.ts) in one transaction: both or neither.
      await this.knex.transaction(async (trx) => {
        await insertBatch(trx, rows);
        await addToRollups(trx, rows);
      });
      this.stats.written += rows.length;
      this.stats.inserts++;
      return undefined;
    } catch (err) {
      const kind = classify(err);
      if (kind !== 'data') return { kind, err };
      if (rows.length === 1) {
        this.stats.rejected++;
        this.stats.dropped++;
        this.log?.error({ err, requestId: rows[0]!.requestId, rejectedTotal: this.stats.rejected }, 'request history row rejected by the database: dropped');
        return undefined;
      }
      const half = Math.ceil(rows.length / 2);
      return (await this.write(rows.slice(0, half))) ?? (await this.write(rows.slice(half)));
    }
  }

  /**
   * After a failed batch: puts it back (oldest first, within the bound) for a later attempt,
   * or drops it once an error that is not transient has been seen `maxAttempts` times.
   * @returns false: stop this flush
   */
  private retryLater(batch: HistoryRow[], failure: { kind: Failure; err: unknown }): boolean {
    this.stats.failedFlushes++;
    this.attempts++;
    if (failure.kind === 'other' && this.attempts >= (this.opts.maxAttempts ?? 3)) {
      this.stats.dropped += batch.length;
      this.attempts = 0;
      this.log?.error({ err: failure.err, lost: batch.length, droppedTotal: this.stats.dropped }, 'request history batch failed repeatedly: dropped');
      return true;
    }
    for (let i = batch.length - 1; i >= 0; i--) this.buffer.unshift(batch[i]!);
    if (this.buffer.length > this.opts.bufferMax) {
      const excess = this.buffer.length - this.opts.bufferMax;
      for (let i = 0; i < excess; i++) this.buffer.shift();
      this.stats.dropped += excess;
    }
    this.stats.buffered = this.buffer.length;
    this.nextAttempt = Date.now() + this.backoffMs;
    this.log?.warn({ err: failure.err, buffered: this.buffer.length, retryInMs: this.backoffMs }, 'request history flush failed; will retry');
    this.backoffMs = Math.min(this.backoffMs * 2, this.opts.maxBackoffMs ?? 30_000);
    return false;
  }

  /**
   * Stops the timer, waits for the flush in flight and flushes what is buffered, retrying for up
   * to `timeoutMs`. Rows recorded afterwards are counted as dropped.
   * @returns rows not confirmed written when it returns (buffered and in flight; 0 when all were), also logged
   */
  async close(timeoutMs = 5_000): Promise<number> {
    clearInterval(this.timer);
    this.closed = true;
    const end = Date.now() + timeoutMs;
    const left = () => end - Date.now();
    const within = async (p: Promise<unknown>) => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([p, new Promise((r) => (timer = setTimeout(r, Math.max(0, left()))))]);
      clearTimeout(timer);
    };
    while ((this.buffer.length || this.flushing) && left() > 0) {
      await within(this.flush(true));
      if (this.buffer.length && !this.flushing && left() > 0) await within(new Promise((r) => setTimeout(r, Math.min(200, left()))));
    }
    const lost = this.buffer.length + (this.flushing ? this.inFlight : 0);
    if (lost)
      this.log?.error({ lost, buffered: this.buffer.length, inFlight: this.flushing ? this.inFlight : 0 }, 'request history rows not written at shutdown');
    return lost;
  }
}
