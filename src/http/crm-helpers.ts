/**
 * Shared pieces of the CRM routes: the acting user, `If-Match` versions, idempotent
 * creates, role rules and CSV streaming (RFC 4180, via csv-stringify, row by row from a
 * MySQL stream so an export never sits in memory).
 */
import { stringify } from 'csv-stringify';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Knex } from 'knex';
import { pipeline } from 'node:stream/promises';
import { PassThrough } from 'node:stream';
import { z } from 'zod';
import type { Actor } from '../crm/common.js';
import type { Permission } from '../crm/permissions.js';
import { withIdempotency } from '../crm/idempotency.js';
import { ForbiddenError, ValidationError } from '../lib/errors.js';
import { tenantQuery } from './schemas.js';

/** The acting tenant user (set by requirePermission or requireTenantUser). */
export function actorOf(request: FastifyRequest): Actor {
  const u = request.tenantUser!;
  return { userId: Number(u.sub), role: u.role };
}

/** The version in `If-Match` (`"3"`, `W/"3"` or `3`), if any (RFC 9110 §13.1.1). */
export function ifMatchVersion(request: FastifyRequest): number | undefined {
  const h = request.headers['if-match'];
  if (h === undefined) return undefined;
  const m = /^(?:W\/)?"?(\d{1,9})"?$/.exec(String(h).trim());
  if (!m) throw new ValidationError('If-Match must carry the version, e.g. If-Match: "3"', { field: 'If-Match' });
  return Number(m[1]);
}

/**
 * Roles allowed to read, create, update, delete/restore.
 * @deprecated routes check permissions: `onRequest: app.requirePermission('<resource>:<action>')`, where
 * `ROLES.read` -> `read`, `ROLES.create` -> `create`, `ROLES.update` -> `update`, `ROLES.remove` -> `delete`
 * (or `restore` on a restore route); see src/crm/permissions.ts. Kept until every route is converted.
 */
export const ROLES = {
  read: ['admin', 'manager', 'staff'] as const,
  create: ['admin', 'manager', 'staff'] as const,
  update: ['admin', 'manager'] as const,
  remove: ['admin'] as const,
};

/**
 * The acting user's role has `permission` (resolved by `requirePermission` on the route).
 * For checks that depend on the body, such as a bulk route's action.
 * @throws ForbiddenError `FORBIDDEN`
 */
export function assertPermission(request: FastifyRequest, permission: Permission): void {
  if (!request.tenantPermissions?.has(permission)) throw new ForbiddenError(`this needs the permission ${permission}`, 'FORBIDDEN', { permission });
}

/**
 * `includeDeleted=true` needs the permission `records:read-deleted` (of the built-in roles,
 * admin's). On a route still guarded by a role list (no permissions resolved), it is for admins.
 * @throws ForbiddenError
 */
export function checkIncludeDeleted(request: FastifyRequest, includeDeleted: boolean | undefined): boolean {
  if (!includeDeleted) return false;
  const allowed = request.tenantPermissions ? request.tenantPermissions.has('records:read-deleted') : request.tenantUser?.role === 'admin';
  if (!allowed) throw new ForbiddenError('includeDeleted needs the permission records:read-deleted', 'FORBIDDEN', { permission: 'records:read-deleted' });
  return true;
}

/** `?includeDeleted=true|false` */
export const includeDeletedParam = z
  .enum(['true', 'false'])
  .transform((v) => v === 'true')
  .optional();

/** Query of `GET /:id`. */
export const getQuery = tenantQuery.extend({ includeDeleted: includeDeletedParam });

/** `:id` path parameter. */
export const idParams = z.strictObject({
  id: z.coerce
    .number()
    .int()
    .positive()
    .max(2 ** 53 - 1),
});

/**
 * Sends a create's answer: 201 with the value, or the stored first answer of an
 * idempotent retry (with `Idempotent-Replayed: true`).
 */
export async function createWithIdempotency<T>(
  request: FastifyRequest,
  reply: FastifyReply,
  knex: Knex,
  create: (trx?: Knex.Transaction) => Promise<T>,
): Promise<FastifyReply> {
  const key = request.headers['idempotency-key'];
  if (key === undefined) return reply.code(201).send(await create());
  const r = await withIdempotency(
    knex,
    { userId: actorOf(request).userId, key: String(key), route: `${request.method} ${request.routeOptions.url}`, body: request.body },
    (trx) => create(trx),
  );
  if (!r.replayed) return reply.code(201).send(r.value);
  // A replay is the stored JSON: send it as it is.
  return reply
    .code(r.status)
    .header('idempotent-replayed', 'true')
    .type('application/json; charset=utf-8')
    .serializer((p: unknown) => JSON.stringify(p))
    .send(r.value);
}

/**
 * csv-stringify options of every export: CRLF records, ISO-8601 dates, and
 * `escape_formulas`: a cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return
 * is prefixed with `'`, so a spreadsheet shows it as text instead of evaluating it (OWASP
 * "CSV Injection"). Numbers are not strings and stay as they are.
 */
export const CSV_OPTIONS = { record_delimiter: '\r\n', escape_formulas: true, cast: { date: (d: Date) => d.toISOString() } } as const;

/**
 * Streams the rows of `query` as CSV (RFC 4180: header row, CRLF line ends, quoted fields
 * where needed; formulas defused, see {@link CSV_OPTIONS}).
 * @param columns header -> function of a row
 */
export async function sendCsv<R = Record<string, unknown>>(
  reply: FastifyReply,
  query: Knex.QueryBuilder,
  filename: string,
  columns: Record<string, (row: R) => unknown>,
): Promise<FastifyReply> {
  const csv = stringify({ ...CSV_OPTIONS, header: true, columns: Object.keys(columns) });
  const out = new PassThrough();
  const rows = query.stream();
  void pipeline(
    rows,
    async function* (source: AsyncIterable<R>) {
      for await (const row of source) yield Object.fromEntries(Object.entries(columns).map(([k, f]) => [k, f(row) ?? '']));
    },
    csv,
    out,
  ).catch((err: unknown) => out.destroy(err instanceof Error ? err : new Error(String(err))));
  return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${filename}"`).send(out);
}
