/**
 * Tenant routing for `/api/v1`: identifies the tenant of each request (onRequest), and
 * borrows a connection pool of that tenant's database for the request's duration
 * (`request.tenantDb`, released when the response is sent or the request aborted).
 * An address that names more than `unknownTenantRateLimit` unknown tenants in a minute
 * gets 429 `TOO_MANY_UNKNOWN_TENANTS` (with Retry-After) instead of 404 for the rest of
 * that minute; its requests for real tenants are served as usual.
 */
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Knex } from 'knex';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { Tenant } from '../../catalog/index.js';
import { NotFoundError, TooManyRequestsError, UnavailableError } from '../../lib/errors.js';
import { isConnectionError } from '../../lib/knex.js';
import type { TenantConnections } from '../../tenancy/connections.js';
import type { TenantResolver } from '../../tenancy/resolve.js';

declare module 'fastify' {
  interface FastifyInstance {
    tenantResolver: TenantResolver;
    tenantConnections: TenantConnections;
    /** onRequest hook: identifies and loads the tenant (404/403/503/400 otherwise). */
    identifyTenant(request: FastifyRequest): Promise<void>;
    /** Borrows the tenant's Knex for this request (released on response). */
    tenantKnex(request: FastifyRequest): Promise<Knex>;
  }
  interface FastifyRequest {
    tenant?: Tenant;
    releaseTenantDb?: () => void;
    tenantDb?: Knex;
  }
}

/** Window of the unknown-tenant limit, ms. */
const UNKNOWN_WINDOW_MS = 60_000;

/** Options: the resolver and the pool manager (built by the app factory), and the unknown-tenant limit per minute and address. */
export default fp<{ resolver: TenantResolver; connections: TenantConnections; unknownTenantRateLimit: number }>(
  async (app, opts) => {
    // Unknown names per client address in a fixed one-minute window (from its first one); the
    // 100,000 addresses seen last at most, so a flood from many addresses cannot grow it.
    const unknownByIp = new LRUCache<string, { n: number }>({ max: 100_000, ttl: UNKNOWN_WINDOW_MS, noUpdateTTL: true });
    /** Counts an unknown name of `ip`: the seconds to wait when past the limit, else undefined. */
    const countUnknown = (ip: string): number | undefined => {
      const seen = unknownByIp.get(ip);
      if (!seen) {
        unknownByIp.set(ip, { n: 1 });
        return undefined;
      }
      seen.n++;
      return seen.n > opts.unknownTenantRateLimit ? Math.max(1, Math.ceil(unknownByIp.getRemainingTTL(ip) / 1000)) : undefined;
    };

    app.decorate('tenantResolver', opts.resolver);
    app.decorate('tenantConnections', opts.connections);
    app.decorateRequest('tenant', undefined);
    app.decorateRequest('tenantDb', undefined);
    app.decorateRequest('releaseTenantDb', undefined);

    app.decorate('identifyTenant', async (request: FastifyRequest) => {
      const q = request.query as Record<string, string | string[] | undefined> | undefined;
      try {
        const slug = await opts.resolver.identify({ host: request.headers.host, header: request.headers['x-tenant'], query: q?.tenant });
        if (!slug) throw new NotFoundError('no tenant named: use the tenant subdomain, a custom domain, the X-Tenant header or ?tenant=', 'TENANT_REQUIRED');
        request.tenant = await opts.resolver.load(slug);
      } catch (err) {
        if (isConnectionError(err)) throw new UnavailableError('the catalog is not reachable right now', 'CATALOG_UNAVAILABLE', 2, undefined, err);
        if (err instanceof NotFoundError && err.code === 'TENANT_NOT_FOUND') {
          const retryAfterS = countUnknown(request.ip);
          if (retryAfterS !== undefined) {
            throw new TooManyRequestsError(
              `too many requests for unknown tenants from this address; retry in ${retryAfterS} s`,
              'TOO_MANY_UNKNOWN_TENANTS',
              retryAfterS,
            );
          }
        }
        throw err;
      }
      // Adds the tenant to this request's logger (cheaper than a child logger per request).
      (request.log as unknown as Logger).setBindings({ tenant: request.tenant.slug });
    });

    app.decorate('tenantKnex', async (request: FastifyRequest) => {
      if (request.tenantDb) return request.tenantDb;
      const lease = await opts.connections.acquire(request.tenant!);
      request.tenantDb = lease.knex;
      request.releaseTenantDb = lease.release;
      return lease.knex;
    });

    const release = async (request: FastifyRequest) => {
      request.releaseTenantDb?.();
      request.releaseTenantDb = undefined;
    };
    app.addHook('onResponse', release);
    app.addHook('onRequestAbort', release);
  },
  { name: 'silo-tenant' },
);
