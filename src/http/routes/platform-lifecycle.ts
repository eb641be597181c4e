/**
 * `/platform/v1`: the long lifecycle actions on a tenant (migrate, repair, revoke tokens,
 * back up, restore), run after a 202 answer, and the operations journal. Registered by
 * `platformRoutes` (routes/platform.ts), whose sign-in guards it uses.
 */
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { SiloContext } from '../../context.js';
import { BACKUP_KINDS } from '../../catalog/index.js';
import { NotFoundError, ValidationError } from '../../lib/errors.js';
import { backupTenant, listBackups } from '../../provisioning/backup-service.js';
import { migrateTenants } from '../../provisioning/migrate-service.js';
import { restoreTenant } from '../../provisioning/restore-service.js';
import { repairTenant } from '../../provisioning/repair-service.js';
import { revokeTenantTokens } from '../../provisioning/token-service.js';
import { getTenant, resumeTenant, suspendTenant } from '../../provisioning/tenants-service.js';
import { operationSchema, problemSchema, tenantOut, tenantSchema, withProblems } from '../schemas.js';
import { provisionResultSchema, slugParams } from './platform.js';

const backupSchema = z
  .object({
    id: z.number().int(),
    tenantId: z.number().int(),
    operationId: z.number().int().nullable(),
    kind: z.enum(BACKUP_KINDS as [string, ...string[]]),
    status: z.enum(['running', 'completed', 'failed']),
    storageKey: z.string(),
    sizeBytes: z.number().int().nullable().describe('bytes of the stored (gzip) object'),
    sha256: z.string().nullable().describe('hex SHA-256 of the stored object'),
    schemaVersion: z.string().nullable(),
    error: z.string().nullable(),
    createdAt: z.date(),
    finishedAt: z.date().nullable(),
  })
  .meta({ id: 'Backup' });
const acceptedSchema = z.object({ operation: operationSchema }).describe('the operation, still running: follow it at GET /platform/v1/operations/{id}');

/**
 * Long lifecycle actions run after the answer: the route answers 202 with the operation as
 * soon as its row exists; errors raised before that (unknown tenant, S3 not set up, tenant
 * busy) are the answer instead. The app waits for running jobs when it closes.
 */
function backgroundJobs(app: { addHook(name: 'onClose', fn: () => Promise<void>): unknown }, ctx: SiloContext) {
  const running = new Set<Promise<unknown>>();
  app.addHook('onClose', async () => {
    await Promise.allSettled([...running]);
  });
  return async (start: (onOperation: (id: number) => void) => Promise<unknown>) => {
    let onOperation!: (id: number) => void;
    const started = new Promise<number>((resolve) => (onOperation = resolve));
    const job = start(onOperation);
    running.add(job);
    job.then(
      () => running.delete(job),
      (err: unknown) => {
        running.delete(job);
        ctx.log.warn({ err }, 'background lifecycle action failed (see its operation)');
      },
    );
    const id = await Promise.race([started, job.then(() => started)]);
    const operation = await ctx.catalog.operations.get(id);
    return operation!;
  };
}

