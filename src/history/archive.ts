/**
 * Archiving request history to S3 before retention removes it (`silo history prune
 * --archive`): the rows older than the cutoff, one object per UTC month, as
 * gzip-compressed NDJSON (one JSON object per line, RFC 8259 values, newline-delimited)
 * under `history/YYYY/MM/`. Rows stream from MySQL (`knex.stream()`, one row at a time)
 * through gzip into a multipart upload, so any number of rows fits in bounded memory.
 * If any upload fails, the error is thrown before anything is deleted.
 */
import { pipeline, Transform } from 'node:stream';
import { createGzip } from 'node:zlib';
import type { Knex } from 'knex';
import { keyTimestamp, keys, type ObjectStore } from '../storage/s3.js';
import { monthStart } from './partitions.js';

/** One archive object. */
export interface HistoryArchive {
  key: string;
  /** UTC month `YYYY-MM`. */
  month: string;
  rows: number;
  /** Compressed bytes stored. */
  bytes: number;
}

/** Rows to NDJSON lines (dates as ISO 8601 UTC). */
class NdjsonLines extends Transform {
  rows = 0;
  constructor() {
    super({ writableObjectMode: true });
  }
  override _transform(row: Record<string, unknown>, _enc: BufferEncoding, cb: (err?: Error | null, data?: string) => void): void {
    this.rows++;
    cb(null, `${JSON.stringify(row)}\n`);
  }
}

/** Counts bytes on their way through. */
class ByteCounter extends Transform {
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

/**
 * Writes every `request_history` row created before `cutoff` to S3, one object per month.
 * @param now names the objects (`request_history-YYYYMM-before-<cutoff>-<now>`), default now
 * @returns the objects written, oldest month first (empty when there is nothing to archive)
 * @throws UnavailableError `STORAGE_UNAVAILABLE` when an upload fails (nothing is deleted by this function)
 */
export async function archiveHistory(knex: Knex, store: ObjectStore, cutoff: Date, now = new Date()): Promise<HistoryArchive[]> {
  const [months] = (await knex.raw("SELECT DISTINCT DATE_FORMAT(created_at, '%Y-%m') AS m FROM request_history WHERE created_at < ? ORDER BY m", [cutoff])) as [
    Array<{ m: string }>,
  ];
  const out: HistoryArchive[] = [];
  for (const { m } of months) {
    const [year, month] = m.split('-').map(Number) as [number, number];
    const from = new Date(Date.UTC(year, month - 1, 1));
    const next = monthStart(from, 1);
    const until = next < cutoff ? next : cutoff;
    const key = keys.history(year, month, `request_history-${m.replace('-', '')}-before-${keyTimestamp(cutoff)}-${keyTimestamp(now)}`);
    const rows = knex('request_history')
      .where('created_at', '>=', from)
      .andWhere('created_at', '<', until)
      .orderBy([{ column: 'created_at' }, { column: 'id' }])
      .select('*')
      .stream();
    const lines = new NdjsonLines();
    const counter = new ByteCounter();
    const piped = new Promise<void>((resolve, reject) => pipeline(rows, lines, createGzip(), counter, (err) => (err ? reject(err) : resolve())));
    piped.catch(() => undefined);
    await store.upload(key, counter, { contentType: 'application/gzip', metadata: { 'silo-month': m, 'silo-format': 'ndjson' } });
    await piped;
    out.push({ key, month: m, rows: lines.rows, bytes: counter.bytes });
  }
  return out;
}
