/**
 * Service endpoints, the generated OpenAPI document (validated with
 * @apidevtools/swagger-parser), and the server's start and graceful stop.
 */
import SwaggerParser from '@apidevtools/swagger-parser';
import t from 'tap';
import { loadConfig } from '../src/config.js';
import { startServer } from '../src/http/server.js';
import { makeTenant, setupApp, TEST_JWT_SECRET } from './fixtures/app.js';

const { app, ctx, env } = await setupApp(t);

t.test('health, ready and metrics answer', async (t) => {
  t.same((await app.inject('/health')).json(), { status: 'ok' });
  t.same((await app.inject('/ready')).json(), { status: 'ready' });
  const metrics = await app.inject('/metrics');
  t.equal(metrics.statusCode, 200);
  t.match(metrics.headers['content-type'], /text\/plain/);
  for (const name of [
    'silo_tenant_pools_open',
    'silo_tenant_connections_open',
    'silo_tenant_connections_idle',
    'silo_tenant_pool_evictions_total',
    'silo_tenant_pool_waits_total',
    'silo_http_request_duration_seconds',
  ]) {
    t.match(metrics.body, new RegExp(`^# TYPE ${name} `, 'm'), name);
  }
});

t.test('the OpenAPI document is valid and covers both APIs with both bearer schemes', async (t) => {
  const res = await app.inject('/docs/json');
  t.equal(res.statusCode, 200);
  const doc = res.json();
  await t.resolves(SwaggerParser.validate(structuredClone(doc)), 'swagger-parser validates it');
  t.ok(doc.components.securitySchemes.tenantBearer);
  t.ok(doc.components.securitySchemes.platformBearer);
  for (const path of [
    '/api/v1/auth/login',
    '/api/v1/users/{id}',
    '/platform/v1/tenants',
    '/platform/v1/tenants/{slug}/migrate',
    '/platform/v1/operations/{id}',
  ]) {
    t.ok(doc.paths[path], path);
  }
  t.ok(doc.paths['/api/v1/auth/login'].post.requestBody, 'request bodies come from zod');
  t.ok(doc.paths['/api/v1/users'].get.responses['200'], 'responses too');
  const ui = await app.inject('/docs');
  t.ok([200, 302].includes(ui.statusCode), 'Swagger UI is served');
});

t.test('unknown routes get problem+json', async (t) => {
  const res = await app.inject('/nope');
  t.equal(res.statusCode, 404);
  t.match(res.headers['content-type'], /application\/problem\+json/);
  t.equal(res.json().code, 'ROUTE_NOT_FOUND');
  t.ok(res.json().requestId);
});

t.test('the server refuses to start without SILO_JWT_SECRET, naming it', async (t) => {
  const { SILO_JWT_SECRET: _, ...rest } = env;
  void _;
  await t.rejects(startServer(loadConfig({ ...rest, PORT: '0' }), { handleSignals: false }), /SILO_JWT_SECRET/);
});

t.test('the server listens, answers, and closes its pools on stop', async (t) => {
  await makeTenant(ctx, 'srv');
  const server = await startServer(loadConfig({ ...env, SILO_JWT_SECRET: TEST_JWT_SECRET, PORT: '0', LOG_LEVEL: 'silent' }), { handleSignals: false });
  const login = await fetch(`${server.url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-tenant': 'srv' },
    body: JSON.stringify({ email: 'admin@srv.test', password: 'correct horse battery staple' }),
  });
  t.equal(login.status, 200);
  t.ok(login.headers.get('x-request-id'));
  t.equal(server.app.tenantConnections.stats().openPools, 1);
  await server.close();
  t.equal(server.app.tenantConnections.stats().openPools, 0, 'pools destroyed');
});
