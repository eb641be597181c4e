/**
 * Reading the request history: filtered, paginated lists (newest first), one row, and
 * the shared filter (time window, tenant, route, method, status class, user).
 */
import type { Knex } from 'knex';
import { NotFoundError, ValidationError } from '../lib/errors.js';
import { pageOffset } from '../lib/validation.js';
import type { HistoryRow } from './recorder.js';

/** Filters shared by lists and statistics. Times are UTC; `to` is exclusive. */
export interface HistoryFilter {
  from: Date;
  to: Date;
  tenantId?: number;
  route?: string;
  method?: string;
  /** 2, 3, 4 or 5 (2xx ... 5xx). */
  statusClass?: number;
  userId?: number;
  userKind?: 'tenant' | 'platform';
}

/** A history row as the API shows it: the recorded row with its id and the tenant's slug. */
export interface HistoryEntry extends HistoryRow {
  id: number;
  tenantSlug: string | null;
}

/** Default window: the last 24 h. */
export function defaultWindow(now = new Date()): { from: Date; to: Date } {
  return { from: new Date(now.getTime() - 24 * 3600 * 1000), to: now };
}

/** @throws ValidationError when `from` is not before `to`, or the window exceeds 400 days */
export function checkWindow(f: { from: Date; to: Date }): void {
  if (!(f.from < f.to)) throw new ValidationError('from must be before to', { field: 'from' }, 'INVALID_WINDOW');
  if (f.to.getTime() - f.from.getTime() > 400 * 24 * 3600 * 1000)
    throw new ValidationError('the window may span at most 400 days', { field: 'from' }, 'INVALID_WINDOW');
}

/** Applies a filter to a query on `request_history` (alias `h`). */
export function applyFilter(q: Knex.QueryBuilder, f: HistoryFilter): Knex.QueryBuilder {
  q.where('h.created_at', '>=', f.from).andWhere('h.created_at', '<', f.to);
  if (f.tenantId !== undefined) q.where('h.tenant_id', f.tenantId);
  if (f.route) q.where('h.route', f.route);
  if (f.method) q.where('h.method', f.method.toUpperCase());
  if (f.statusClass) q.whereBetween('h.status', [f.statusClass * 100, f.statusClass * 100 + 99]);
  if (f.userId !== undefined) q.where('h.user_id', f.userId);
  if (f.userKind) q.where('h.user_kind', f.userKind);
  return q;
}

/** A `request_history` row joined with its tenant's slug, as mysql2 returns it (snake_case columns). */
interface HistoryDbRow {
  id: number | string;
  created_at: Date;
  request_id: string;
  tenant_id: number | null;
  slug: string | null;
  user_id: number | string | null;
  user_kind: HistoryEntry['userKind'];
  method: string;
  route: string | null;
  path: string;
  query: string | null;
  status: number;
  duration_ms: number | string;
  response_bytes: number | null;
  ip: string | null;
  user_agent: string | null;
  error_code: string | null;
}

function toEntry(r: HistoryDbRow): HistoryEntry {
  return {
    id: Number(r.id),
    createdAt: r.created_at,
    requestId: r.request_id,
    tenantId: r.tenant_id,
    tenantSlug: r.slug ?? null,
    userId: r.user_id === null ? null : Number(r.user_id),
    userKind: r.user_kind,
    method: r.method,
    route: r.route,
    path: r.path,
    query: r.query,
    status: r.status,
    durationMs: Number(r.duration_ms),
    responseBytes: r.response_bytes,
    ip: r.ip,
    userAgent: r.user_agent,
    errorCode: r.error_code,
  };
}

/** Where a keyset page starts: just after (older than) this row. */
export interface HistoryCursor {
  createdAt: Date;
  id: number;
}

/** `<created_at ms>.<id>`: opaque to clients, the position of the last row of a page. */
export function encodeHistoryCursor(c: HistoryCursor): string {
  return `${c.createdAt.getTime()}.${c.id}`;
}

/** Parses {@link encodeHistoryCursor}'s form. @returns undefined when malformed */
export function decodeHistoryCursor(s: string): HistoryCursor | undefined {
  const m = /^(\d{1,15})\.(\d{1,19})$/.exec(s);
  if (!m) return undefined;
  const id = Number(m[2]);
  return Number.isSafeInteger(id) ? { createdAt: new Date(Number(m[1])), id } : undefined;
}

/**
 * Newest first: a page of rows, the total count, and the cursor of the next page (null on
 * the last one). With `cursor` the page starts after that row (keyset pagination over the
 * primary key `(id, created_at)`, any depth at the same cost); without it, `page` is an
 * offset, bounded to 10,000 rows.
 * @throws ValidationError `PAGE_TOO_DEEP`
 */
export async function listHistory(
  knex: Knex,
  f: HistoryFilter,
  page: number,
  pageSize: number,
  cursor?: HistoryCursor,
): Promise<{ data: HistoryEntry[]; total: number; nextCursor: string | null }> {
  const base = applyFilter(knex('request_history as h'), f);
  const rowsQ = base
    .clone()
    .leftJoin('tenants as t', 't.id', 'h.tenant_id')
    .select('h.*', 't.slug')
    .orderBy('h.created_at', 'desc')
    .orderBy('h.id', 'desc')
    .limit(pageSize);
  if (cursor) {
    rowsQ.where((w) => {
      void w.where('h.created_at', '<', cursor.createdAt).orWhere((x) => {
        void x.where('h.created_at', '=', cursor.createdAt).andWhere('h.id', '<', cursor.id);
      });
    });
  } else {
    rowsQ.offset(pageOffset(page, pageSize));
  }
  const [rows, count] = (await Promise.all([rowsQ, base.clone().count({ n: '*' }).first()])) as [HistoryDbRow[], { n: number | string } | undefined];
  const data = rows.map(toEntry);
  const last = data.at(-1);
  return { data, total: Number(count?.n ?? 0), nextCursor: last && data.length === pageSize ? encodeHistoryCursor(last) : null };
}

/** Rows with `id` greater than `afterId` (oldest first, at most `limit`), for `silo history tail`. */
export async function historyAfter(knex: Knex, afterId: number, opts: { tenantId?: number; limit?: number } = {}): Promise<HistoryEntry[]> {
  const q = knex('request_history as h')
    .leftJoin('tenants as t', 't.id', 'h.tenant_id')
    .where('h.id', '>', afterId)
    .select('h.*', 't.slug')
    .orderBy('h.id')
    .limit(opts.limit ?? 500);
  if (opts.tenantId !== undefined) q.where('h.tenant_id', opts.tenantId);
  return ((await q) as HistoryDbRow[]).map(toEntry);
}

/** The newest row id (0 when empty). */
export async function lastHistoryId(knex: Knex): Promise<number> {
  const r = await knex('request_history').max({ id: 'id' }).first();
  return Number(r?.id ?? 0);
}

/**
 * One row.
 * @param tenantId when set, the row must belong to this tenant
 * @throws NotFoundError `HISTORY_NOT_FOUND`
 */
export async function getHistory(knex: Knex, id: number, tenantId?: number): Promise<HistoryEntry> {
  const q = knex('request_history as h').leftJoin('tenants as t', 't.id', 'h.tenant_id').where('h.id', id).first('h.*', 't.slug');
  if (tenantId !== undefined) q.where('h.tenant_id', tenantId);
  const row = (await q) as HistoryDbRow | undefined;
  if (!row) throw new NotFoundError(`history entry ${id} not found`, 'HISTORY_NOT_FOUND');
  return toEntry(row);
}
