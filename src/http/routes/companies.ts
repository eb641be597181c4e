/**
 * `/api/v1/companies`: companies of the tenant, with activity, export and restore. Every
 * company answer carries `logoUrl` (pre-signed, short-lived; null without a logo or without S3).
 */
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { COMPANY_SORT, createCompaniesService, createCompanyBody, updateCompanyBody, type CompanyRow } from '../../crm/companies.js';
import { dateRangeQuery } from '../../crm/common.js';
import type { ObjectStore } from '../../storage/s3.js';
import { actorOf, checkIncludeDeleted, createWithIdempotency, getQuery, idParams, ifMatchVersion, includeDeletedParam, sendCsv } from '../crm-helpers.js';
import { page, paginationQuery, problemSchema, searchParam, sortParam, withProblems } from '../schemas.js';

const date = z.date();
export const companySchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    industry: z.string().nullable(),
    country: z.string().nullable(),
    website: z.string().nullable(),
    phone: z.string().nullable(),
    version: z.number().int(),
    createdAt: date,
    updatedAt: date,
    deletedAt: date.nullable(),
    logoUrl: z.string().nullable().describe('pre-signed GET URL of the logo (valid a few minutes), or null'),
  })
  .meta({ id: 'Company' });

const listQuery = paginationQuery.extend({
  q: searchParam('name, industry and website'),
  sort: sortParam(COMPANY_SORT),
  ...dateRangeQuery,
  industry: z.string().max(100).optional(),
  country: z.string().max(2).optional(),
  includeDeleted: includeDeletedParam,
});
const exportQuery = listQuery.omit({ page: true, pageSize: true });

/** Options: the store that signs logo URLs (undefined when S3 is not configured). */
export const companiesRoutes: FastifyPluginCallbackZod<{ storage?: ObjectStore }> = (app, opts, done) => {
  const tags = ['companies'];
  const security = [{ tenantBearer: [] }];
  const svc = async (request: Parameters<typeof actorOf>[0]) =>
    createCompaniesService(await app.tenantKnex(request), actorOf(request), { store: opts.storage, tenantId: request.tenant!.id, log: request.log });

  app.get(
    '/companies',
    {
      schema: { operationId: 'listCompanies', tags, security, querystring: listQuery, response: withProblems({ 200: page(companySchema) }) },
      onRequest: app.requirePermission('companies:read'),
    },
    async (request) => {
      const q = request.query;
      const r = await (await svc(request)).list({ ...q, includeDeleted: checkIncludeDeleted(request, q.includeDeleted) });
      return { ...r, page: q.page, pageSize: q.pageSize };
    },
  );

  app.get(
    '/companies/export.csv',
    {
      schema: { operationId: 'exportCompanies', tags, security, querystring: exportQuery, produces: ['text/csv'] },
      onRequest: app.requirePermission('companies:read'),
    },
    async (request, reply) => {
      const q = request.query;
      const { query } = await (await svc(request)).exportQuery({ ...q, page: 1, pageSize: 1, includeDeleted: checkIncludeDeleted(request, q.includeDeleted) });
      return sendCsv<CompanyRow>(reply, query, 'companies.csv', {
        id: (r) => r.id,
        name: (r) => r.name,
        industry: (r) => r.industry,
        country: (r) => r.country,
        website: (r) => r.website,
        phone: (r) => r.phone,
        createdAt: (r) => r.created_at,
        updatedAt: (r) => r.updated_at,
      });
    },
  );

  app.post(
    '/companies',
    {
      schema: {
        operationId: 'createCompany',
        tags,
        security,
        body: createCompanyBody,
        response: withProblems({ 201: companySchema, 409: problemSchema, 422: problemSchema }),
      },
      onRequest: app.requirePermission('companies:create'),
    },
    async (request, reply) => {
      const s = await svc(request);
      return createWithIdempotency(request, reply, request.tenantDb!, (trx) => s.create(request.body, trx));
    },
  );

  app.get(
    '/companies/:id',
    {
      schema: { operationId: 'getCompany', tags, security, params: idParams, querystring: getQuery, response: withProblems({ 200: companySchema }) },
      onRequest: app.requirePermission('companies:read'),
    },
    async (request) => (await svc(request)).get(request.params.id, checkIncludeDeleted(request, request.query.includeDeleted)),
  );

  app.patch(
    '/companies/:id',
    {
      schema: {
        operationId: 'updateCompany',
        tags,
        security,
        params: idParams,
        body: updateCompanyBody,
        response: withProblems({ 200: companySchema, 409: problemSchema, 428: problemSchema }),
      },
      onRequest: app.requirePermission('companies:update'),
    },
    async (request) => (await svc(request)).update(request.params.id, request.body, ifMatchVersion(request)),
  );

  app.delete(
    '/companies/:id',
    {
      schema: {
        operationId: 'deleteCompany',
        tags,
        security,
        summary: 'Soft-delete a company and its contacts',
        params: idParams,
        response: withProblems({ 204: z.null() }),
      },
      onRequest: app.requirePermission('companies:delete'),
    },
    async (request, reply) => {
      await (await svc(request)).remove(request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/companies/:id/restore',
    {
      schema: { operationId: 'restoreCompany', tags, security, params: idParams, response: withProblems({ 200: companySchema, 409: problemSchema }) },
      onRequest: app.requirePermission('companies:restore'),
    },
    async (request) => (await svc(request)).restore(request.params.id),
  );
  done();
};
