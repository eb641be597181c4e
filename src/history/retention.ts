/**
 * Retention of the request history: `silo history prune --older-than 90d`.
 *
 * Old months go with `ALTER TABLE request_history DROP PARTITION ...`, which removes a
 * partition and every row in it at the cost of dropping a file, without a row-by-row
 * delete or undo log (MySQL 8.4 §26.3.1 "Management of RANGE and LIST Partitions";
 * MariaDB "Partition Maintenance"). A RANGE partition holds the rows below its
 * `VALUES LESS THAN` bound and at or above the bound of the partition before it (the first
 * partition has no lower bound), so a partition lies wholly before the cutoff exactly when
 * its bound is at or before the cutoff. What is left older than the cutoff (the part of
 * the cutoff's month before it, or everything on an unpartitioned table) is deleted in
 * batches of `batchSize` rows, each its own autocommitted statement, so that a large
 * delete holds no long transaction and no long lock.
 *
 * The rollups (src/history/rollup.ts) follow: minute rollups of periods that start before
 * the cutoff go with the raw rows; hour and day rollups are kept for
 * `ROLLUP_RETENTION_MS` (400 days, the longest statistics window), so statistics of older
 * whole hours and days outlive the raw rows. The rollup tables are not partitioned (they
 * are small next to the raw rows); they are pruned by batched deletes on their keys.
 */
import type { Knex } from 'knex';
import { ValidationError } from '../lib/errors.js';
import { ensureHistoryPartitions, listHistoryPartitions } from './partitions.js';
import { pruneRollups } from './rollup.js';

/** A monthly partition name; anything else read from information_schema is refused. */
const PARTITION_NAME = /^p\d{6}$/;

const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 } as const;

/**
 * Parses a duration such as `30m`, `24h`, `90d` or `2w` (minutes, hours, days, weeks).
 * @returns the duration in milliseconds (> 0)
 * @throws ValidationError `INVALID_DURATION` for anything else (`0d`, `1.5h`, `90`, `-1d`, `3y`)
 */
export function parseDuration(value: string, field = 'duration'): number {
  const m = /^([1-9]\d{0,5})([mhdw])$/.exec(value.trim());
  if (!m) {
    throw new ValidationError(
      `${field}: "${value}" is not a duration; use a whole number and a unit m, h, d or w (e.g. 30m, 24h, 90d, 2w)`,
      { field, value },
      'INVALID_DURATION',
    );
  }
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

/** Options of {@link pruneHistory}. */
export interface PruneOptions {
  /** Rows with `created_at` strictly before this instant are removed. Must not be in the future. */
  olderThan: Date;
  /** Report what would be removed and change nothing (no DDL, no delete, no new partitions). */
  dryRun?: boolean;
  /** Rows per DELETE statement (default 10,000). */
  batchSize?: number;
  /** The current time (tests); default now. */
  now?: Date;
}

/** What {@link pruneHistory} removed (or, with `dryRun`, would remove). */
export interface PruneResult {
  /** Partitions dropped, oldest first. */
  droppedPartitions: string[];
  /** Rows deleted one by one outside the dropped partitions (the rows of dropped partitions are not counted). */
  deletedRows: number;
  /** Rollup rows deleted (not counted in a dry run: 0). */
  deletedRollupRows: number;
  /** The cutoff: rows before it are gone. */
  cutoff: Date;
}

/**
 * Removes request-history rows created before `olderThan`: drops every monthly partition
 * wholly before it, deletes the remaining older rows in batches, and makes sure the
 * partitions of the coming months exist. On an unpartitioned table it only deletes rows.
 * Safe to run while the API writes new rows; running it twice removes nothing more.
 * @throws ValidationError `INVALID_CUTOFF` when `olderThan` is invalid or in the future
 */
export async function pruneHistory(knex: Knex, opts: PruneOptions): Promise<PruneResult> {
  const cutoff = opts.olderThan;
  const now = opts.now ?? new Date();
  if (Number.isNaN(cutoff.getTime()) || cutoff > now) {
    throw new ValidationError('the cutoff must be a valid time that is not in the future', { field: 'olderThan' }, 'INVALID_CUTOFF');
  }
  const batchSize = opts.batchSize ?? 10_000;

  const partitions = await listHistoryPartitions(knex);
  const droppable = partitions.filter((p) => p.lessThan && p.lessThan <= cutoff);
  for (const p of droppable) {
    if (!PARTITION_NAME.test(p.name)) throw new Error(`unexpected partition name ${JSON.stringify(p.name)} on request_history: nothing was dropped`);
  }
  const droppedPartitions = droppable.map((p) => p.name);

  if (opts.dryRun) {
    const q = knex('request_history').where('created_at', '<', cutoff);
    const above = droppable.at(-1)?.lessThan;
    if (above) q.andWhere('created_at', '>=', above);
    const row = await q.count({ n: '*' }).first();
    return { droppedPartitions, deletedRows: Number(row?.n ?? 0), deletedRollupRows: 0, cutoff };
  }

  if (droppedPartitions.length) {
    await knex.raw(`ALTER TABLE request_history DROP PARTITION ${droppedPartitions.join(', ')}`);
  }
  let deletedRows = 0;
  for (;;) {
    const n: number = await knex('request_history').where('created_at', '<', cutoff).limit(batchSize).del();
    deletedRows += n;
    if (n < batchSize) break;
  }
  const deletedRollupRows = await pruneRollups(knex, cutoff, now, batchSize);
  await ensureHistoryPartitions(knex, now);
  return { droppedPartitions, deletedRows, deletedRollupRows, cutoff };
}
