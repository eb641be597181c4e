/**
 * Prometheus metrics (`prom-client`, one registry per app): HTTP requests and their
 * durations, per-tenant pool figures, and process defaults. Served on `GET /metrics`.
 */
import fp from 'fastify-plugin';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { TenantConnections } from '../../tenancy/connections.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The app's Prometheus registry (other plugins add their metrics to it). */
    metrics: Registry;
  }
}

export default fp<{ connections: TenantConnections }>(
  (app, { connections }, done) => {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: 'silo_' });
    app.decorate('metrics', registry);

    const duration = new Histogram({
      name: 'silo_http_request_duration_seconds',
      help: 'HTTP request duration in seconds, by method, route pattern and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
    app.addHook('onResponse', async (request, reply) => {
      duration.observe({ method: request.method, route: request.routeOptions.url ?? 'unknown', status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    });

    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          this.set(read());
        },
      });
    gauge('silo_tenant_pools_open', 'Tenant accounts with at least one open connection', () => connections.stats().openPools);
    gauge('silo_tenant_connections_open', 'Tenant database connections open (in use + idle)', () => connections.stats().openConnections);
    gauge('silo_tenant_connections_idle', 'Tenant database connections idle', () => connections.stats().idleConnections);
    gauge('silo_tenant_connection_acquires_pending', 'Requests waiting for a tenant connection', () => connections.stats().pendingAcquires);
    gauge('silo_tenant_connections_peak', 'Most tenant database connections open at once since start', () => connections.stats().peakConnections);
    const seenExhausted = { pool: 0, connection: 0 };
    new Counter({
      name: 'silo_tenant_pool_exhausted_total',
      help: 'Requests answered 503 POOL_EXHAUSTED: no pool slot (wait="pool") or no connection (wait="connection") within SILO_POOL_ACQUIRE_TIMEOUT_MS',
      labelNames: ['wait'],
      registers: [registry],
      collect() {
        const now = connections.stats().exhausted;
        for (const wait of ['pool', 'connection'] as const) {
          this.inc({ wait }, now[wait] - seenExhausted[wait]);
          seenExhausted[wait] = now[wait];
        }
      },
    });
    let seenEvictions = 0;
    let seenWaits = 0;
    new Counter({
      name: 'silo_tenant_pool_evictions_total',
      help: 'Idle tenant connections re-authenticated (COM_CHANGE_USER) for another tenant to stay within SILO_POOL_MAX_CONNECTIONS',
      registers: [registry],
      collect() {
        const n = connections.stats().evictions;
        this.inc(n - seenEvictions);
        seenEvictions = n;
      },
    });
    new Counter({
      name: 'silo_tenant_pool_waits_total',
      help: 'Tenant queries that waited for a connection (SILO_POOL_MAX_CONNECTIONS or SILO_POOL_MAX_PER_TENANT in use)',
      registers: [registry],
      collect() {
        const n = connections.stats().waitsForPool;
        this.inc(n - seenWaits);
        seenWaits = n;
      },
    });

    app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));
    done();
  },
  { name: 'silo-metrics' },
);
