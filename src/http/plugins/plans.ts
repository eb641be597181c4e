/**
 * Plans in the API: each tenant's limits from the per-process plan cache
 * (src/tenancy/plan-limits.ts), and the plan's request rate (src/tenancy/plan-rate-limit.ts)
 * as an onRequest hook that `/api/v1` runs right after identifying the tenant. A tenant
 * whose plan has no rate costs the hook one map lookup: no promise, no catalog query, no
 * Redis round trip.
 */
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import fp from 'fastify-plugin';
import type { PlanLimits } from '../../catalog/index.js';
import { TooManyRequestsError } from '../../lib/errors.js';
import type { PlanLimitsCache } from '../../tenancy/plan-limits.js';
import type { PlanRateLimiter } from '../../tenancy/plan-rate-limit.js';

declare module 'fastify' {
  interface FastifyInstance {
    planLimits: PlanLimitsCache;
    /** The identified tenant's plan limits (the plans are read first when its plan is not known yet). */
    tenantLimits(request: FastifyRequest): Promise<PlanLimits>;
    /** onRequest hook (after the tenant is identified): 429 `RATE_LIMITED` with `Retry-After` past the plan's requests per minute. */
    enforcePlanRate(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void;
  }
}

/** Options: the plan cache and the rate limiter (built by the app factory). */
export default fp<{ plans: PlanLimitsCache; limiter: PlanRateLimiter }>(
  (app, { plans, limiter }, done) => {
    app.decorate('planLimits', plans);
    app.decorate('tenantLimits', (request: FastifyRequest) => plans.limitsOfFresh(request.tenant!.plan));
    app.decorate('enforcePlanRate', (request: FastifyRequest, _reply: FastifyReply, next: HookHandlerDoneFunction) => {
      const tenant = request.tenant;
      const perMinute = tenant ? plans.limitsOf(tenant.plan).requestsPerMinute : null;
      if (perMinute === null || !tenant) return next();
      const verdict = limiter.check(tenant.id, perMinute);
      if (verdict === undefined) return next();
      if (verdict instanceof TooManyRequestsError) return next(verdict);
      verdict.then((err) => next(err), next);
    });
    done();
  },
  { name: 'silo-plans', dependencies: ['silo-tenant'] },
);
