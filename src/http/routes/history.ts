/**
 * Request history for people: `/platform/v1/history[/:id|/stats]` (operators and
 * support staff, any tenant) and `/api/v1/history[/stats]` (tenant admins, their own
 * tenant only: the tenant filter is forced, never taken from the client).
 */
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import type { FastifyRequest } from 'fastify';
import type {} from '@fastify/rate-limit';
import { z } from 'zod';
import type { SiloContext } from '../../context.js';
import { decodeHistoryCursor, defaultWindow, getHistory, listHistory, type HistoryFilter } from '../../history/query.js';
import { ValidationError } from '../../lib/errors.js';
import { SKETCH_ALPHA } from '../../history/rollup.js';
import { EXACT_MAX_WINDOW_MS, historyStats } from '../../history/stats.js';
import { getTenant } from '../../provisioning/tenants-service.js';
import { paginationQuery, problemSchema, tenantQuery, withProblems } from '../schemas.js';

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
/** Keyset pagination of history lists (deep pages): the `nextCursor` of the previous page. */
const listFields = {
  cursor: z
    .string()
    .max(40)
    .regex(/^\d{1,15}\.\d{1,19}$/, 'must be a nextCursor value')
    .optional()
    .describe('continue after this row: the nextCursor of the previous page (any depth; page is then ignored)'),
};
const statsFields = {
  bucket: z.enum(['minute', 'hour', 'day']).optional(),
  top: z.coerce.number().int().min(1).max(100).default(10),
  exact: z
    .enum(['true', 'false'])
    .optional()
    .describe(
      `true: compute from the raw rows (percentiles exact) instead of the rollups; the window may then span at most ${EXACT_MAX_WINDOW_MS / 60_000} minutes (400 EXACT_WINDOW_TOO_LONG past it)`,
    ),
};
/** The description of both stats operations: how the figures are computed. */
const STATS_METHOD = `Answered from the rollups (\`method\` "rollups"): counts, error rates, mean and max exact; percentiles from a log-linear latency histogram, within ${SKETCH_ALPHA * 100}% relative error of the exact nearest-rank value (\`latency.relativeError\`). With \`exact=true\`, or a \`userId\`/\`userKind\` filter, from the raw rows (\`method\` "exact", percentiles exact), for windows of at most ${EXACT_MAX_WINDOW_MS / 60_000} minutes (400 EXACT_WINDOW_TOO_LONG past it). From the rollups, \`byUser\` is null when a route, method or status-class filter is set.`;

export const historyEntrySchema = z
  .object({
    id: z.number().int(),
    createdAt: date,
    requestId: z.string(),
    tenantId: z.number().int().nullable(),
    tenantSlug: z.string().nullable(),
    userId: z.number().int().nullable(),
    userKind: z.enum(['tenant', 'platform']).nullable(),
    method: z.string(),
    route: z.string().nullable(),
    path: z.string(),
    query: z.string().nullable(),
    status: z.number().int(),
    durationMs: z.number(),
    responseBytes: z.number().int().nullable(),
    ip: z.string().nullable(),
    userAgent: z.string().nullable(),
    errorCode: z.string().nullable(),
  })
  .meta({ id: 'HistoryEntry' });

/** A page of history rows; `nextCursor` continues with keyset pagination. */
const listResponse = z.object({
  data: z.array(historyEntrySchema),
  page: z.number(),
  pageSize: z.number(),
  total: z.number(),
  nextCursor: z.string().nullable().describe('cursor of the next (older) page; null on the last page'),
});

