/**
 * Request history for people: `/platform/v1/history[/:id|/stats]` (operators and
 * support staff, any tenant) and `/api/v1/history[/stats]` (tenant admins, their own
 * tenant only: the tenant filter is forced, never taken from the client).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { SiloContext } from '../../context.js';
import { defaultWindow, getHistory, listHistory, type HistoryFilter } from '../../history/query.js';
import { historyStats } from '../../history/stats.js';
import { getTenant } from '../../provisioning/tenants-service.js';
import { paginationQuery, tenantQuery, withProblems } from '../schemas.js';

const date = z.date();
const iso = z.iso.datetime({ offset: true }).transform((s) => new Date(s));

const filterFields = {
  from: iso.optional().describe('window start, ISO 8601 (default: 24 h before `to`)'),
  to: iso.optional().describe('window end (exclusive), ISO 8601 (default: now)'),
  route: z.string().max(255).optional().describe('route pattern, e.g. /api/v1/contacts/:id'),
  method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']).optional(),
  statusClass: z.enum(['2xx', '3xx', '4xx', '5xx']).optional(),
  userId: z.coerce.number().int().positive().optional(),
  userKind: z.enum(['tenant', 'platform']).optional(),
};
const statsFields = { bucket: z.enum(['minute', 'hour', 'day']).optional(), top: z.coerce.number().int().min(1).max(100).default(10) };

export const historyEntrySchema = z
  .object({
    id: z.number().int(), createdAt: date, requestId: z.string(), tenantId: z.number().int().nullable(), tenantSlug: z.string().nullable(),
    userId: z.number().int().nullable(), userKind: z.enum(['tenant', 'platform']).nullable(), method: z.string(), route: z.string().nullable(),
    path: z.string(), query: z.string().nullable(), status: z.number().int(), durationMs: z.number(), responseBytes: z.number().int().nullable(),
    ip: z.string().nullable(), userAgent: z.string().nullable(), errorCode: z.string().nullable(),
  })
  .meta({ id: 'HistoryEntry' });

const n = z.number();
const nn = z.number().nullable();
export const historyStatsSchema = z
  .object({
    window: z.object({ from: date, to: date, bucket: z.enum(['minute', 'hour', 'day']) }),
    totals: z.object({ requests: n, clientErrors: n, serverErrors: n, errorRate: n.describe('(4xx + 5xx) / requests') }),
    latency: z.object({ mean: nn, p50: nn, p95: nn, p99: nn, max: nn }).describe('ms; percentiles exact, nearest-rank'),
    byStatus: z.array(z.object({ status: n, count: n })),
    byMethod: z.array(z.object({ method: z.string(), count: n })),
    byRoute: z.array(z.object({ route: z.string().nullable(), count: n, errorRate: n, p95: nn })),
    byTenant: z.array(z.object({ tenantId: nn, slug: z.string().nullable(), count: n, errorRate: n })),
    byUser: z.array(z.object({ userKind: z.enum(['tenant', 'platform']).nullable(), userId: nn, tenantId: nn, count: n })),
    series: z.array(z.object({ start: date, count: n, errors: n, p95: nn })),
  })
  .meta({ id: 'HistoryStats' });

type FilterQuery = { from?: Date; to?: Date; route?: string; method?: string; statusClass?: string; userId?: number; userKind?: 'tenant' | 'platform' };

/** Builds the filter from query parameters; `tenantId` comes from the caller (forced for tenant admins). */
export function toFilter(q: FilterQuery, tenantId: number | undefined): HistoryFilter {
  const win = defaultWindow(q.to ?? new Date());
  return {
    from: q.from ?? win.from,
    to: q.to ?? win.to,
    ...(tenantId !== undefined ? { tenantId } : {}),
    ...(q.route ? { route: q.route } : {}),
    ...(q.method ? { method: q.method } : {}),
    ...(q.statusClass ? { statusClass: Number(q.statusClass[0]) } : {}),
    ...(q.userId ? { userId: q.userId } : {}),
    ...(q.userKind ? { userKind: q.userKind } : {}),
  };
}

/** Platform routes (mounted under /platform/v1). */
export const platformHistoryRoutes: FastifyPluginAsyncZod<{ ctx: SiloContext }> = async (app, { ctx }) => {
  const tags = ['history'];
  const security = [{ platformBearer: [] }];
  const readers = app.requirePlatformUser(['operator', 'support']);
  const tenantIdOf = async (slug?: string) => (slug ? (await getTenant(ctx, slug, { includeDeleted: true })).id : undefined);

  app.get('/history', {
    schema: { operationId: 'listHistory', tags, security, querystring: paginationQuery.extend({ ...filterFields }), response: withProblems({ 200: z.object({ data: z.array(historyEntrySchema), page: n, pageSize: n, total: n }) }) },
    onRequest: readers,
  }, async (request) => {
    const q = request.query;
    const r = await listHistory(ctx.catalog.knex, toFilter(q, await tenantIdOf(q.tenant)), q.page, q.pageSize);
    return { ...r, page: q.page, pageSize: q.pageSize };
  });

  app.get('/history/stats', {
    schema: { operationId: 'historyStats', tags, security, querystring: tenantQuery.extend({ ...filterFields, ...statsFields }), response: withProblems({ 200: historyStatsSchema }) },
    onRequest: readers,
  }, async (request) => {
    const q = request.query;
    return historyStats(ctx.catalog.knex, toFilter(q, await tenantIdOf(q.tenant)), { top: q.top, ...(q.bucket ? { bucket: q.bucket } : {}) });
  });

  app.get('/history/:id', {
    schema: { operationId: 'getHistory', tags, security, params: z.strictObject({ id: z.coerce.number().int().positive() }), response: withProblems({ 200: historyEntrySchema }) },
    onRequest: readers,
  }, async (request) => getHistory(ctx.catalog.knex, request.params.id));
};

/** Tenant routes (mounted under /api/v1): admins see their own tenant only. */
export const tenantHistoryRoutes: FastifyPluginAsyncZod<{ ctx: SiloContext }> = async (app, { ctx }) => {
  const tags = ['history'];
  const security = [{ tenantBearer: [] }];
  const admin = app.requireTenantUser(['admin']);
  const own = (request: FastifyRequest) => request.tenant!.id;

  app.get('/history', {
    schema: { operationId: 'listTenantHistory', tags, security, querystring: paginationQuery.extend({ ...filterFields }), response: withProblems({ 200: z.object({ data: z.array(historyEntrySchema), page: n, pageSize: n, total: n }) }) },
    onRequest: admin,
  }, async (request) => {
    const q = request.query;
    const r = await listHistory(ctx.catalog.knex, toFilter(q, own(request)), q.page, q.pageSize);
    return { ...r, page: q.page, pageSize: q.pageSize };
  });

  app.get('/history/stats', {
    schema: { operationId: 'tenantHistoryStats', tags, security, querystring: tenantQuery.extend({ ...filterFields, ...statsFields }), response: withProblems({ 200: historyStatsSchema }) },
    onRequest: admin,
  }, async (request) => {
    const q = request.query;
    return historyStats(ctx.catalog.knex, toFilter(q, own(request)), { top: q.top, ...(q.bucket ? { bucket: q.bucket } : {}) });
  });
};
