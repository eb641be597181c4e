/**
 * What every CRM resource shares: the acting user, optimistic locking, sorting over an
 * allow-list, pagination, and mapping MySQL errors to API errors.
 */
import type { Knex } from 'knex';
import { z } from 'zod';
import { ConflictError, NotFoundError, SiloError, ValidationError } from '../lib/errors.js';
import { quoteIdentifier } from '../lib/identifiers.js';
import { MysqlErrno, mysqlErrno } from '../lib/knex.js';
import { pageOffset } from '../lib/validation.js';
import { logActivity, type ActivityEntity, type Changes } from './activity.js';

/** Who acts: the tenant user id (from the access token) and its role's name. */
export interface Actor {
  userId: number;
  role: string;
}

/** List parameters every resource accepts. */
export interface ListParams extends DateRanges {
  page: number;
  pageSize: number;
  q?: string;
  sort?: string;
  includeDeleted?: boolean;
}

/**
 * Applies `sort` such as `-createdAt,name` (a leading `-` means descending) using an
 * allow-list of API field -> column; `id` breaks ties so pages are stable.
 * @throws ValidationError `INVALID_SORT` naming the allowed fields
 */
export function applySort(q: Knex.QueryBuilder, sort: string | undefined, allowed: Record<string, string>, fallback = '-createdAt'): void {
  const parts = (sort ?? fallback)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (parts.length > 5) throw new ValidationError('sort takes at most 5 fields', { field: 'sort' }, 'INVALID_SORT');
  for (const p of parts) {
    const desc = p.startsWith('-');
    const field = desc ? p.slice(1) : p;
    // Own properties only: `__proto__`, `constructor` and friends are not sort fields.
    const column = Object.hasOwn(allowed, field) ? allowed[field] : undefined;
    if (!column)
      throw new ValidationError(
        `cannot sort by ${JSON.stringify(field)}; use ${Object.keys(allowed).join(', ')}`,
        { field: 'sort', allowed: Object.keys(allowed) },
        'INVALID_SORT',
      );
    q.orderBy(column, desc ? 'desc' : 'asc');
  }
  q.orderBy('id', 'desc');
}

/** An ISO 8601 date-time with `Z` or an offset (`2026-01-31T09:30:00Z`), as a `Date` (ms precision, like the columns). */
export const isoDateTime = z.iso
  .datetime({ offset: true, message: 'expected an ISO 8601 date-time such as 2026-01-31T09:30:00Z' })
  .transform((s) => new Date(s));

/**
 * The created/updated range filters every CRM list takes, as query parameters (spread
 * them into a list's zod query: `paginationQuery.extend({ ...dateRangeQuery, ... })`).
 * `...After` is inclusive (`>=`), `...Before` exclusive (`<`): ranges are half-open, so
 * `createdAfter=2026-01-01T00:00:00Z&createdBefore=2026-02-01T00:00:00Z` is January and
 * consecutive ranges never overlap. Apply them with {@link applyDateRanges}.
 */
export const dateRangeQuery = {
  createdAfter: isoDateTime.optional().describe('created at or after this instant (inclusive), ISO 8601 date-time'),
  createdBefore: isoDateTime.optional().describe('created strictly before this instant (exclusive), ISO 8601 date-time'),
  updatedAfter: isoDateTime.optional().describe('last updated at or after this instant (inclusive), ISO 8601 date-time'),
  updatedBefore: isoDateTime.optional().describe('last updated strictly before this instant (exclusive), ISO 8601 date-time'),
};

/** The parsed values of {@link dateRangeQuery}. */
export interface DateRanges {
  createdAfter?: Date;
  createdBefore?: Date;
  updatedAfter?: Date;
  updatedBefore?: Date;
}

/**
 * Adds the created/updated ranges of {@link dateRangeQuery} to a query, on the
 * `created_at` and `updated_at` columns (qualified with `table` when given).
 * @throws ValidationError `INVALID_DATE_RANGE` when an `...After` is later than its `...Before`
 */
export function applyDateRanges(q: Knex.QueryBuilder, f: DateRanges, table?: string): void {
  const col = (c: string) => (table ? `${table}.${c}` : c);
  for (const [name, after, before] of [
    ['created', f.createdAfter, f.createdBefore],
    ['updated', f.updatedAfter, f.updatedBefore],
  ] as const) {
    if (after && before && after.getTime() > before.getTime())
      throw new ValidationError(
        `${name}After (${after.toISOString()}) is later than ${name}Before (${before.toISOString()})`,
        { field: `${name}After`, fields: [{ path: `querystring.${name}After`, message: `must not be later than ${name}Before` }] },
        'INVALID_DATE_RANGE',
      );
    if (after) q.where(col(`${name}_at`), '>=', after);
    if (before) q.where(col(`${name}_at`), '<', before);
  }
}

