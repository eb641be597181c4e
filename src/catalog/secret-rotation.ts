/**
 * Re-encryption of every secret stored in the catalog under the current key
 * (`silo secrets rotate`). The columns are found, not listed: every `*_enc` column of a
 * catalog table with an `id` key (today `database_servers.admin_password_enc`,
 * `tenants.db_password_enc`, `tenants.db_password_prev_enc`).
 *
 * Each row is read with the keyring (current key, else `SILO_SECRET_KEY_PREVIOUS`) and
 * written back in its own statement, compare-and-set on the old value, so a crash leaves
 * every row readable by a process holding both keys and a re-run finishes the rest: a row
 * already written with the current key (`v2.<current key id>`) is skipped.
 */
import type { Knex } from 'knex';
import type { SecretKeyring } from '../lib/secrets.js';

/** What happened to one column. Never carries a secret. */
export interface ColumnRotation {
  table: string;
  column: string;
  /** Non-null values seen. */
  rows: number;
  /** Already under the current key: left alone. */
  current: number;
  /** Needing re-encryption (in a dry run: would be re-encrypted). */
  rotate: number;
  /** Re-encrypted now (0 in a dry run). */
  rotated: number;
  /** Readable with neither key: left alone; their ids are listed. */
  unreadable: number;
  unreadableIds: number[];
}

/** Summary of a rotation run. */
export interface RotationReport {
  dryRun: boolean;
  /** Key id of the current key (the second part of every value written). */
  keyId: string;
  /** True when `SILO_SECRET_KEY_PREVIOUS` was configured. */
  previousKey: boolean;
  columns: ColumnRotation[];
  total: { rows: number; current: number; rotate: number; rotated: number; unreadable: number };
}

/** Rows read per query (keyset pagination on `id`). */
const BATCH = 500;

/** Every `*_enc` column of a table of `database` that has an `id` column, by table then column. */
export async function encryptedColumns(knex: Knex, database: string): Promise<Array<{ table: string; column: string }>> {
  const [rows] = (await knex.raw(
    `SELECT c.TABLE_NAME AS t, c.COLUMN_NAME AS c FROM information_schema.COLUMNS c
       JOIN information_schema.COLUMNS k ON k.TABLE_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME AND k.COLUMN_NAME = 'id'
      WHERE c.TABLE_SCHEMA = ? AND c.COLUMN_NAME LIKE ? ORDER BY c.TABLE_NAME, c.COLUMN_NAME`,
    [database, '%\\_enc'],
  )) as [Array<{ t: string; c: string }>];
  return rows.map((r) => ({ table: r.t, column: r.c }));
}

/**
 * Re-encrypts every stored secret of the catalog under the keyring's current key.
 * @param knex the catalog
 * @param database the catalog's database name (where the columns are looked up)
 * @param opts.dryRun count only, change nothing
 * @returns counts per column and in total
 * @throws ConfigError from the keyring when no key is configured (before anything is read)
 */
export async function rotateStoredSecrets(knex: Knex, database: string, secrets: SecretKeyring, opts: { dryRun?: boolean } = {}): Promise<RotationReport> {
  const keyId = secrets.currentKeyId;
  const columns: ColumnRotation[] = [];
  for (const { table, column } of await encryptedColumns(knex, database)) {
    const c: ColumnRotation = { table, column, rows: 0, current: 0, rotate: 0, rotated: 0, unreadable: 0, unreadableIds: [] };
    let after = 0;
    for (;;) {
      const rows = await knex<Record<string, unknown>>(table).whereNotNull(column).where('id', '>', after).orderBy('id').limit(BATCH).select('id', column);
      if (!rows.length) break;
      for (const row of rows) {
        const id = Number(row.id);
        after = id;
        c.rows++;
        const outcome = await rotateOne(knex, table, column, id, String(row[column]), secrets, Boolean(opts.dryRun));
        if (outcome === 'current') c.current++;
        if (outcome === 'rotate' || outcome === 'rotated') c.rotate++;
        if (outcome === 'rotated') c.rotated++;
        if (outcome === 'unreadable') {
          c.unreadable++;
          c.unreadableIds.push(id);
        }
      }
    }
    columns.push(c);
  }
  const sum = (k: 'rows' | 'current' | 'rotate' | 'rotated' | 'unreadable') => columns.reduce((n, c) => n + c[k], 0);
  return {
    dryRun: Boolean(opts.dryRun),
    keyId,
    previousKey: secrets.hasPrevious,
    columns,
    total: { rows: sum('rows'), current: sum('current'), rotate: sum('rotate'), rotated: sum('rotated'), unreadable: sum('unreadable') },
  };
}

/**
 * One row: skip it when current, else decrypt and write it back under the current key,
 * only if it still holds the value read (another writer, e.g. `rotate-credentials`, wins
 * and its value is looked at again, at most three times).
 */
async function rotateOne(
  knex: Knex,
  table: string,
  column: string,
  id: number,
  stored: string,
  secrets: SecretKeyring,
  dryRun: boolean,
): Promise<'current' | 'rotate' | 'rotated' | 'unreadable'> {
  let value = stored;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (secrets.isCurrent(value)) return 'current';
    let plain: string;
    try {
      plain = secrets.decrypt(value);
    } catch {
      return 'unreadable';
    }
    if (dryRun) return 'rotate';
    const changed = await knex(table)
      .where({ id })
      .where(column, value)
      .update({ [column]: secrets.encrypt(plain) });
    if (changed > 0) return 'rotated';
    const now = await knex<Record<string, unknown>>(table).where({ id }).first(column);
    const stored = now?.[column];
    if (typeof stored !== 'string') return 'current';
    value = stored;
  }
  return 'unreadable';
}
