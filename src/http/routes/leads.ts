/** `/api/v1/leads`: leads of the tenant, with search, export, restore and the convert. */
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { convertLeadBody, createLeadBody, createLeadsService, LEAD_SORT, LEAD_SOURCES, LEAD_STATUSES, updateLeadBody, type LeadRow } from '../../crm/leads.js';
import {
  actorOf,
  assertPermission,
  checkIncludeDeleted,
  createWithIdempotency,
  getQuery,
  idParams,
  ifMatchVersion,
  includeDeletedParam,
  sendCsv,
} from '../crm-helpers.js';
import { page, paginationQuery, problemSchema, withProblems } from '../schemas.js';

const date = z.date();
const ref = z.number().int().nullable();
export const leadSchema = z
  .object({
    id: z.number().int(),
    fullName: z.string(),
    email: z.string().nullable(),
    phone: z.string().nullable(),
    companyName: z.string().nullable(),
    source: z.enum(LEAD_SOURCES),
    status: z.enum(LEAD_STATUSES),
    score: z.number().int().describe('0-100'),
    ownerId: ref,
    notes: z.string().nullable(),
    contactId: ref.describe('the contact the convert made'),
    companyId: ref.describe('the company the convert made or reused'),
    dealId: ref.describe('the deal the convert made'),
    convertedAt: date.nullable(),
    version: z.number().int(),
    createdAt: date,
    updatedAt: date,
    deletedAt: date.nullable(),
  })
  .meta({ id: 'Lead' });

const conversionSchema = z
  .object({
    lead: leadSchema,
    contactId: z.number().int(),
    companyId: ref,
    companyReused: z.boolean().describe('a live company of that name existed and was linked'),
    dealId: ref,
  })
  .meta({ id: 'LeadConversion' });

const instant = (what: string) =>
  z.iso
    .datetime({ offset: true, message: 'expected an ISO 8601 date-time such as 2030-01-31T12:00:00Z' })
    .transform((v) => new Date(v))
    .optional()
    .describe(`${what} (inclusive)`);
const score = z.coerce.number().int().min(0).max(100).optional();
const listQuery = paginationQuery.extend({
  q: z.string().trim().min(1).max(200).optional().describe('search in fullName, email and companyName (FULLTEXT; shorter terms by substring)'),
  sort: z
    .string()
    .max(200)
    .optional()
    .describe(`comma-separated fields, - for descending: ${Object.keys(LEAD_SORT).join(', ')}`),
  status: z.enum(LEAD_STATUSES).optional(),
  source: z.enum(LEAD_SOURCES).optional(),
  ownerId: z.coerce
    .number()
    .int()
    .positive()
    .max(2 ** 53 - 1)
    .optional(),
  scoreMin: score.describe('inclusive'),
  scoreMax: score.describe('inclusive'),
  createdAfter: instant('created at or after'),
  createdBefore: instant('created at or before'),
  updatedAfter: instant('updated at or after'),
  updatedBefore: instant('updated at or before'),
  includeDeleted: includeDeletedParam,
});
const exportQuery = listQuery.omit({ page: true, pageSize: true });