/** Options: the context. */
export const platformLifecycleRoutes: FastifyPluginCallbackZod<{ ctx: SiloContext }> = (app, { ctx }, done) => {
  const inBackground = backgroundJobs(app, ctx);
  const tags = ['platform'];
  const security = [{ platformBearer: [] }];
  const anyone = app.requirePlatformUser();
  const operator = app.requirePlatformUser(['operator']);
  const actor = (req: { platformUser?: { email: string } }) => `platform:${req.platformUser?.email ?? 'unknown'}`;

  app.post(
    '/tenants/:slug/migrate',
    {
      schema: {
        operationId: 'migrateTenant',
        tags,
        security,
        params: slugParams,
        response: withProblems({
          200: z.object({
            slug: z.string(),
            outcome: z.string(),
            applied: z.array(z.string()),
            schemaVersion: z.string().nullable(),
            operationId: z.number().int().optional(),
            error: z.string().optional(),
          }),
        }),
      },
      onRequest: operator,
    },
    async (request) => {
      const [r] = await migrateTenants(ctx, actor(request), { slugs: [request.params.slug] });
      return r!;
    },
  );

  app.post(
    '/tenants/:slug/repair',
    {
      schema: {
        operationId: 'repairTenant',
        tags,
        security,
        params: slugParams,
        response: withProblems({
          200: z.object({
            slug: z.string(),
            status: z.string(),
            outcome: z.string(),
            actions: z.array(z.string()),
            operationId: z.number().int().optional(),
            error: z.string().optional(),
            admin: provisionResultSchema.shape.admin.optional().describe('set when repair created a new first admin'),
          }),
          409: problemSchema,
        }),
      },
      onRequest: operator,
    },
    async (request) => {
      const r = await repairTenant(ctx, request.params.slug, actor(request));
      const admin = r.admin
        ? { admin: { email: r.admin.adminEmail, created: r.admin.adminCreated, ...(r.admin.generatedPassword ? { password: r.admin.generatedPassword } : {}) } }
        : {};
      return {
        slug: r.slug,
        status: r.status,
        outcome: r.outcome,
        actions: r.actions,
        ...(r.operationId ? { operationId: r.operationId } : {}),
        ...(r.error ? { error: r.error } : {}),
        ...admin,
      };
    },
  );

  for (const verb of ['suspend', 'resume'] as const) {
    app.post(
      `/tenants/:slug/${verb}`,
      {
        schema: { operationId: `${verb}Tenant`, tags, security, params: slugParams, response: withProblems({ 200: tenantSchema, 409: problemSchema }) },
        onRequest: operator,
      },
      async (request) =>
        tenantOut(
          verb === 'suspend' ? await suspendTenant(ctx, request.params.slug, actor(request)) : await resumeTenant(ctx, request.params.slug, actor(request)),
        ),
    );
  }

  app.post(
    '/tenants/:slug/revoke-tokens',
    {
      schema: {
        operationId: 'revokeTenantTokens',
        tags,
        security,
        params: slugParams,
        summary:
          'Start a new token generation: every access and refresh token issued for the tenant so far answers 401 TOKEN_REVOKED (in every API process within one change-poll interval); users sign in again.',
        response: withProblems({
          200: z.object({ tenant: tenantSchema, generation: z.number().int().describe('the new token generation'), operationId: z.number().int() }),
        }),
      },
      onRequest: operator,
    },
    async (request) => {
      const r = await revokeTenantTokens(ctx, request.params.slug, actor(request));
      return { tenant: tenantOut(r.tenant), generation: r.generation, operationId: r.operationId };
    },
  );

  app.get(
    '/tenants/:slug/backups',
    {
      schema: {
        operationId: 'listBackups',
        tags,
        security,
        params: slugParams,
        querystring: z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).default(100) }),
        response: withProblems({ 200: z.object({ data: z.array(backupSchema) }) }),
      },
      onRequest: anyone,
    },
    async (request) => ({ data: (await listBackups(ctx, request.params.slug, request.query.limit)).backups }),
  );

  app.post(
    '/tenants/:slug/backups',
    {
      schema: {
        operationId: 'backupTenant',
        tags,
        security,
        params: slugParams,
        summary: 'Back up a tenant database to S3 (a manual backup); answers 202 with the running operation.',
        response: withProblems({ 202: acceptedSchema, 409: problemSchema, 503: problemSchema }),
      },
      onRequest: operator,
    },
    async (request, reply) => {
      const operation = await inBackground((onOperation) => backupTenant(ctx, request.params.slug, actor(request), { onOperation }));
      return reply.code(202).send({ operation });
    },
  );

  app.post(
    '/tenants/:slug/restore',
    {
      schema: {
        operationId: 'restoreTenant',
        tags,
        security,
        params: slugParams,
        summary:
          'DESTRUCTIVE: replace the tenant database with a backup (a pre-restore backup is taken first); answers 202 with the running operation. Body: {"backupId": n} or {"latest": true}, and "confirm": "<slug>".',
        body: z.strictObject({ backupId: z.number().int().positive().optional(), latest: z.boolean().optional(), confirm: z.string().max(64) }),
        response: withProblems({ 202: acceptedSchema, 409: problemSchema, 503: problemSchema }),
      },
      onRequest: operator,
    },
    async (request, reply) => {
      const { backupId, latest, confirm } = request.body;
      if (confirm !== request.params.slug)
        throw new ValidationError('destructive: pass "confirm": "<slug>" to restore this tenant', { field: 'confirm' }, 'CONFIRMATION_REQUIRED');
      const operation = await inBackground((onOperation) =>
        restoreTenant(ctx, request.params.slug, actor(request), { ...(backupId !== undefined ? { backupId } : {}), latest: Boolean(latest), onOperation }),
      );
      return reply.code(202).send({ operation });
    },
  );

  app.get(
    '/operations',
    {
      schema: {
        operationId: 'listOperations',
        tags,
        security,
        querystring: z.strictObject({ tenant: z.string().optional(), limit: z.coerce.number().int().min(1).max(1000).default(50) }),
        response: withProblems({ 200: z.object({ data: z.array(operationSchema) }) }),
      },
      onRequest: anyone,
    },
    async (request) => {
      const tenantId = request.query.tenant ? (await getTenant(ctx, request.query.tenant, { includeDeleted: true })).id : undefined;
      return { data: await ctx.catalog.operations.list({ ...(tenantId ? { tenantId } : {}), limit: request.query.limit }) };
    },
  );

  app.get(
    '/operations/:id',
    {
      schema: {
        operationId: 'getOperation',
        tags,
        security,
        params: z.strictObject({ id: z.coerce.number().int().positive() }),
        response: withProblems({ 200: operationSchema }),
      },
      onRequest: anyone,
    },
    async (request) => {
      const op = await ctx.catalog.operations.get(request.params.id);
      if (!op) throw new NotFoundError(`operation ${request.params.id} not found`, 'OPERATION_NOT_FOUND');
      return op;
    },
  );
  done();
};
