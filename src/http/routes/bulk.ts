/**
 * `POST /api/v1/{companies,contacts,deals,leads}/bulk`: delete, restore or update up to 500
 * rows of one resource, all or nothing (src/crm/bulk.ts). Each action needs the roles of
 * its single-row route (DELETE, restore, PATCH); answers 200 `{ action, count }`, or 409
 * `BULK_FAILED` with `failures: [{ id, code, detail }]` and nothing changed.
 */
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import type { Knex } from 'knex';
import { z } from 'zod';
import { BULK_ACTIONS, bulkBody, runBulk, type BulkOps, type BulkRequest } from '../../crm/bulk.js';
import type { Actor } from '../../crm/common.js';
import { companyPatchBody, createCompaniesService } from '../../crm/companies.js';
import { contactPatchBody, createContactsService } from '../../crm/contacts.js';
import { createDealsService, dealPatchBody } from '../../crm/deals.js';
import { createLeadsService, leadPatchFields } from '../../crm/leads.js';
import { isPermission, type Permission } from '../../crm/permissions.js';
import { actorOf, assertPermission } from '../crm-helpers.js';
import { problemSchema, withProblems } from '../schemas.js';

const bulkResultSchema = z.object({ action: z.enum(BULK_ACTIONS), count: z.number().int().describe('rows changed') }).meta({ id: 'BulkResult' });

interface BulkResource {
  /** Path segment and OpenAPI tag. */
  name: 'companies' | 'contacts' | 'deals' | 'leads';
  operationId: string;
  patch: z.ZodObject;
  /** The resource's single-row operations (the patch type is the resource's: validated by `patch` before they see it). */
  ops: (knex: Knex, actor: Actor, request: FastifyRequest) => Promise<BulkOps<never>>;
}

const RESOURCES: BulkResource[] = [
  { name: 'companies', operationId: 'bulkCompanies', patch: companyPatchBody, ops: (k, a) => Promise.resolve(createCompaniesService(k, a).bulkOps) },
  {
    name: 'contacts',
    operationId: 'bulkContacts',
    patch: contactPatchBody,
    // Restoring a contact counts against the plan's contacts limit, as the single restore does.
    ops: async (k, a, request) => createContactsService(k, a, { maxContacts: (await request.server.tenantLimits(request)).maxContacts }).bulkOps,
  },
  { name: 'deals', operationId: 'bulkDeals', patch: dealPatchBody, ops: (k, a) => Promise.resolve(createDealsService(k, a).bulkOps) },
  { name: 'leads', operationId: 'bulkLeads', patch: z.strictObject(leadPatchFields), ops: (k, a) => Promise.resolve(createLeadsService(k, a).bulkOps) },
];

/** The permission of each bulk action on `resource`: that of its single-row route (DELETE, restore, PATCH). */
function bulkPermission(resource: string, action: BulkRequest<never>['action']): Permission {
  const p = `${resource}:${action}`;
  if (!isPermission(p)) throw new Error(`no permission ${p}: add it to crm/permissions.ts`);
  return p;
}

export const bulkRoutes: FastifyPluginCallbackZod = (api, _opts, done) => {
  for (const r of RESOURCES) {
    const permissions = BULK_ACTIONS.map((a) => bulkPermission(r.name, a));
    api.post(
      `/${r.name}/bulk`,
      {
        schema: {
          operationId: r.operationId,
          tags: [r.name],
          security: [{ tenantBearer: [] }],
          summary: `Delete, restore or update up to 500 ${r.name} at once, all or nothing`,
          description: `delete needs ${r.name}:delete, restore ${r.name}:restore, update ${r.name}:update (as the single-row routes); 409 BULK_FAILED lists every failing id (failures) and changes nothing`,
          body: bulkBody(r.patch),
          response: withProblems({ 200: bulkResultSchema, 409: problemSchema }),
        },
        // One of the actions' permissions before the body is read; the action's own after.
        onRequest: api.requirePermission(permissions),
      },
      async (request) => {
        const body = request.body as BulkRequest<never>;
        assertPermission(request, bulkPermission(r.name, body.action));
        const knex = await api.tenantKnex(request);
        return runBulk(knex, await r.ops(knex, actorOf(request), request), body);
      },
    );
  }
  done();
};
