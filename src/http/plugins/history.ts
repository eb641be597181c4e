/**
 * Records every `/api/v1` and `/platform/v1` request in the request history (after the
 * response is sent; the request never waits). Stored: time, request id, tenant, user and
 * kind, method, route pattern, path, query string with secret-looking parameters
 * redacted, status, duration (Fastify's own timing), response size, client IP (honouring
 * trustProxy only when configured), user agent, problem code. Never bodies, the
 * Authorization header, tokens or passwords.
 */
import type { FastifyReply, FastifyRequest, onResponseHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge } from 'prom-client';
import type { HistoryRecorder } from '../../history/recorder.js';
import { redactQuery } from '../../lib/logger.js';

export { redactQuery };

const RECORDED = /^\/(api|platform)\/v1(\/|$|\?)/;

/** Options: the recorder (undefined: recording off). */
export default fp<{ recorder: HistoryRecorder | undefined }>(
  (app, { recorder }, done) => {
    const r = recorder;
    new Gauge({
      name: 'silo_history_buffered',
      help: 'Request-history rows waiting to be written',
      registers: [app.metrics],
      collect() {
        this.set(r?.stats.buffered ?? 0);
      },
    });
    let seenDropped = 0;
    new Counter({
      name: 'silo_history_dropped_total',
      help: 'Request-history rows dropped because the buffer was full',
      registers: [app.metrics],
      collect() {
        const n = r?.stats.dropped ?? 0;
        this.inc(n - seenDropped);
        seenDropped = n;
      },
    });
    let seenWritten = 0;
    new Counter({
      name: 'silo_history_written_total',
      help: 'Request-history rows written',
      registers: [app.metrics],
      collect() {
        const n = r?.stats.written ?? 0;
        this.inc(n - seenWritten);
        seenWritten = n;
      },
    });
    let seenInserts = 0;
    new Counter({
      name: 'silo_history_inserts_total',
      help: 'Multi-row INSERTs that wrote request-history rows',
      registers: [app.metrics],
      collect() {
        const n = r?.stats.inserts ?? 0;
        this.inc(n - seenInserts);
        seenInserts = n;
      },
    });
    if (!r) {
      done();
      return;
    }

    /**
     * The row of one request, from fields at hand: the route pattern is the caller's
     * constant (no `request.routeOptions`, which builds an object per read), the path is a
     * slice up to the `?` and the query is parsed only when there is one.
     */
    const recordRow = (request: FastifyRequest, reply: FastifyReply, route: string | null): void => {
      const tu = request.tenantUser;
      const pu = request.platformUser;
      const duration = reply.elapsedTime;
      const url = request.url;
      const q = url.indexOf('?');
      const status = reply.statusCode;
      const lengthHeader = reply.getHeader('content-length');
      r.record({
        createdAt: new Date(Date.now() - duration),
        requestId: request.id,
        tenantId: request.tenant?.id ?? null,
        userId: tu ? Number(tu.sub) : pu ? Number(pu.sub) : null,
        userKind: tu ? 'tenant' : pu ? 'platform' : null,
        method: request.method,
        route,
        path: q < 0 ? url : url.slice(0, q),
        query: q < 0 ? null : redactQuery(url),
        status,
        durationMs: Math.round(duration * 1000) / 1000,
        // Fastify sets Content-Length for string and buffer payloads; streams have none.
        responseBytes: lengthHeader !== undefined ? Number(lengthHeader) : null,
        ip: request.ip ?? null,
        userAgent: request.headers['user-agent'] ?? null,
        errorCode: status >= 400 ? (reply.problemCode ?? null) : null,
      });
    };

    // Routes under /api/v1 and /platform/v1 (including the HEAD routes Fastify adds, which
    // pass here too) get their own onResponse hook holding their pattern: the URL test is
    // done once per route, not per request. Routes registered before this plugin are not seen.
    app.addHook('onRoute', (route) => {
      if (!RECORDED.test(route.url)) return;
      const pattern = route.url;
      const hook: onResponseHookHandler = (request, reply, next) => {
        recordRow(request, reply, pattern);
        next();
      };
      const existing = route.onResponse;
      route.onResponse = existing === undefined ? [hook] : Array.isArray(existing) ? [...(existing as onResponseHookHandler[]), hook] : [existing, hook];
    });
    // Requests that matched no route (the not-found handler): recorded when the URL is
    // under /api/v1 or /platform/v1, without a route pattern.
    app.addHook('onResponse', (request, reply, next) => {
      if (request.is404 && RECORDED.test(request.url)) recordRow(request, reply, null);
      next();
    });
    done();
  },
  { name: 'silo-history', dependencies: ['silo-metrics'] },
);
