/**
 * Plans and usage. `/platform/v1`: the plans (operators change them, support staff read),
 * a tenant's plan (`PUT /tenants/{slug}/plan`) and its usage; `/api/v1/usage`: a tenant's
 * admins see their own usage and limits. The same services as `silo plans ...` and
 * `silo tenants set-plan|usage`.
 */
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Plan } from '../../catalog/index.js';
import type { SiloContext } from '../../context.js';
import { addPlan, getPlan, listPlans, newPlanInput, planLimitsInput, setTenantPlan, updatePlan } from '../../provisioning/plans-service.js';
import { getTenant } from '../../provisioning/tenant-lookup.js';
import { tenantUsage, type TenantUsage } from '../../provisioning/tenant-usage.js';
import { problemSchema, tenantOut, tenantSchema, tenantQuery, withProblems } from '../schemas.js';
import { slugParams } from './platform.js';

const limit = z.number().int().nullable();
const limitsSchema = z.object({
  maxUsers: limit.describe('active users; null: unlimited'),
  maxContacts: limit.describe('live contacts; null: unlimited'),
  maxAttachmentBytes: limit.describe('bytes of all attachments; null: unlimited'),
  requestsPerMinute: limit.describe('API requests per minute; null: unlimited'),
});

/** A plan as the API shows it. */
export const planSchema = z
  .object({
    name: z.string(),
    ...limitsSchema.shape,
    tenants: z.number().int().optional().describe('tenants (not deleted) on the plan'),
    createdAt: z.date(),
    updatedAt: z.date(),
  })
  .meta({ id: 'Plan' });

/** A tenant's usage and its plan's limits. */
export const usageSchema = z
  .object({
    tenant: z.string(),
    plan: z.string(),
    limits: limitsSchema,
    usage: z.object({
      users: z.number().int().describe('active users'),
      contacts: z.number().int().describe('contacts not deleted'),
      companies: z.number().int().describe('companies not deleted'),
      deals: z.number().int().describe('deals not deleted'),
      attachmentBytes: z.number().int().describe('sum of the sizes of all attachments'),
      databaseBytes: z.number().int().describe('data and index bytes of the tenant database (information_schema.TABLES)'),
      requestsLast24h: z.number().int().describe('requests in the request history over the last 24 h'),
    }),
    at: z.date(),
  })
  .meta({ id: 'Usage' });

const planOut = (p: Plan & { tenants?: number }) => ({
  name: p.name,
  maxUsers: p.maxUsers,
  maxContacts: p.maxContacts,
  maxAttachmentBytes: p.maxAttachmentBytes,
  requestsPerMinute: p.requestsPerMinute,
  ...(p.tenants === undefined ? {} : { tenants: p.tenants }),
  createdAt: p.createdAt,
  updatedAt: p.updatedAt,
});
const usageOut = (u: TenantUsage) => u;

/** Options: the context. Registered under `/platform/v1`. */
export const platformPlansRoutes: FastifyPluginCallbackZod<{ ctx: SiloContext }> = (app, { ctx }, done) => {
  const tags = ['plans'];
  const security = [{ platformBearer: [] }];
  const anyone = app.requirePlatformUser();
  const operator = app.requirePlatformUser(['operator']);
  const actor = (req: { platformUser?: { email: string } }) => `platform:${req.platformUser?.email ?? 'unknown'}`;
  const nameParams = z.strictObject({ name: z.string().max(64) });

  app.get(
    '/plans',
    {
      schema: { operationId: 'listPlans', tags, security, response: withProblems({ 200: z.object({ data: z.array(planSchema) }) }, [400, 401, 403]) },
      onRequest: anyone,
    },
    async () => ({ data: (await listPlans(ctx)).map(planOut) }),
  );

  app.post(
    '/plans',
    {
      schema: {
        operationId: 'createPlan',
        tags,
        security,
        summary: 'Add a plan; limits left out are unlimited (null).',
        body: newPlanInput,
        response: withProblems({ 201: planSchema, 409: problemSchema }, [400, 401, 403]),
      },
      onRequest: operator,
    },
    async (request, reply) => reply.code(201).send(planOut(await addPlan(ctx, request.body))),
  );

  app.patch(
    '/plans/:name',
    {
      schema: {
        operationId: 'updatePlan',
        tags,
        security,
        summary: "Change a plan's limits (null: unlimited; left out: unchanged). Every API process applies them within one change-poll interval.",
        params: nameParams,
        body: planLimitsInput,
        response: withProblems({ 200: planSchema }),
      },
      onRequest: operator,
    },
    async (request) => planOut(await updatePlan(ctx, request.params.name, request.body)),
  );

  app.get(
    '/plans/:name',
    {
      schema: { operationId: 'getPlan', tags, security, params: nameParams, response: withProblems({ 200: planSchema }) },
      onRequest: anyone,
    },
    async (request) => planOut(await getPlan(ctx, request.params.name)),
  );

  app.put(
    '/tenants/:slug/plan',
    {
      schema: {
        operationId: 'setTenantPlan',
        tags,
        security,
        summary: "Put a tenant on a plan (journaled as a set-plan operation); every API process applies the plan's limits within one change-poll interval.",
        params: slugParams,
        body: z.strictObject({ plan: z.string().max(64) }),
        response: withProblems({ 200: z.object({ tenant: tenantSchema, previousPlan: z.string(), operationId: z.number().int() }) }),
      },
      onRequest: operator,
    },
    async (request) => {
      const r = await setTenantPlan(ctx, request.params.slug, request.body.plan, actor(request));
      return { tenant: tenantOut(r.tenant), previousPlan: r.previousPlan, operationId: r.operationId };
    },
  );

  app.get(
    '/tenants/:slug/usage',
    {
      schema: { operationId: 'getTenantUsage', tags, security, params: slugParams, response: withProblems({ 200: usageSchema }) },
      onRequest: anyone,
    },
    async (request) => usageOut(await tenantUsage(ctx, await getTenant(ctx, request.params.slug))),
  );
  done();
};

/** Options: the context. Registered under `/api/v1` (the tenant is identified). */
export const tenantUsageRoutes: FastifyPluginCallbackZod<{ ctx: SiloContext }> = (app, { ctx }, done) => {
  app.get(
    '/usage',
    {
      schema: {
        operationId: 'getUsage',
        tags: ['usage'],
        security: [{ tenantBearer: [] }],
        summary: "The tenant's usage (records, attachment and database bytes, requests of the last 24 h) and its plan's limits.",
        querystring: tenantQuery,
        response: withProblems({ 200: usageSchema }),
      },
      onRequest: app.requirePermission('usage:read'),
    },
    async (request) => usageOut(await tenantUsage(ctx, request.tenant!, await app.tenantKnex(request))),
  );
  done();
};
