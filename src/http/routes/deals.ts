/**
 * `/api/v1/deals`: deals of the tenant, their moves through the pipeline, outcome, stats
 * and restore.
 */
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { dateRangeQuery } from '../../crm/common.js';
import {
  amountSchema,
  createDealBody,
  createDealsService,
  DEAL_SORT,
  DEAL_STATUSES,
  isoDay,
  moveDealBody,
  updateDealBody,
  versionBody,
} from '../../crm/deals.js';
import { actorOf, checkIncludeDeleted, createWithIdempotency, getQuery, idParams, ifMatchVersion, includeDeletedParam } from '../crm-helpers.js';
import { page, paginationQuery, problemSchema, searchParam, sortParam, tenantQuery, withProblems } from '../schemas.js';

const date = z.date();
const money = z.string().describe('decimal with 2 places, e.g. "1200.00"');
export const dealSchema = z
  .object({
    id: z.number().int(),
    title: z.string(),
    amount: money,
    currency: z.string().describe('ISO 4217'),
    stageId: z.number().int(),
    companyId: z.number().int().nullable(),
    contactId: z.number().int().nullable(),
    ownerId: z.number().int().nullable(),
    expectedCloseDate: z.string().nullable().describe('YYYY-MM-DD'),
    status: z.enum(DEAL_STATUSES),
    expectedRevenue: money.describe('amount x stage probability / 100, rounded half up to the cent'),
    version: z.number().int(),
    createdAt: date,
    updatedAt: date,
    deletedAt: date.nullable(),
  })
  .meta({ id: 'Deal' });

const bucket = { count: z.number().int(), amountSum: z.record(z.string(), money).describe('currency -> sum of amounts') };
export const dealStatsSchema = z
  .object({
    byStage: z.array(z.object({ stageId: z.number().int(), name: z.string(), position: z.number().int(), ...bucket })),
    byStatus: z.array(z.object({ status: z.enum(DEAL_STATUSES), ...bucket })),
    total: z.object(bucket),
  })
  .meta({ id: 'DealStats', description: 'live deals only; amounts are summed per currency' });

const ref = z.coerce
  .number()
  .int()
  .positive()
  .max(2 ** 53 - 1);
const listQuery = paginationQuery.extend({
  q: searchParam('titles'),
  sort: sortParam(DEAL_SORT),
  ...dateRangeQuery,
  stageId: ref.optional(),
  status: z.enum(DEAL_STATUSES).optional(),
  ownerId: ref.optional(),
  companyId: ref.optional(),
  minAmount: amountSchema.optional().describe('inclusive'),
  maxAmount: amountSchema.optional().describe('inclusive'),
  closeAfter: isoDay.optional().describe('expectedCloseDate on or after this day'),
  closeBefore: isoDay.optional().describe('expectedCloseDate on or before this day'),
  includeDeleted: includeDeletedParam,
});

export const dealsRoutes: FastifyPluginCallbackZod = (app, _opts, done) => {
  const tags = ['deals'];
  const security = [{ tenantBearer: [] }];
  const svc = async (request: Parameters<typeof actorOf>[0]) => createDealsService(await app.tenantKnex(request), actorOf(request));
  const mutations = withProblems({ 200: dealSchema, 409: problemSchema, 422: problemSchema, 428: problemSchema });

  app.get(
    '/deals',
    {
      schema: { operationId: 'listDeals', tags, security, querystring: listQuery, response: withProblems({ 200: page(dealSchema) }) },
      onRequest: app.requirePermission('deals:read'),
    },
    async (request) => {
      const q = request.query;
      const r = await (await svc(request)).list({ ...q, includeDeleted: checkIncludeDeleted(request, q.includeDeleted) });
      return { ...r, page: q.page, pageSize: q.pageSize };
    },
  );

  app.get(
    '/deals/stats',
    {
      schema: {
        operationId: 'dealStats',
        tags,
        security,
        summary: 'Live deals counted and summed by stage and by status',
        querystring: tenantQuery,
        response: withProblems({ 200: dealStatsSchema }),
      },
      onRequest: app.requirePermission('deals:read'),
    },
    async (request) => (await svc(request)).stats(),
  );

  app.post(
    '/deals',
    {
      schema: {
        operationId: 'createDeal',
        tags,
        security,
        body: createDealBody,
        response: withProblems({ 201: dealSchema, 409: problemSchema, 422: problemSchema }),
      },
      onRequest: app.requirePermission('deals:create'),
    },
    async (request, reply) => {
      const s = await svc(request);
      return createWithIdempotency(request, reply, request.tenantDb!, (trx) => s.create(request.body, trx));
    },
  );

  app.get(
    '/deals/:id',
    {
      schema: { operationId: 'getDeal', tags, security, params: idParams, querystring: getQuery, response: withProblems({ 200: dealSchema }) },
      onRequest: app.requirePermission('deals:read'),
    },
    async (request) => (await svc(request)).get(request.params.id, checkIncludeDeleted(request, request.query.includeDeleted)),
  );

  app.patch(
    '/deals/:id',
    {
      schema: { operationId: 'updateDeal', tags, security, params: idParams, body: updateDealBody, response: mutations },
      onRequest: app.requirePermission('deals:update'),
    },
    async (request) => (await svc(request)).update(request.params.id, request.body, ifMatchVersion(request)),
  );

  app.post(
    '/deals/:id/move',
    {
      schema: { operationId: 'moveDeal', tags, security, summary: 'Move a deal to another stage', params: idParams, body: moveDealBody, response: mutations },
      onRequest: app.requirePermission('deals:update'),
    },
    async (request) => (await svc(request)).move(request.params.id, request.body.stageId, ifMatchVersion(request) ?? request.body.version),
  );

  app.post(
    '/deals/:id/win',
    {
      schema: {
        operationId: 'winDeal',
        tags,
        security,
        summary: 'Mark a deal won (and move it to the stage "Won" if there is one)',
        params: idParams,
        body: versionBody.nullish(),
        response: mutations,
      },
      onRequest: app.requirePermission('deals:update'),
    },
    async (request) => (await svc(request)).win(request.params.id, ifMatchVersion(request) ?? request.body?.version),
  );

  app.post(
    '/deals/:id/lose',
    {
      schema: {
        operationId: 'loseDeal',
        tags,
        security,
        summary: 'Mark a deal lost (and move it to the stage "Lost" if there is one)',
        params: idParams,
        body: versionBody.nullish(),
        response: mutations,
      },
      onRequest: app.requirePermission('deals:update'),
    },
    async (request) => (await svc(request)).lose(request.params.id, ifMatchVersion(request) ?? request.body?.version),
  );

  app.delete(
    '/deals/:id',
    {
      schema: { operationId: 'deleteDeal', tags, security, summary: 'Soft-delete a deal', params: idParams, response: withProblems({ 204: z.null() }) },
      onRequest: app.requirePermission('deals:delete'),
    },
    async (request, reply) => {
      await (await svc(request)).remove(request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/deals/:id/restore',
    {
      schema: { operationId: 'restoreDeal', tags, security, params: idParams, response: mutations },
      onRequest: app.requirePermission('deals:restore'),
    },
    async (request) => (await svc(request)).restore(request.params.id),
  );
  done();
};
