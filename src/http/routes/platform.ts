/**
 * `/platform/v1`: operators and support staff. Sign-in, tenants (over the same
 * provisioning services as the CLI) and the operations journal. Operators may do all;
 * support staff may only read.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { SiloContext } from '../../context.js';
import { TENANT_STATUSES, type TenantStatus } from '../../catalog/index.js';
import { UnauthorizedError, ValidationError } from '../../lib/errors.js';
import { verifyPasswordOrDummy } from '../../lib/passwords.js';
import { createTenant, createTenantInput, deleteTenant, getTenant } from '../../provisioning/tenants-service.js';
import { ACCESS_TTL_S } from '../plugins/auth.js';
import { problemSchema, tenantOut, tenantSchema, withProblems } from '../schemas.js';
import { renameTenant } from '../../provisioning/tenant-rename.js';
import { platformLifecycleRoutes } from './platform-lifecycle.js';

/** `:slug` of the tenant routes. */
export const slugParams = z.strictObject({ slug: z.string().min(1).max(64) });
const loginBody = z.strictObject({ email: z.string().min(1).max(254), password: z.string().min(1).max(256) });
const platformTokenSchema = z.object({
  accessToken: z.string(),
  tokenType: z.literal('Bearer'),
  expiresIn: z.number().int(),
  role: z.enum(['operator', 'support']),
});
/** Answer of a tenant creation (and of a repair). */
export const provisionResultSchema = z.object({
  tenant: tenantSchema,
  operationId: z.number().int(),
  admin: z.object({ email: z.string(), created: z.boolean(), password: z.string().optional().describe('generated password, shown once') }),
});

export const platformRoutes: FastifyPluginAsyncZod<{ ctx: SiloContext; loginRateLimit: number }> = async (app, { ctx, loginRateLimit }) => {
  const tags = ['platform'];
  const security = [{ platformBearer: [] }];
  const anyone = app.requirePlatformUser();
  const operator = app.requirePlatformUser(['operator']);
  const actor = (req: { platformUser?: { email: string } }) => `platform:${req.platformUser?.email ?? 'unknown'}`;

  app.post(
    '/auth/login',
    {
      schema: { operationId: 'platformLogin', tags, body: loginBody, response: withProblems({ 200: platformTokenSchema, 429: problemSchema }, [400, 401]) },
      config: { rateLimit: { max: loginRateLimit, timeWindow: 60_000, keyGenerator: (req) => `platform|${req.ip}` } },
    },
    async (request) => {
      const user = await ctx.catalog.platformUsers.findForLogin(request.body.email.trim().toLowerCase());
      // Unknown email: a dummy hash is verified instead, so the answer takes the same time.
      const ok = await verifyPasswordOrDummy(user?.passwordHash, request.body.password);
      if (!user || !ok || !user.active) {
        request.log.info({ email: request.body.email }, 'failed platform login');
        throw new UnauthorizedError('email or password is wrong', 'INVALID_CREDENTIALS');
      }
      const accessToken = app.signAccessToken({ aud: 'platform', sub: String(user.id), role: user.role, email: user.email });
      return { accessToken, tokenType: 'Bearer' as const, expiresIn: ACCESS_TTL_S, role: user.role };
    },
  );

  app.get(
    '/tenants',
    {
      schema: {
        operationId: 'listTenants',
        tags,
        security,
        querystring: z.strictObject({ status: z.enum(TENANT_STATUSES as [TenantStatus, ...TenantStatus[]]).optional() }),
        response: withProblems({ 200: z.object({ data: z.array(tenantSchema) }) }, [400, 401, 403]),
      },
      onRequest: anyone,
    },
    async (request) => {
      const list = await ctx.catalog.tenants.list(request.query.status ? { statuses: [request.query.status] } : {});
      return { data: list.map((t) => tenantOut(t)) };
    },
  );

  app.post(
    '/tenants',
    {
      schema: {
        operationId: 'createTenant',
        tags,
        security,
        body: createTenantInput,
        response: withProblems({ 201: provisionResultSchema, 409: problemSchema, 500: problemSchema }, [400, 401, 403]),
      },
      onRequest: operator,
    },
    async (request, reply) => {
      const r = await createTenant(ctx, request.body, actor(request));
      return reply.code(201).send({
        tenant: tenantOut(r.tenant),
        operationId: r.operationId,
        admin: { email: r.admin.adminEmail, created: r.admin.adminCreated, ...(r.admin.generatedPassword ? { password: r.admin.generatedPassword } : {}) },
      });
    },
  );

  app.get(
    '/tenants/:slug',
    {
      schema: { operationId: 'getTenant', tags, security, params: slugParams, response: withProblems({ 200: tenantSchema }) },
      onRequest: anyone,
    },
    async (request) => {
      const t = await getTenant(ctx, request.params.slug, { includeDeleted: true });
      return tenantOut(
        t,
        (await ctx.catalog.tenants.listDomains(t.id)).map((d) => d.domain),
      );
    },
  );

  app.patch(
    '/tenants/:slug',
    {
      schema: {
        operationId: 'updateTenant',
        tags,
        security,
        params: slugParams,
        summary:
          'Change a tenant: `slug` renames it (only the catalog changes; the old slug answers 404 and stays reserved for SILO_SLUG_RESERVE_DAYS; tokens keep working), `name`, `plan`.',
        body: z.strictObject({
          slug: z.string().min(1).max(64).optional().describe('new slug: 3-32 of a-z 0-9 -, starting with a letter'),
          name: z.string().trim().min(1).max(200).optional(),
          plan: z
            .string()
            .regex(/^[a-z0-9][a-z0-9-]{0,31}$/)
            .optional(),
        }),
        response: withProblems({ 200: tenantSchema, 409: problemSchema }),
      },
      onRequest: operator,
    },
    async (request) => {
      const { slug, ...rest } = request.body;
      let t = await getTenant(ctx, request.params.slug);
      if (slug !== undefined && slug !== t.slug) t = (await renameTenant(ctx, t.slug, slug, actor(request))).tenant;
      await ctx.catalog.tenants.update(t.id, rest);
      return tenantOut((await ctx.catalog.tenants.findById(t.id))!);
    },
  );

  app.delete(
    '/tenants/:slug',
    {
      schema: {
        operationId: 'deleteTenant',
        tags,
        security,
        params: slugParams,
        summary:
          'Delete a tenant: takes a pre-delete backup to S3, then drops its database and user. Pass ?confirm=<slug>; ?backup=false skips the backup (the data is then lost for good).',
        querystring: z.strictObject({ confirm: z.string().optional(), backup: z.enum(['true', 'false']).default('true') }),
        response: withProblems({ 200: z.object({ tenant: tenantSchema, operationId: z.number().int() }), 409: problemSchema, 503: problemSchema }),
      },
      onRequest: operator,
    },
    async (request) => {
      if (request.query.confirm !== request.params.slug)
        throw new ValidationError('destructive: pass ?confirm=<slug> to delete this tenant', { field: 'confirm' }, 'CONFIRMATION_REQUIRED');
      const r = await deleteTenant(ctx, request.params.slug, actor(request), { backup: request.query.backup === 'true' });
      return { tenant: tenantOut(r.tenant), operationId: r.operationId };
    },
  );

  await app.register(platformLifecycleRoutes, { ctx });
};
