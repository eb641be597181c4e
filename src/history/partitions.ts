/**
 * Monthly partitions of `request_history`: partition `pYYYYMM` holds that month (UTC),
 * `pmax` anything later. New months are split off `pmax` ahead of time with
 * `ALTER TABLE ... REORGANIZE PARTITION pmax INTO (...)` (MySQL 8.4 §26.3.1), which is
 * instant while `pmax` is empty; retention drops whole partitions.
 */
import type { Knex } from 'knex';

/** `pYYYYMM` of the month containing `d` (UTC). */
export function partitionName(d: Date): string {
  return `p${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** First instant of the month `offset` months after the month of `d` (UTC). */
export function monthStart(d: Date, offset = 0): Date {
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + offset, 1));
}

const day = (d: Date) => d.toISOString().slice(0, 10);

/** `PARTITION BY RANGE COLUMNS(created_at) (...)` for `before` months back to `after` months ahead of `now`, plus `pmax`. */
export function monthPartitionsSql(now: Date, before: number, after: number): string {
  const parts: string[] = [];
  for (let i = -before; i <= after; i++) parts.push(`PARTITION ${partitionName(monthStart(now, i))} VALUES LESS THAN ('${day(monthStart(now, i + 1))}')`);
  parts.push('PARTITION pmax VALUES LESS THAN (MAXVALUE)');
  return `PARTITION BY RANGE COLUMNS(created_at) (${parts.join(', ')})`;
}

/** A partition of the table with its exclusive upper bound (null for `pmax`). */
export interface HistoryPartition {
  name: string;
  lessThan: Date | null;
  rows: number;
}

/** The partitions of `request_history` in order, or [] when the table is not partitioned. */
export async function listHistoryPartitions(knex: Knex): Promise<HistoryPartition[]> {
  const rows: Array<{ PARTITION_NAME: string | null; PARTITION_DESCRIPTION: string | null; TABLE_ROWS: number }> = await knex('information_schema.PARTITIONS')
    .where({ TABLE_SCHEMA: knex.raw('DATABASE()'), TABLE_NAME: 'request_history' })
    .orderBy('PARTITION_ORDINAL_POSITION')
    .select('PARTITION_NAME', 'PARTITION_DESCRIPTION', 'TABLE_ROWS');
  return rows
    .filter((r) => r.PARTITION_NAME)
    .map((r) => ({
      name: r.PARTITION_NAME!,
      lessThan: r.PARTITION_DESCRIPTION && r.PARTITION_DESCRIPTION !== 'MAXVALUE' ? new Date(`${r.PARTITION_DESCRIPTION.replace(/'/g, '')}T00:00:00Z`) : null,
      rows: Number(r.TABLE_ROWS),
    }));
}

/** ER_SAME_NAME_PARTITION: another process split the same month off first. */
const SAME_NAME_PARTITION = 1517;

/**
 * Exact number of rows in one partition (`SELECT COUNT(*) ... PARTITION (name)`), unlike
 * the estimate `TABLE_ROWS` of information_schema.
 * @throws Error when `name` is not `pmax` or `pYYYYMM`
 */
export async function countPartitionRows(knex: Knex, name: string): Promise<number> {
  if (!/^(pmax|p\d{6})$/.test(name)) throw new Error(`not a history partition name: ${JSON.stringify(name)}`);
  const [rows] = (await knex.raw(`SELECT COUNT(*) AS n FROM request_history PARTITION (${name})`)) as [Array<{ n: number | string }>];
  return Number(rows[0]?.n ?? 0);
}

/**
 * Makes sure monthly partitions exist up to `monthsAhead` months after `now`, splitting
 * them off `pmax` with `REORGANIZE PARTITION pmax INTO (...)`. While `pmax` is empty that
 * is a metadata change; rows already in `pmax` (written while a month was missing) are
 * moved into their months by the same statement (a copy of `pmax`'s rows only), so
 * `pmax` keeps only rows dated beyond `monthsAhead` (a clock error). Idempotent, also when
 * two processes run it at once; a no-op on an unpartitioned table.
 * @returns names of partitions added (by this call)
 */
export async function ensureHistoryPartitions(knex: Knex, now = new Date(), monthsAhead = 2): Promise<string[]> {
  try {
    return await splitMonthsOffPmax(knex, now, monthsAhead);
  } catch (err) {
    if ((err as { errno?: unknown }).errno !== SAME_NAME_PARTITION) throw err;
    return splitMonthsOffPmax(knex, now, monthsAhead);
  }
}

async function splitMonthsOffPmax(knex: Knex, now: Date, monthsAhead: number): Promise<string[]> {
  const parts = await listHistoryPartitions(knex);
  if (!parts.length || parts.at(-1)!.name !== 'pmax') return [];
  const last = parts.filter((p) => p.lessThan).at(-1);
  const added: string[] = [];
  const defs: string[] = [];
  let start = last ? last.lessThan! : monthStart(now);
  const until = monthStart(now, monthsAhead + 1);
  while (start < until) {
    const next = monthStart(start, 1);
    defs.push(`PARTITION ${partitionName(start)} VALUES LESS THAN ('${day(next)}')`);
    added.push(partitionName(start));
    start = next;
  }
  if (defs.length) {
    await knex.raw(`ALTER TABLE request_history REORGANIZE PARTITION pmax INTO (${defs.join(', ')}, PARTITION pmax VALUES LESS THAN (MAXVALUE))`);
  }
  return added;
}