export const leadsRoutes: FastifyPluginCallbackZod = (app, _opts, done) => {
  const tags = ['leads'];
  const security = [{ tenantBearer: [] }];
  const svc = async (request: Parameters<typeof actorOf>[0]) => createLeadsService(await app.tenantKnex(request), actorOf(request));
  const mutations = withProblems({ 200: leadSchema, 409: problemSchema, 422: problemSchema, 428: problemSchema });

  app.get(
    '/leads',
    {
      schema: { operationId: 'listLeads', tags, security, querystring: listQuery, response: withProblems({ 200: page(leadSchema) }) },
      onRequest: app.requirePermission('leads:read'),
    },
    async (request) => {
      const q = request.query;
      const r = await (await svc(request)).list({ ...q, includeDeleted: checkIncludeDeleted(request, q.includeDeleted) });
      return { ...r, page: q.page, pageSize: q.pageSize };
    },
  );

  app.get(
    '/leads/export.csv',
    {
      schema: { operationId: 'exportLeads', tags, security, querystring: exportQuery, produces: ['text/csv'] },
      onRequest: app.requirePermission('leads:read'),
    },
    async (request, reply) => {
      const q = request.query;
      const { query } = await (await svc(request)).exportQuery({ ...q, page: 1, pageSize: 1, includeDeleted: checkIncludeDeleted(request, q.includeDeleted) });
      return sendCsv<LeadRow>(reply, query, 'leads.csv', {
        id: (r) => r.id,
        fullName: (r) => r.full_name,
        email: (r) => r.email,
        phone: (r) => r.phone,
        companyName: (r) => r.company_name,
        source: (r) => r.source,
        status: (r) => r.status,
        score: (r) => r.score,
        ownerId: (r) => r.owner_id,
        notes: (r) => r.notes,
        createdAt: (r) => r.created_at,
        updatedAt: (r) => r.updated_at,
      });
    },
  );

  app.post(
    '/leads',
    {
      schema: {
        operationId: 'createLead',
        tags,
        security,
        body: createLeadBody,
        response: withProblems({ 201: leadSchema, 409: problemSchema, 422: problemSchema }),
      },
      onRequest: app.requirePermission('leads:create'),
    },
    async (request, reply) => {
      const s = await svc(request);
      return createWithIdempotency(request, reply, request.tenantDb!, (trx) => s.create(request.body, trx));
    },
  );

  app.get(
    '/leads/:id',
    {
      schema: { operationId: 'getLead', tags, security, params: idParams, querystring: getQuery, response: withProblems({ 200: leadSchema }) },
      onRequest: app.requirePermission('leads:read'),
    },
    async (request) => (await svc(request)).get(request.params.id, checkIncludeDeleted(request, request.query.includeDeleted)),
  );

  app.patch(
    '/leads/:id',
    {
      schema: {
        operationId: 'updateLead',
        tags,
        security,
        summary: 'Update a lead (409 LEAD_CONVERTED once converted)',
        params: idParams,
        body: updateLeadBody,
        response: mutations,
      },
      onRequest: app.requirePermission('leads:update'),
    },
    async (request) => (await svc(request)).update(request.params.id, request.body, ifMatchVersion(request)),
  );

  app.post(
    '/leads/:id/convert',
    {
      schema: {
        operationId: 'convertLead',
        tags,
        security,
        summary: 'Convert a lead into a contact (and a company, and a deal) in one transaction',
        description: 'needs leads:update and contacts:create, plus companies:create with createCompany and deals:create with deal',
        params: idParams,
        body: convertLeadBody,
        response: withProblems({ 200: conversionSchema, 409: problemSchema, 422: problemSchema }),
      },
      onRequest: app.requirePermission('leads:update'),
    },
    async (request) => {
      // What the conversion creates needs the right to create it.
      assertPermission(request, 'contacts:create');
      if (request.body.createCompany) assertPermission(request, 'companies:create');
      if (request.body.deal) assertPermission(request, 'deals:create');
      const knex = await app.tenantKnex(request);
      const { maxContacts } = await app.tenantLimits(request);
      return createLeadsService(knex, actorOf(request), { maxContacts }).convert(request.params.id, request.body);
    },
  );

  app.delete(
    '/leads/:id',
    {
      schema: {
        operationId: 'deleteLead',
        tags,
        security,
        summary: 'Soft-delete a lead (409 LEAD_CONVERTED once converted)',
        params: idParams,
        response: withProblems({ 204: z.null(), 409: problemSchema }),
      },
      onRequest: app.requirePermission('leads:delete'),
    },
    async (request, reply) => {
      await (await svc(request)).remove(request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/leads/:id/restore',
    {
      schema: { operationId: 'restoreLead', tags, security, params: idParams, response: mutations },
      onRequest: app.requirePermission('leads:restore'),
    },
    async (request) => (await svc(request)).restore(request.params.id),
  );
  done();
};
