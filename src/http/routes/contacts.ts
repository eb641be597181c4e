/** `/api/v1/contacts`: contacts of the tenant, with export and restore. */
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { dateRangeQuery } from '../../crm/common.js';
import { CONTACT_SORT, createContactBody, createContactsService, updateContactBody, type ContactRow } from '../../crm/contacts.js';
import { actorOf, checkIncludeDeleted, createWithIdempotency, getQuery, idParams, ifMatchVersion, includeDeletedParam, sendCsv } from '../crm-helpers.js';
import { page, paginationQuery, problemSchema, searchParam, sortParam, withProblems } from '../schemas.js';

const date = z.date();
export const contactSchema = z
  .object({
    id: z.number().int(),
    companyId: z.number().int().nullable(),
    fullName: z.string(),
    email: z.string().nullable(),
    phone: z.string().nullable(),
    jobTitle: z.string().nullable(),
    version: z.number().int(),
    createdAt: date,
    updatedAt: date,
    deletedAt: date.nullable(),
  })
  .meta({ id: 'Contact' });

const listQuery = paginationQuery.extend({
  q: searchParam('full name, email and job title'),
  sort: sortParam(CONTACT_SORT),
  ...dateRangeQuery,
  companyId: z.coerce.number().int().positive().optional(),
  email: z.string().max(254).optional(),
  includeDeleted: includeDeletedParam,
});
const exportQuery = listQuery.omit({ page: true, pageSize: true });

export const contactsRoutes: FastifyPluginCallbackZod = (app, _opts, done) => {
  const tags = ['contacts'];
  const security = [{ tenantBearer: [] }];
  const svc = async (request: Parameters<typeof actorOf>[0]) => createContactsService(await app.tenantKnex(request), actorOf(request));
  /** The service with the plan's contacts limit (creates and restores check it). */
  const limitedSvc = async (request: Parameters<typeof actorOf>[0]) =>
    createContactsService(await app.tenantKnex(request), actorOf(request), { maxContacts: (await app.tenantLimits(request)).maxContacts });
  const mutations = withProblems({ 200: contactSchema, 409: problemSchema, 422: problemSchema, 428: problemSchema });

  app.get(
    '/contacts',
    {
      schema: { operationId: 'listContacts', tags, security, querystring: listQuery, response: withProblems({ 200: page(contactSchema) }) },
      onRequest: app.requirePermission('contacts:read'),
    },
    async (request) => {
      const q = request.query;
      const r = await (await svc(request)).list({ ...q, includeDeleted: checkIncludeDeleted(request, q.includeDeleted) });
      return { ...r, page: q.page, pageSize: q.pageSize };
    },
  );

  app.get(
    '/contacts/export.csv',
    {
      schema: { operationId: 'exportContacts', tags, security, querystring: exportQuery, produces: ['text/csv'] },
      onRequest: app.requirePermission('contacts:read'),
    },
    async (request, reply) => {
      const q = request.query;
      const { query } = await (await svc(request)).exportQuery({ ...q, page: 1, pageSize: 1, includeDeleted: checkIncludeDeleted(request, q.includeDeleted) });
      return sendCsv<ContactRow>(reply, query, 'contacts.csv', {
        id: (r) => r.id,
        companyId: (r) => r.company_id,
        fullName: (r) => r.full_name,
        email: (r) => r.email,
        phone: (r) => r.phone,
        jobTitle: (r) => r.job_title,
        createdAt: (r) => r.created_at,
        updatedAt: (r) => r.updated_at,
      });
    },
  );

  app.post(
    '/contacts',
    {
      schema: {
        operationId: 'createContact',
        tags,
        security,
        body: createContactBody,
        response: withProblems({ 201: contactSchema, 409: problemSchema, 422: problemSchema }),
      },
      onRequest: app.requirePermission('contacts:create'),
    },
    async (request, reply) => {
      const s = await limitedSvc(request);
      return createWithIdempotency(request, reply, request.tenantDb!, (trx) => s.create(request.body, trx));
    },
  );

  app.get(
    '/contacts/:id',
    {
      schema: { operationId: 'getContact', tags, security, params: idParams, querystring: getQuery, response: withProblems({ 200: contactSchema }) },
      onRequest: app.requirePermission('contacts:read'),
    },
    async (request) => (await svc(request)).get(request.params.id, checkIncludeDeleted(request, request.query.includeDeleted)),
  );

  app.patch(
    '/contacts/:id',
    {
      schema: { operationId: 'updateContact', tags, security, params: idParams, body: updateContactBody, response: mutations },
      onRequest: app.requirePermission('contacts:update'),
    },
    async (request) => (await svc(request)).update(request.params.id, request.body, ifMatchVersion(request)),
  );

  app.delete(
    '/contacts/:id',
    {
      schema: { operationId: 'deleteContact', tags, security, params: idParams, response: withProblems({ 204: z.null() }) },
      onRequest: app.requirePermission('contacts:delete'),
    },
    async (request, reply) => {
      await (await svc(request)).remove(request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/contacts/:id/restore',
    {
      schema: { operationId: 'restoreContact', tags, security, params: idParams, response: mutations },
      onRequest: app.requirePermission('contacts:restore'),
    },
    async (request) => (await limitedSvc(request)).restore(request.params.id),
  );
  done();
};
