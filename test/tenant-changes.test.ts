/**
 * Lifecycle changes made by another process (the CLI) reach the API within one poll
 * interval: a suspended tenant answers 403, a tenant in maintenance 503 with
 * Retry-After, and it serves again once active.
 */
import t from 'tap';
import { login, makeTenant, setupApp } from './fixtures/app.js';
import { runCli } from './fixtures/env.js';

const { app, ctx, env } = await setupApp(t, { SILO_TENANT_CHANGE_POLL_MS: '100', SILO_TENANT_CACHE_TTL_MS: '600000' });
const tenant = await makeTenant(ctx, 'watched');
const { accessToken } = await login(app, 'watched');
const me = () => app.inject({ url: '/api/v1/auth/me', headers: { 'x-tenant': 'watched', authorization: `Bearer ${accessToken}` } });

/** Polls `me()` until it answers `status` (at most `ms`); returns the last response. */
async function until(status: number, ms = 3000) {
  const end = Date.now() + ms;
  let res = await me();
  while (res.statusCode !== status && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    res = await me();
  }
  return res;
}

t.test('a suspend by the CLI is seen by the API within the poll interval', async (t) => {
  t.equal((await me()).statusCode, 200);
  const r = await runCli(['tenants', 'suspend', 'watched'], env);
  t.equal(r.code, 0, r.stderr);
  const res = await until(403);
  t.equal(res.statusCode, 403);
  t.equal(res.json().code, 'TENANT_SUSPENDED');
  await runCli(['tenants', 'resume', 'watched'], env);
  t.equal((await until(200)).statusCode, 200);
});

t.test('a tenant put in maintenance by another process answers 503 with Retry-After, then serves again', async (t) => {
  await ctx.catalog.knex('tenants').where({ id: tenant.id }).update({ status: 'maintenance' });
  const res = await until(503);
  t.equal(res.statusCode, 503);
  t.equal(res.json().code, 'TENANT_UNAVAILABLE');
  t.ok(Number(res.headers['retry-after']) > 0);
  await ctx.catalog.knex('tenants').where({ id: tenant.id }).update({ status: 'active' });
  t.equal((await until(200)).statusCode, 200);
});
