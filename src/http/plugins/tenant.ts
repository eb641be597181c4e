/**
 * Tenant routing for `/api/v1`: identifies the tenant of each request (onRequest), and
 * borrows a connection pool of that tenant's database for the request's duration
 * (`request.tenantDb`, released when the response is sent or the request aborted).
 */
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Tenant } from '../../catalog/index.js';
import { NotFoundError, UnavailableError } from '../../lib/errors.js';
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

/** Options: the resolver and the pool manager (built by the app factory). */
export default fp<{ resolver: TenantResolver; connections: TenantConnections }>(
  async (app, opts) => {
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