/** Escapes `%`, `_` and `\` for a LIKE pattern (MySQL §14.8.1), bound as a value. */
export function likeContains(term: string): string {
  return `%${term.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** Runs a count and a page of a query. @throws ValidationError `PAGE_TOO_DEEP` past 10,000 rows (see `pageOffset`) */
export async function paginate<R, T>(
  base: Knex.QueryBuilder,
  p: { page: number; pageSize: number },
  sort: (q: Knex.QueryBuilder) => void,
  map: (row: R) => T,
): Promise<{ data: T[]; total: number }> {
  const pageQ = base.clone().limit(p.pageSize).offset(pageOffset(p.page, p.pageSize)).select('*');
  sort(pageQ);
  const [rows, count] = await Promise.all([
    pageQ as Promise<R[]>,
    base.clone().clearSelect().clearOrder().count({ n: '*' }).first() as Promise<{ n?: number } | undefined>,
  ]);
  return { data: rows.map(map), total: Number(count?.n ?? 0) };
}

/**
 * Checks the version a client sent against the row's (optimistic locking).
 * @throws SiloError 428 `VERSION_REQUIRED` when none was sent (RFC 6585 §3); ConflictError `VERSION_CONFLICT`
 */
export function assertVersion(sent: number | undefined, current: number, what: string): void {
  if (sent === undefined)
    throw new SiloError(`send the ${what}'s current version (body field "version" or If-Match)`, { code: 'VERSION_REQUIRED', status: 428 });
  if (sent !== current)
    throw new ConflictError(`the ${what} was changed meanwhile: current version is ${current}`, 'VERSION_CONFLICT', { currentVersion: current });
}

/** 404 for a missing row. */
export function notFound(what: string, id: number): NotFoundError {
  return new NotFoundError(`${what} ${id} not found`, `${what.toUpperCase().replace(/ /g, '_')}_NOT_FOUND`);
}

/** 409 `NOT_DELETED`: a bulk restore named a row that is not deleted. */
export function notDeleted(what: string, id: number): ConflictError {
  return new ConflictError(`${what} ${id} is not deleted`, 'NOT_DELETED');
}

/**
 * Maps a duplicate-key error to a 409 with `code`, others pass through.
 * @param unique index name -> [code, message]
 */
export function mapUniqueViolation(err: unknown, unique: Record<string, [string, string]>): unknown {
  if (mysqlErrno(err) !== MysqlErrno.DUP_ENTRY) return err;
  const msg = String((err as Error).message);
  for (const [index, [code, message]] of Object.entries(unique)) {
    if (msg.includes(index)) return new ConflictError(message, code);
  }
  return new ConflictError('a record with these values already exists', 'DUPLICATE');
}

/** Runs `fn` in `trx` when given (the caller owns it), else in a new transaction. */
export function inTransaction<T>(knex: Knex, trx: Knex.Transaction | undefined, fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  return trx ? fn(trx) : knex.transaction(fn);
}

/**
 * Reads one row by id, typed as `R` (the caller names its table's row type).
 * @param opts.includeDeleted also return a soft-deleted row; `lock` takes `FOR UPDATE`
 * @throws NotFoundError `<WHAT>_NOT_FOUND` when missing (or soft-deleted without includeDeleted)
 */
export async function loadRow<R extends { deleted_at?: Date | null }>(
  db: Knex | Knex.Transaction,
  table: string,
  what: string,
  id: number,
  opts: { includeDeleted?: boolean; lock?: boolean } = {},
): Promise<R> {
  const [rows] = (await db.raw(rowByIdSql(table, opts.lock === true), [id])) as [R[], unknown];
  const row = rows[0];
  if (!row || (row.deleted_at && !opts.includeDeleted)) throw notFound(what, id);
  return row;
}

/** `SELECT` of one row by id, per table and lock, built once (the hottest read: no query builder per request). */
const rowById = new Map<string, string>();
function rowByIdSql(table: string, lock: boolean): string {
  const key = `${table}|${lock}`;
  let sql = rowById.get(key);
  if (sql === undefined) {
    // What Knex's db(table).where({ id }).first() sends, with the table checked and quoted once.
    sql = `select * from ${quoteIdentifier(table)} where \`id\` = ? limit 1${lock ? ' for update' : ''}`;
    rowById.set(key, sql);
  }
  return sql;
}

/** A soft-deletable record: its table, activity entity and current version. */
export interface SoftRecord {
  table: string;
  entity: ActivityEntity;
  id: number;
  version: number;
}

/** Soft-deletes a record (bumping its version) and logs it, in `trx`. @returns the deletion time */
export async function markDeleted(trx: Knex.Transaction, r: SoftRecord, userId: number, extra: Changes = {}): Promise<Date> {
  const now = new Date();
  await trx(r.table)
    .where({ id: r.id })
    .update({ deleted_at: now, version: r.version + 1 });
  await logActivity(trx, {
    userId,
    action: 'delete',
    entity: r.entity,
    entityId: r.id,
    changes: { deletedAt: { old: null, new: now.toISOString() }, ...extra },
  });
  return now;
}

/** Restores a soft-deleted record (bumping its version) and logs it, in `trx`. */
export async function markRestored(trx: Knex.Transaction, r: SoftRecord & { deletedAt: Date }, userId: number): Promise<void> {
  await trx(r.table)
    .where({ id: r.id })
    .update({ deleted_at: null, version: r.version + 1 });
  await logActivity(trx, {
    userId,
    action: 'restore',
    entity: r.entity,
    entityId: r.id,
    changes: { deletedAt: { old: r.deletedAt.toISOString(), new: null } },
  });
}

/**
 * The row values of the fields `input` sets: each API field of `map` that is not undefined,
 * under its column name (`{ ownerId: 3 }` with `{ ownerId: 'owner_id' }` -> `{ owner_id: 3 }`).
 * Fields outside `map` are ignored; null is kept (it clears the column).
 */
export function definedColumns<K extends string>(input: Partial<Record<K, unknown>> & object, map: Readonly<Record<K, string>>): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  for (const k of Object.keys(map) as K[]) {
    const v = input[k];
    if (v !== undefined) row[map[k]] = v;
  }
  return row;
}
