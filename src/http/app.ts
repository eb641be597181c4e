/**
 * The Fastify application: built from the shared services, never listens (see
 * `server.ts`). Tests build it and use `app.inject`.
 */
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { randomUUID } from 'node:crypto';
import type { SiloContext } from '../context.js';
import { TenantConnections } from '../tenancy/connections.js';
import { KnownTenantNames } from '../tenancy/known-names.js';
import { TenantResolver } from '../tenancy/resolve.js';
import { TenantChangeWatcher } from '../tenancy/watch.js';
import { PlanLimitsCache } from '../tenancy/plan-limits.js';
import { PlanRateLimiter, RedisRateCounter } from '../tenancy/plan-rate-limit.js';
import { rateLimitStore } from './rate-limit-store.js';
import { RedisClient } from '../lib/redis.js';
import plansPlugin from './plugins/plans.js';
import { platformPlansRoutes, tenantUsageRoutes } from './routes/plans.js';
import authPlugin from './plugins/auth.js';
import docsPlugin from './plugins/docs.js';
import errorsPlugin, { sendProblem } from './plugins/errors.js';
import metricsPlugin from './plugins/metrics.js';
import tenantPlugin from './plugins/tenant.js';
import historyPlugin from './plugins/history.js';
import jsonBodyPlugin from './plugins/json-body.js';
import { HistoryRecorder } from '../history/recorder.js';
import { platformRoutes } from './routes/platform.js';
import { signupRoutes } from './routes/signup.js';
import { serviceRoutes } from './routes/service.js';
import { tenantAuthRoutes } from './routes/tenant-auth.js';
import { usersRoutes } from './routes/users.js';
import { rolesRoutes } from './routes/roles.js';
import { invitationsRoutes } from './routes/invitations.js';
import { passwordResetRoutes } from './routes/password-reset.js';
import { companiesRoutes } from './routes/companies.js';
import { attachmentsRoutes } from './routes/attachments.js';
import { dealsRoutes } from './routes/deals.js';
import { pipelineStagesRoutes } from './routes/pipeline-stages.js';
import { contactsRoutes } from './routes/contacts.js';
import { importRoutes } from './routes/imports.js';
import { leadsRoutes } from './routes/leads.js';
import { bulkRoutes } from './routes/bulk.js';
import { activityRoutes } from './routes/activity.js';
import { platformHistoryRoutes, tenantHistoryRoutes } from './routes/history.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { webhooksRoutes } from './routes/webhooks.js';
import { WebhookDispatcher } from '../webhooks/dispatcher.js';
import { notesRoutes } from './routes/notes.js';
import { tasksRoutes } from './routes/tasks.js';
import { timelineRoutes } from './routes/timeline.js';
import { ConfigError } from '../config.js';
import { ValidationError } from '../lib/errors.js';
import { illFormedStringPath } from '../lib/validation.js';
import { BackgroundTasks } from '../lib/background.js';
import { createResponseSerializerCompiler } from './response-serializer.js';
import { lazyChildLoggerFactory } from './request-logger.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The request-history recorder (undefined when SILO_HISTORY_ENABLED=0). */
    historyRecorder: HistoryRecorder | undefined;
    /** Work started by requests after their answer (password reset mails); awaited at close. */
    background: BackgroundTasks;
    /** Sends webhook deliveries (started with the app, stopped at close). */
    webhookDispatcher: WebhookDispatcher;
  }
}

/** Options of {@link buildApp}. */
export interface AppOptions {
  ctx: SiloContext;
  /** Fastify's logger option (default: the context's pino logger). */
  logger?: FastifyServerOptions['loggerInstance'];
}

/** proxy-addr's trust function for "the nearest `hops` proxies" (`i` = 0 is the socket's peer). */
function trustHops(hops: number): (address: string, hop: number) => boolean {
  return (_address, hop) => hop < hops;
}

/**
 * Builds the app.
 * @throws ConfigError when `SILO_JWT_SECRET` is missing
 */
