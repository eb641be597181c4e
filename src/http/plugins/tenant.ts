/**
 * Tenant routing for `/api/v1`: identifies the tenant of each request (onRequest), and
 * borrows that tenant's Knex for the request's duration (`request.tenantDb`; each of its
 * queries and transactions borrows one connection of the tenant's own account from the
 * process-wide manager, see tenancy/connections.ts). The lease is released exactly once,
 * when both have happened: the raw response closed (answered, or the client hung up: every
 * way a socket ends emits `close`), and the request's processing ended (its handler
 * returned, or it was answered without reaching one). So a handler whose client hung up
 * runs to its end, its connection counted in the budget while its query runs. A request
 * whose client is gone before it got its lease gets none.
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
import type { Lease, TenantConnections } from '../../tenancy/connections.js';
import type { TenantResolver } from '../../tenancy/resolve.js';

declare module 'fastify' {
  interface FastifyInstance {
    tenantResolver: TenantResolver;
    tenantConnections: TenantConnections;
    /** onRequest hook: identifies and loads the tenant (404/403/503/400 otherwise). */
    identifyTenant(request: FastifyRequest): Promise<void>;
    /**
     * Borrows the tenant's Knex for this request (released once the response closed and the handler returned).
     * (Its queries fail with UnavailableError `POOL_EXHAUSTED` when no connection came free within `SILO_POOL_ACQUIRE_TIMEOUT_MS`.)
     * @throws UnavailableError `CLIENT_CLOSED` when the client hung up before
     */
    tenantKnex(request: FastifyRequest): Promise<Knex>;
  }
  interface FastifyRequest {
    tenant?: Tenant;
    tenantDb?: Knex;
    /** The request's hold on its tenant lease (set in onRequest). */
    tenantDbHold?: TenantDbHold;
  }
}

/** What decides when a request's tenant lease is released. */
interface TenantDbHold {
  lease?: Lease;
  acquiring?: Promise<Knex>;
  /** The raw response closed: answered, or the client hung up. */
  closed: boolean;
  /** Route handlers of this request running now (0 or 1). */
  running: number;
  /** The request's processing ended: its handler returned, or it was answered without reaching one. */
  settled: boolean;
}

/** Releases the lease once the response closed and the processing ended (the lease ignores later calls). */
function settle(hold: TenantDbHold): void {
  if (!hold.closed || !hold.settled || hold.running > 0 || !hold.lease) return;
  const lease = hold.lease;
  hold.lease = undefined;
  lease.release();
}

/** Why a request got no tenant lease: its client closed the connection (the answer reaches no one). */
const clientGone = () => new UnavailableError('the client closed the connection before the request got its tenant database', 'CLIENT_CLOSED', 1);

const isThenable = (x: unknown): x is PromiseLike<unknown> => typeof (x as PromiseLike<unknown> | null)?.then === 'function';

/** Window of the unknown-tenant limit, ms. */
const UNKNOWN_WINDOW_MS = 60_000;

/** Options: the resolver and the pool manager (built by the app factory), and the unknown-tenant limit per minute and address. */
export default fp<{ resolver: TenantResolver; connections: TenantConnections; unknownTenantRateLimit: number }>(
  (app, opts, done) => {
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
      const hold = request.tenantDbHold!;
      hold.acquiring ??= (async () => {
        // A request whose client is gone gets no lease (checked here: no AbortController and no error built per request).
        if (hold.closed) throw clientGone();
        const lease = await opts.connections.acquire(request.tenant!);
        hold.lease = lease;
        request.tenantDb = lease.knex;
        settle(hold);
        return lease.knex;
      })();
      return hold.acquiring;
    });

    app.decorateRequest('tenantDbHold', undefined);
    app.addHook('onRequest', (request, reply, done) => {
      const hold: TenantDbHold = { closed: false, running: 0, settled: false };
      request.tenantDbHold = hold;
      reply.raw.once('close', () => {
        hold.closed = true;
        settle(hold);
      });
      done();
    });
    // Answered without the handler running now (a hook or an error replied, or the handler already returned).
    app.addHook('onSend', (request, _reply, payload, done) => {
      const hold = request.tenantDbHold;
      if (hold && hold.running === 0) {
        hold.settled = true;
        settle(hold);
      }
      done(null, payload);
    });
    // Every route handler (of the routes registered after this plugin) marks its run; what it returns is passed on unchanged.
    app.addHook('onRoute', (route) => {
      const handler = route.handler;
      route.handler = function (this: typeof app, request, reply) {
        const hold = request.tenantDbHold;
        if (!hold) return handler.call(this, request, reply);
        const finish = () => {
          hold.running--;
          hold.settled = true;
          settle(hold);
        };
        hold.running++;
        let result: unknown;
        try {
          result = handler.call(this, request, reply);
        } catch (err) {
          finish();
          throw err;
        }
        if (isThenable(result)) result.then(finish, finish);
        else finish();
        return result;
      };
    });
    done();
  },
  { name: 'silo-tenant' },
);