const n = z.number();
const nn = z.number().nullable();
export const historyStatsSchema = z
  .object({
    method: z.enum(['rollups', 'exact']).describe('rollups: percentiles from the latency histogram; exact: from the raw rows'),
    window: z.object({ from: date, to: date, bucket: z.enum(['minute', 'hour', 'day']) }),
    totals: z.object({ requests: n, clientErrors: n, serverErrors: n, errorRate: n.describe('(4xx + 5xx) / requests') }),
    latency: z
      .object({
        mean: nn,
        p50: nn,
        p95: nn,
        p99: nn,
        max: nn,
        relativeError: n.describe(`bound of the percentiles' relative error: ${SKETCH_ALPHA} (rollups) or 0 (exact)`),
      })
      .describe('ms; percentiles nearest-rank'),
    byStatus: z.array(z.object({ status: n, count: n })),
    byMethod: z.array(z.object({ method: z.string(), count: n })),
    byRoute: z.array(z.object({ route: z.string().nullable(), count: n, errorRate: n, p95: nn })),
    byTenant: z.array(z.object({ tenantId: nn, slug: z.string().nullable(), count: n, errorRate: n })),
    byUser: z
      .array(z.object({ userKind: z.enum(['tenant', 'platform']).nullable(), userId: nn, tenantId: nn, count: n }))
      .nullable()
      .describe('null from the rollups when a route, method or status-class filter is set'),
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

/** The decoded `cursor` parameter. @throws ValidationError when it does not decode */
function cursorOf(q: { cursor?: string }) {
  if (q.cursor === undefined) return undefined;
  const c = decodeHistoryCursor(q.cursor);
  if (!c) throw new ValidationError('cursor: must be a nextCursor value', { fields: [{ path: 'querystring.cursor', message: 'must be a nextCursor value' }] });
  return c;
}

/** Platform routes (mounted under /platform/v1). */
export const platformHistoryRoutes: FastifyPluginCallbackZod<{ ctx: SiloContext }> = (app, { ctx }, done) => {
  const tags = ['history'];
  const security = [{ platformBearer: [] }];
  const readers = app.requirePlatformUser(['operator', 'support']);
  const tenantIdOf = async (slug?: string) => (slug ? (await getTenant(ctx, slug, { includeDeleted: true })).id : undefined);

  app.get(
    '/history',
    {
      schema: {
        operationId: 'listHistory',
        tags,
        security,
        querystring: paginationQuery.extend({ ...filterFields, ...listFields }),
        response: withProblems({ 200: listResponse }),
      },
      onRequest: readers,
    },
    async (request) => {
      const q = request.query;
      const r = await listHistory(ctx.catalog.knex, toFilter(q, await tenantIdOf(q.tenant)), q.page, q.pageSize, cursorOf(q));
      return { ...r, page: q.page, pageSize: q.pageSize };
    },
  );

  app.get(
    '/history/stats',
    {
      schema: {
        operationId: 'historyStats',
        tags,
        security,
        description: STATS_METHOD,
        querystring: tenantQuery.extend({ ...filterFields, ...statsFields }),
        response: withProblems({ 200: historyStatsSchema }),
      },
      onRequest: readers,
    },
    async (request) => {
      const q = request.query;
      return historyStats(ctx.catalog.knex, toFilter(q, await tenantIdOf(q.tenant)), {
        top: q.top,
        exact: q.exact === 'true',
        ...(q.bucket ? { bucket: q.bucket } : {}),
      });
    },
  );

  app.get(
    '/history/:id',
    {
      schema: {
        operationId: 'getHistory',
        tags,
        security,
        params: z.strictObject({ id: z.coerce.number().int().positive() }),
        response: withProblems({ 200: historyEntrySchema }),
      },
      onRequest: readers,
    },
    async (request) => getHistory(ctx.catalog.knex, request.params.id),
  );
  done();
};

/** Tenant routes (mounted under /api/v1): admins see their own tenant only. */
export const tenantHistoryRoutes: FastifyPluginCallbackZod<{ ctx: SiloContext }> = (app, { ctx }, done) => {
  const tags = ['history'];
  const security = [{ tenantBearer: [] }];
  const readHistory = app.requirePermission('history:read');
  const own = (request: FastifyRequest) => request.tenant!.id;

  app.get(
    '/history',
    {
      schema: {
        operationId: 'listTenantHistory',
        tags,
        security,
        querystring: paginationQuery.extend({ ...filterFields, ...listFields }),
        response: withProblems({ 200: listResponse }),
      },
      onRequest: readHistory,
    },
    async (request) => {
      const q = request.query;
      const r = await listHistory(ctx.catalog.knex, toFilter(q, own(request)), q.page, q.pageSize, cursorOf(q));
      return { ...r, page: q.page, pageSize: q.pageSize };
    },
  );

  const { maxDays, rateLimit } = ctx.config.tenantStats;
  app.get(
    '/history/stats',
    {
      schema: {
        operationId: 'tenantHistoryStats',
        tags,
        security,
        description: `The window (\`from\` to \`to\`) spans at most ${maxDays} days (SILO_TENANT_STATS_MAX_DAYS; 400 STATS_WINDOW_TOO_LONG past it); at most ${rateLimit} requests a minute per tenant (SILO_TENANT_STATS_RATE_LIMIT; 429). ${STATS_METHOD}`,
        querystring: tenantQuery.extend({ ...filterFields, ...statsFields }),
        response: withProblems({ 200: historyStatsSchema, 429: problemSchema }),
      },
      onRequest: readHistory,
      // Statistics scan the window's rows: bounded per tenant, whoever of its admins asks.
      config: { rateLimit: { max: rateLimit, timeWindow: 60_000, hook: 'preHandler', keyGenerator: (req) => `tenant-stats|${req.tenant?.id ?? '-'}` } },
    },
    async (request) => {
      const q = request.query;
      const filter = toFilter(q, own(request));
      if (filter.to.getTime() - filter.from.getTime() > maxDays * 24 * 3600 * 1000) {
        throw new ValidationError(`the statistics window may span at most ${maxDays} days`, { field: 'from', maxDays }, 'STATS_WINDOW_TOO_LONG');
      }
      return historyStats(ctx.catalog.knex, filter, { top: q.top, exact: q.exact === 'true', ...(q.bucket ? { bucket: q.bucket } : {}) });
    },
  );
  done();
};