export async function buildApp({ ctx, logger }: AppOptions): Promise<FastifyInstance> {
  const { config } = ctx;
  if (!config.jwtSecret) throw new ConfigError('SILO_JWT_SECRET', 'required to serve the API (at least 32 bytes; see .env.example)');
  const app = Fastify({
    loggerInstance: logger ?? ctx.log,
    // Request loggers built on the first line they write (most requests write none).
    childLoggerFactory: lazyChildLoggerFactory,
    // A hop count is given as proxy-addr's own function form (`i < n`): Fastify's types omit numbers.
    trustProxy: typeof config.trustProxy === 'number' ? trustHops(config.trustProxy) : config.trustProxy,
    bodyLimit: config.bodyLimitBytes,
    requestTimeout: config.requestTimeoutMs,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(given) ? given : randomUUID();
    },
    ajv: { customOptions: { removeAdditional: false } },
    // What the router refuses before any route runs is problem+json too.
    frameworkErrors: (err, request, reply) => void sendProblem(err, request, reply),
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  // Compiled fast-json-stringify serializers; outside production each answer is checked against zod's.
  app.setSerializerCompiler(createResponseSerializerCompiler({ verify: config.env !== 'production' }));
  // A callback hook, not an async one: no promise per response.
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    done(null, payload);
  });
  // A JSON string may hold a lone surrogate ("\ud800"), which UTF-8 and utf8mb4 cannot:
  // refuse it (I-JSON, RFC 7493 §2.1) rather than store U+FFFD in its place.
  app.addHook('preValidation', (request, _reply, done) => {
    const path = illFormedStringPath(request.body, 'body');
    if (path === undefined) return done();
    const message = 'must be well-formed Unicode (it holds a lone surrogate)';
    done(new ValidationError(`${path}: ${message}`, { fields: [{ path, message }] }));
  });

  // The live tenant names in memory, kept current by the watcher (so only with one): unknown names cost no query.
  const known = config.tenantChangePollMs > 0 ? new KnownTenantNames(ctx.catalog, ctx.log) : undefined;
  const resolver = new TenantResolver(ctx.catalog, config, { known });
  const connections = new TenantConnections(ctx.catalog, config);
  // A tenant that stops being active (suspended, deleted, in maintenance) loses its pool.
  const applyChange = async (t: { id: number; slug: string; status: string }) => {
    resolver.invalidateTenant(t.id, t.slug);
    void known?.apply(t);
    if (t.status !== 'active') await connections.drop(t.id);
  };
  const onLocalChange = (slug: string) => {
    resolver.invalidate(slug);
    void ctx.catalog.tenants
      .findBySlug(slug)
      .then((t) => t && applyChange(t))
      .catch(() => undefined);
  };
  ctx.events.on('tenantChanged', onLocalChange);
  // Every plan's limits in memory, read again each poll interval and at once after a change made here.
  const plans = new PlanLimitsCache(ctx.catalog, config.tenantChangePollMs, config.tenantCacheTtlMs, ctx.log);
  const onPlansChanged = () => void plans.refresh();
  ctx.events.on('plansChanged', onPlansChanged);
  await plans.start();
  const redis = config.redis ? new RedisClient(config.redis) : undefined;
  const limiter = new PlanRateLimiter(redis && new RedisRateCounter(redis, config.redis!.keyPrefix), ctx.log);
  const watcher = new TenantChangeWatcher(ctx.catalog, config.tenantChangePollMs, applyChange, ctx.log);
  if (known) {
    // The watcher's starting point first, then the names: a change made in between is reported by its next poll.
    await watcher.poll();
    await known.start(config.tenantChangePollMs);
  }
  watcher.start();
  const background = new BackgroundTasks();
  app.decorate('background', background);
  const dispatcher = new WebhookDispatcher({ catalog: ctx.catalog, connections, config: config.webhooks, secrets: config.secrets, log: ctx.log });
  app.decorate('webhookDispatcher', dispatcher);
  dispatcher.start();
  app.addHook('onClose', async () => {
    // Routes' own onClose hooks ran first (children before parents); tasks may still use the pools.
    // The dispatcher first: no new attempt starts, those in flight are recorded (each within its timeout).
    await dispatcher.stop();
    await background.idle();
    watcher.stop();
    known?.stop();
    plans.stop();
    ctx.events.off('tenantChanged', onLocalChange);
    ctx.events.off('plansChanged', onPlansChanged);
    await redis?.close();
    await recorder?.close();
    await connections.close();
  });

  await app.register(errorsPlugin);
  await app.register(jsonBodyPlugin);
  await app.register(docsPlugin);
  await app.register(metricsPlugin, { connections });
  await app.register(tenantPlugin, { resolver, connections, unknownTenantRateLimit: config.unknownTenantRateLimit });
  await app.register(plansPlugin, { plans, limiter });
  const recorder = config.history.enabled ? new HistoryRecorder(ctx.catalog.knex, config.history, ctx.log) : undefined;
  await app.register(historyPlugin, { recorder });
  app.decorate('historyRecorder', recorder);
  await app.register(authPlugin, { secret: config.jwtSecret, rolesTtlMs: config.tenantChangePollMs > 0 ? config.tenantChangePollMs : config.tenantCacheTtlMs });
  await app.register(rateLimit, {
    global: false,
    // Shared by every API process through Redis when SILO_REDIS_URL is set (see rate-limit-store.ts).
    store: rateLimitStore(redis, config.redis?.keyPrefix ?? '', ctx.log),
    errorResponseBuilder: (_req, context) => ({
      statusCode: 429,
      code: 'RATE_LIMITED',
      message: `too many attempts; retry in ${Math.ceil(context.ttl / 1000)} s`,
    }),
  });

  await app.register(serviceRoutes, { ctx });
  await app.register(
    async (api) => {
      api.addHook('onRequest', (request) => api.identifyTenant(request));
      // The plan's requests per minute (nothing to do for a plan without a rate).
      api.addHook('onRequest', (request, reply, done) => api.enforcePlanRate(request, reply, done));
      await api.register(tenantAuthRoutes, { loginRateLimit: config.loginRateLimit, refreshRateLimit: config.refreshRateLimit });
      await api.register(passwordResetRoutes, { ctx, background, forgotRateLimit: config.loginRateLimit, resetRateLimit: config.refreshRateLimit });
      await api.register(usersRoutes, { ctx });
      await api.register(rolesRoutes);
      await api.register(invitationsRoutes, { ctx, acceptRateLimit: config.refreshRateLimit });
      await api.register(companiesRoutes, { storage: ctx.storage });
      await api.register(pipelineStagesRoutes);
      await api.register(dealsRoutes);
      await api.register(contactsRoutes);
      await api.register(leadsRoutes);
      await api.register(bulkRoutes);
      await api.register(activityRoutes);
      await api.register(tasksRoutes);
      await api.register(notesRoutes);
      await api.register(timelineRoutes);
      // Registers @fastify/multipart in its own scope: no other route takes multipart bodies.
      await api.register(attachmentsRoutes, { ctx });
      await api.register(importRoutes);
      await api.register(tenantHistoryRoutes, { ctx });
      await api.register(tenantUsageRoutes, { ctx });
      await api.register(webhooksRoutes, { config, dispatcher });
    },
    { prefix: '/api/v1' },
  );
  await app.register(platformRoutes, { prefix: '/platform/v1', ctx, loginRateLimit: config.loginRateLimit });
  await app.register(platformHistoryRoutes, { prefix: '/platform/v1', ctx });
  await app.register(signupRoutes, { prefix: '/platform/v1', ctx });
  await app.register(platformPlansRoutes, { prefix: '/platform/v1', ctx });
  await app.register(dashboardRoutes, { prefix: '/platform' });
  return app;
}
