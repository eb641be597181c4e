/**
 * The request-history recorder: rows are buffered in memory and written to the catalog
 * in multi-row INSERTs, when `batchSize` rows are waiting or every `flushMs`. A request
 * never waits for its row. The buffer is bounded: past `bufferMax` the oldest rows are
 * dropped and counted. When the catalog is down, rows stay buffered and the flush is
 * retried with exponential backoff (from `flushMs` up to 30 s). `close()` flushes what is
 * buffered (graceful shutdown).
 */
import type { Knex } from 'knex';
import type { Logger } from 'pino';

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
}

/** Counters, for `/metrics` and tests. */
export interface RecorderStats {
  buffered: number;
  written: number;
  inserts: number;
  dropped: number;
  failedFlushes: number;
}

const cut = (s: string | null, n: number) => (s === null ? null : s.length > n ? s.slice(0, n) : s);

/** Columns of `request_history` in the order {@link toValues} gives them. */
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

function toValues(r: HistoryRow): unknown[] {
  return [
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
  ];
}

/**
 * One multi-row INSERT for a batch: the statement text is fixed (column list and `?`
 * placeholders, no input in it) and every value is bound, which costs less per row than
 * the query builder for batches of hundreds of rows.
 */
function insertBatch(knex: Knex, batch: HistoryRow[]): Promise<unknown> {
  const bindings: Knex.RawBinding[] = [];
  for (const r of batch) bindings.push(...(toValues(r) as Knex.RawBinding[]));
  return knex.raw(`INSERT INTO request_history (${COLUMNS.join(',')}) VALUES ${new Array(batch.length).fill(ROW_PLACEHOLDERS).join(',')}`, bindings);
}

/** Buffers rows and writes them in batches. */
export class HistoryRecorder {
  private buffer: HistoryRow[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private backoffMs: number;
  private nextAttempt = 0;
  private closed = false;
  readonly stats: RecorderStats = { buffered: 0, written: 0, inserts: 0, dropped: 0, failedFlushes: 0 };

  constructor(
    private readonly knex: Knex,
    private readonly opts: RecorderOptions,
    private readonly log?: Logger,
  ) {
    this.backoffMs = opts.flushMs;
    this.timer = setInterval(() => void this.flush(), Math.max(10, opts.flushMs));
    this.timer.unref();
  }

  /** Queues a row (never blocks, never throws). */
  record(row: HistoryRow): void {
    if (this.closed) return;
    this.buffer.push(row);
    if (this.buffer.length > this.opts.bufferMax) {
      const excess = this.buffer.length - this.opts.bufferMax;
      this.buffer.splice(0, excess);
      this.stats.dropped += excess;
      this.log?.warn({ dropped: excess, droppedTotal: this.stats.dropped, bufferMax: this.opts.bufferMax }, 'request history buffer full: oldest rows dropped');
    }
    this.stats.buffered = this.buffer.length;
    if (this.buffer.length >= this.opts.batchSize && !this.flushing) void this.flush(false, true);
  }

  /**
   * Writes buffered rows in batches of at most `batchSize`. Concurrent calls share one flush. On
   * failure the rows go back to the front of the buffer and the next attempt waits for
   * the backoff (unless `force`).
   */
  flush(force = false, fullBatchesOnly = false): Promise<void> {
    if (this.flushing) return this.flushing;
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
      const batch = this.buffer.splice(0, Math.min(size, remaining));
      remaining -= batch.length;
      this.stats.buffered = this.buffer.length;
      try {
        await insertBatch(this.knex, batch);
        this.stats.written += batch.length;
        this.stats.inserts++;
        this.backoffMs = this.opts.flushMs;
        this.nextAttempt = 0;
      } catch (err) {
        // Put the batch back, oldest first, within the bound.
        this.buffer.unshift(...batch);
        if (this.buffer.length > this.opts.bufferMax) {
          const excess = this.buffer.length - this.opts.bufferMax;
          this.buffer.splice(0, excess);
          this.stats.dropped += excess;
        }
        this.stats.buffered = this.buffer.length;
        this.stats.failedFlushes++;
        this.nextAttempt = Date.now() + this.backoffMs;
        this.log?.warn({ err, buffered: this.buffer.length, retryInMs: this.backoffMs }, 'request history flush failed; will retry');
        this.backoffMs = Math.min(this.backoffMs * 2, this.opts.maxBackoffMs ?? 30_000);
        return;
      }
    }
  }

  /**
   * Stops the timer and flushes what is buffered, retrying for up to `timeoutMs`.
   * @returns rows that could not be written (0 when all were)
   */
  async close(timeoutMs = 5_000): Promise<number> {
    clearInterval(this.timer);
    this.closed = true;
    const end = Date.now() + timeoutMs;
    while (this.buffer.length && Date.now() < end) {
      await this.flush(true);
      if (this.buffer.length) await new Promise((r) => setTimeout(r, Math.min(200, Math.max(0, end - Date.now()))));
    }
    if (this.buffer.length) this.log?.error({ lost: this.buffer.length }, 'request history rows not written at shutdown');
    return this.buffer.length;
  }
}
