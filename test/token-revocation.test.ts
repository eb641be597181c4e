/**
 * Tokens never outlive what they were issued for: a tenant's `generation` (bumped by
 * recreate, restore, delete and `revoke-tokens`) refuses every access and refresh token of
 * an earlier one, even when a user with the same id exists again; a user's
 * `token_version` (bumped by deactivation, role change and password reset) refuses that
 * user's earlier access tokens within one change-poll interval in every API process; and
 * the steady state costs no query for any of it.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { pino } from 'pino';
import t from 'tap';
import { parseMysqlUrl } from '../src/config.js';
import { createContext } from '../src/context.js';
import { createMysqlKnex } from '../src/lib/knex.js';
import * as catalogMigration from '../migrations/main/0008-add-tenants-generation.js';
import * as tenantMigration from '../migrations/tenant/0010-add-users-token-version.js';
import { buildApp } from '../src/http/app.js';
import { backupTenant } from '../src/provisioning/backup-service.js';
import { restoreTenant } from '../src/provisioning/restore-service.js';
import { recreateTenant } from '../src/provisioning/tenants-service.js';
import { PASSWORD, login, makeTenant, platformLogin, setupApp } from './fixtures/app.js';
import { MYSQL_URL, runCliJson } from './fixtures/env.js';
import { isProblem } from './fixtures/problem.js';
import { setupS3 } from './fixtures/s3.js';

const POLL_MS = 100;
const s3 = await setupS3(t);
const { app, ctx, config, env, names } = await setupApp(t, { ...s3.env, SILO_TENANT_CHANGE_POLL_MS: String(POLL_MS) });

/** A second API process over the same catalog: it learns of changes only through its change watcher. */
const ctx2 = createContext(config, pino({ level: 'silent' }));
const app2 = await buildApp({ ctx: ctx2 });
await app2.ready();
t.teardown(async () => {
  await app2.close();
  await ctx2.close();
});

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';
/** Calls a tenant route of `on` as the holder of `token`. */
const call = (on: FastifyInstance, slug: string, token: string, method: Method, url: string, payload?: object) =>
  on.inject({ method, url, headers: { 'x-tenant': slug, authorization: `Bearer ${token}` }, ...(payload ? { payload } : {}) });
const me = (slug: string, token: string, on = app) => call(on, slug, token, 'GET', '/api/v1/auth/me');
const refresh = (slug: string, refreshToken: string, on = app) =>
  on.inject({ method: 'POST', url: '/api/v1/auth/refresh', headers: { 'x-tenant': slug }, payload: { refreshToken } });

/** Polls `probe` until `done` holds or `withinMs` passes; returns the last answer and the time it took. */
async function eventually(probe: () => Promise<LightMyRequestResponse>, done: (r: LightMyRequestResponse) => boolean, withinMs: number) {
  const start = Date.now();
  let res = await probe();
  while (!done(res) && Date.now() - start < withinMs) {
    await delay(20);
    res = await probe();
  }
  return { res, ms: Date.now() - start };
}

/**
 * Creates a tenant (through `ctx`, as the CLI would) and waits until the second process,
 * which learns of new tenants only at its next poll of tenant changes, serves it: before
 * that poll it answers 404, a documented race of one poll interval.
 */
async function makeSharedTenant(slug: string) {
  const tenant = await makeTenant(ctx, slug);
  const { res } = await eventually(
    () => app2.inject({ method: 'GET', url: '/api/v1/auth/me', headers: { 'x-tenant': slug } }),
    (r) => r.statusCode !== 404,
    20 * POLL_MS,
  );
  if (res.statusCode !== 401) throw new Error(`the second process does not serve ${slug}: ${res.statusCode} ${res.body}`);
  return tenant;
}

/** Creates a user through the API as the tenant admin; returns its id. */
async function addUser(slug: string, adminToken: string, role: 'admin' | 'manager' | 'staff', email: string): Promise<number> {
  const res = await call(app, slug, adminToken, 'POST', '/api/v1/users', { email, role, password: PASSWORD });
  if (res.statusCode !== 201) throw new Error(`create ${email}: ${res.statusCode} ${res.body}`);
  return res.json<{ id: number }>().id;
}

t.test('an access token from before a recreate is refused after it, though a user with its id exists again', async (t) => {
  await makeSharedTenant('tr-recreate');
  const before = await login(app, 'tr-recreate');
  t.equal((await me('tr-recreate', before.accessToken)).statusCode, 200);
  await recreateTenant(ctx, 'tr-recreate', 'test', { backup: false, adminEmail: 'other@tr-recreate.test', adminPassword: PASSWORD });

  const fresh = await login(app, 'tr-recreate', 'other@tr-recreate.test');
  const freshMe = await me('tr-recreate', fresh.accessToken);
  t.equal(freshMe.statusCode, 200);
  t.equal(freshMe.json().id, 1, 'the new database starts its user ids again: the old token names an existing user');
  isProblem(t, await me('tr-recreate', before.accessToken), 401, 'TOKEN_REVOKED');
  isProblem(t, await refresh('tr-recreate', before.refreshToken), 401, 'TOKEN_REVOKED');
  isProblem(t, await me('tr-recreate', before.accessToken, app2), 401, 'TOKEN_REVOKED');
});

t.test('access and refresh tokens from before a restore are refused after it', async (t) => {
  await makeTenant(ctx, 'tr-restore');
  const before = await login(app, 'tr-restore');
  await backupTenant(ctx, 'tr-restore', 'test');
  await restoreTenant(ctx, 'tr-restore', 'test', { latest: true });

  isProblem(t, await me('tr-restore', before.accessToken), 401, 'TOKEN_REVOKED');
  // The restored database holds this token's refresh_tokens row again: the generation refuses it.
  isProblem(t, await refresh('tr-restore', before.refreshToken), 401, 'TOKEN_REVOKED');
  const after = await login(app, 'tr-restore');
  t.equal((await me('tr-restore', after.accessToken)).statusCode, 200, 'a new sign-in works');
  t.equal((await refresh('tr-restore', after.refreshToken)).statusCode, 200, 'and its refresh token too');
});

t.test('silo tenants revoke-tokens refuses every earlier token in every API process; new sign-ins work', async (t) => {
  await makeSharedTenant('tr-revoke-cli');
  const before = await login(app, 'tr-revoke-cli');
  t.equal((await me('tr-revoke-cli', before.accessToken, app2)).statusCode, 200);
  const { result, json } = await runCliJson<{ slug: string; generation: number; operationId: number }>(['tenants', 'revoke-tokens', 'tr-revoke-cli'], env);
  t.equal(result.code, 0, result.stderr);
  t.match(json, { slug: 'tr-revoke-cli', generation: 2 });

  // The CLI is another process: both apps learn of it through their change watchers.
  for (const on of [app, app2]) {
    const { res, ms } = await eventually(
      () => me('tr-revoke-cli', before.accessToken, on),
      (r) => r.statusCode === 401,
      10 * POLL_MS + 2000,
    );
    isProblem(t, res, 401, 'TOKEN_REVOKED');
    t.ok(ms < 10 * POLL_MS + 2000, `refused after ${ms} ms`);
  }
  isProblem(t, await refresh('tr-revoke-cli', before.refreshToken), 401, 'TOKEN_REVOKED');
  const after = await login(app, 'tr-revoke-cli');
  t.equal((await me('tr-revoke-cli', after.accessToken)).statusCode, 200, 'a new sign-in works');
  t.equal((await me('tr-revoke-cli', after.accessToken, app2)).statusCode, 200, 'in the other process too');
  t.equal((await refresh('tr-revoke-cli', after.refreshToken)).statusCode, 200);
});

t.test('POST /platform/v1/tenants/{slug}/revoke-tokens (operators only) refuses every earlier token', async (t) => {
  await makeSharedTenant('tr-revoke-api');
  const before = await login(app, 'tr-revoke-api');
  const url = '/platform/v1/tenants/tr-revoke-api/revoke-tokens';
  const support = await platformLogin(app, ctx, 'support');
  isProblem(t, await app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${support}` } }), 403, 'FORBIDDEN');
  t.equal((await me('tr-revoke-api', before.accessToken)).statusCode, 200, 'support staff changed nothing');

  const operator = await platformLogin(app, ctx, 'operator');
  const res = await app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${operator}` } });
  t.equal(res.statusCode, 200, res.body);
  t.match(res.json(), { tenant: { slug: 'tr-revoke-api' }, generation: 2, operationId: Number });
  isProblem(t, await me('tr-revoke-api', before.accessToken), 401, 'TOKEN_REVOKED');
  isProblem(t, await refresh('tr-revoke-api', before.refreshToken), 401, 'TOKEN_REVOKED');
  const after = await login(app, 'tr-revoke-api');
  t.equal((await me('tr-revoke-api', after.accessToken)).statusCode, 200, 'a new sign-in works');
  isProblem(
    t,
    await app.inject({ method: 'POST', url: '/platform/v1/tenants/tr-nobody/revoke-tokens', headers: { authorization: `Bearer ${operator}` } }),
    404,
    'TENANT_NOT_FOUND',
  );
});

t.test("a deactivated user's access token is refused within one poll interval by another API process", async (t) => {
  await makeSharedTenant('tr-deact');
  const admin = (await login(app, 'tr-deact')).accessToken;
  const id = await addUser('tr-deact', admin, 'staff', 'sam@tr-deact.test');
  const sam = await login(app2, 'tr-deact', 'sam@tr-deact.test');
  t.equal((await call(app2, 'tr-deact', sam.accessToken, 'GET', '/api/v1/companies')).statusCode, 200, 'the other process has the tenant cached');

  t.equal((await call(app, 'tr-deact', admin, 'DELETE', `/api/v1/users/${id}`)).statusCode, 200);
  isProblem(t, await call(app, 'tr-deact', sam.accessToken, 'GET', '/api/v1/companies'), 401, 'TOKEN_REVOKED');
  const { res, ms } = await eventually(
    () => call(app2, 'tr-deact', sam.accessToken, 'GET', '/api/v1/companies'),
    (r) => r.statusCode === 401,
    5000,
  );
  isProblem(t, res, 401, 'TOKEN_REVOKED');
  t.ok(ms <= 3 * POLL_MS + 500, `refused by the other process after ${ms} ms (poll interval ${POLL_MS} ms)`);
  t.equal((await call(app2, 'tr-deact', admin, 'GET', '/api/v1/companies')).statusCode, 200, "other users' tokens still work");
  // Deactivation revokes the refresh tokens too (a revoked token is answered as reused).
  isProblem(t, await refresh('tr-deact', sam.refreshToken, app2), 401, 'REFRESH_TOKEN_REUSED');
});

t.test('a lowered role applies at once: a manager-only route is refused to the old token, and the refreshed token has the new role', async (t) => {
  await makeSharedTenant('tr-role');
  const admin = (await login(app, 'tr-role')).accessToken;
  const id = await addUser('tr-role', admin, 'manager', 'mia@tr-role.test');
  const mia = await login(app, 'tr-role', 'mia@tr-role.test');
  const company = (await call(app, 'tr-role', admin, 'POST', '/api/v1/companies', { name: 'Acme' })).json<{ id: number }>();
  const rename = async (token: string, name: string, on = app) => {
    const { version } = (await call(on, 'tr-role', admin, 'GET', `/api/v1/companies/${company.id}`)).json<{ version: number }>();
    return call(on, 'tr-role', token, 'PATCH', `/api/v1/companies/${company.id}`, { name, version });
  };
  t.equal((await rename(mia.accessToken, 'Acme 1')).statusCode, 200, 'a manager may update');
  t.equal((await rename(mia.accessToken, 'Acme 2', app2)).statusCode, 200, 'in the other process too');

  t.equal((await call(app, 'tr-role', admin, 'PATCH', `/api/v1/users/${id}`, { role: 'staff' })).statusCode, 200);
  isProblem(t, await rename(mia.accessToken, 'Acme 3'), 401, 'TOKEN_REVOKED');
  const { res } = await eventually(
    () => rename(mia.accessToken, 'Acme 4', app2),
    (r) => r.statusCode === 401,
    5000,
  );
  isProblem(t, res, 401, 'TOKEN_REVOKED');
  const refreshed = await refresh('tr-role', mia.refreshToken);
  t.equal(refreshed.statusCode, 200, 'a role change keeps the sessions: refresh gives a token with the new role');
  const staffToken = refreshed.json<{ accessToken: string }>().accessToken;
  isProblem(t, await rename(staffToken, 'Acme 5'), 403, 'FORBIDDEN');
  t.equal((await call(app, 'tr-role', staffToken, 'GET', '/api/v1/companies')).statusCode, 200, 'staff may still read');
});

t.test('a password reset refuses the old access token', async (t) => {
  await makeSharedTenant('tr-reset');
  const admin = (await login(app, 'tr-reset')).accessToken;
  const id = await addUser('tr-reset', admin, 'staff', 'pat@tr-reset.test');
  const pat = await login(app, 'tr-reset', 'pat@tr-reset.test');
  const newPassword = 'another long passphrase 42';
  t.equal((await call(app, 'tr-reset', admin, 'PATCH', `/api/v1/users/${id}`, { password: newPassword })).statusCode, 200);
  isProblem(t, await me('tr-reset', pat.accessToken), 401, 'TOKEN_REVOKED');
  const { res } = await eventually(
    () => me('tr-reset', pat.accessToken, app2),
    (r) => r.statusCode === 401,
    5000,
  );
  isProblem(t, res, 401, 'TOKEN_REVOKED');
  isProblem(t, await refresh('tr-reset', pat.refreshToken), 401, 'REFRESH_TOKEN_REUSED');
  const again = await login(app, 'tr-reset', 'pat@tr-reset.test', newPassword);
  t.equal((await me('tr-reset', again.accessToken)).statusCode, 200, 'the new password signs in');
});

t.test('the steady state costs no query: 50 requests, no lookup of the user; after a change, one lookup per user', async (t) => {
  const tenant = await makeTenant(ctx, 'tr-steady');
  const admin = (await login(app, 'tr-steady')).accessToken;
  const id = await addUser('tr-steady', admin, 'staff', 'sid@tr-steady.test');
  const sid = (await login(app, 'tr-steady', 'sid@tr-steady.test')).accessToken;
  const adminAgain = (await login(app, 'tr-steady')).accessToken;
  // The setup's own changes (users added) reach this process's watcher within a poll or two;
  // once they have, the tenant row is read again once: count only after that.
  await new Promise((r) => setTimeout(r, 3 * POLL_MS));
  t.equal((await call(app, 'tr-steady', sid, 'GET', '/api/v1/companies')).statusCode, 200, 'tenant cached, pool open');

  const lease = await app.tenantConnections.acquire(tenant);
  const tenantQueries: string[] = [];
  const catalogQueries: string[] = [];
  const onTenant = (q: { sql: string }) => tenantQueries.push(q.sql);
  const onCatalog = (q: { sql: string }) => catalogQueries.push(q.sql);
  lease.knex.on('query', onTenant);
  ctx.catalog.knex.on('query', onCatalog);
  t.teardown(() => {
    lease.knex.off('query', onTenant);
    ctx.catalog.knex.off('query', onCatalog);
    lease.release();
  });
  const userLookups = () => tenantQueries.filter((s) => /`users`/.test(s)).length;
  const tenantLookups = () => catalogQueries.filter((s) => /`tenants`/.test(s) && !/updated_at/.test(s)).length;

  for (let i = 0; i < 50; i++) t.equal((await call(app, 'tr-steady', sid, 'GET', '/api/v1/companies')).statusCode, 200);
  t.equal(userLookups(), 0, 'no query of users for 50 authenticated requests');
  t.equal(tenantLookups(), 0, 'no query of the catalog tenant row either');

  // Another user's role changes: the tenant's auth version moves, so each user's older
  // token is checked once against the database, then never again.
  t.equal((await call(app, 'tr-steady', admin, 'PATCH', `/api/v1/users/${id}`, { fullName: 'Sid' })).statusCode, 200, 'a change that touches no token');
  tenantQueries.length = 0;
  for (let i = 0; i < 10; i++) t.equal((await call(app, 'tr-steady', adminAgain, 'GET', '/api/v1/companies')).statusCode, 200);
  t.equal(userLookups(), 0, 'a name change moves nothing');

  t.equal((await call(app, 'tr-steady', admin, 'PATCH', `/api/v1/users/${id}`, { role: 'manager' })).statusCode, 200);
  tenantQueries.length = 0;
  for (let i = 0; i < 50; i++) t.equal((await call(app, 'tr-steady', adminAgain, 'GET', '/api/v1/companies')).statusCode, 200);
  t.equal(userLookups(), 1, "one lookup of the admin's state for 50 requests of its older token");
  const fresh = (await login(app, 'tr-steady')).accessToken;
  tenantQueries.length = 0;
  for (let i = 0; i < 50; i++) t.equal((await call(app, 'tr-steady', fresh, 'GET', '/api/v1/companies')).statusCode, 200);
  t.equal(userLookups(), 0, 'a token issued after the change needs none');
});

t.test("the two migrations' down undoes any prefix of their up (one column per statement)", async (t) => {
  const db = `${names.prefix}migrations`;
  const k = createMysqlKnex(parseMysqlUrl(MYSQL_URL), { min: 0, max: 1 });
  t.teardown(() => k.destroy());
  await k.raw('CREATE DATABASE ??', [db]);
  await k.raw('CREATE TABLE ??.tenants (id INT PRIMARY KEY)', [db]);
  await k.raw('CREATE TABLE ??.users (id BIGINT PRIMARY KEY)', [db]);
  const kdb = createMysqlKnex(parseMysqlUrl(`${MYSQL_URL}/${db}`), { min: 0, max: 1 });
  t.teardown(() => kdb.destroy());
  const columns = async (table: string) =>
    (await k('information_schema.COLUMNS').where({ TABLE_SCHEMA: db, TABLE_NAME: table }).orderBy('ORDINAL_POSITION').pluck('COLUMN_NAME')) as string[];
  const params = { name: 'test', context: kdb };
  const cases = [
    { m: catalogMigration, table: 'tenants', steps: ['generation INT UNSIGNED NOT NULL DEFAULT 1', 'auth_version INT UNSIGNED NOT NULL DEFAULT 0'] },
    { m: tenantMigration, table: 'users', steps: ['token_version INT UNSIGNED NOT NULL DEFAULT 0'] },
  ];
  for (const { m, table, steps } of cases) {
    for (let n = 0; n <= steps.length; n++) {
      for (const step of steps.slice(0, n)) await kdb.raw(`ALTER TABLE ?? ADD COLUMN ${step}`, [table]);
      await m.down(params);
      t.same(await columns(table), ['id'], `${table}: down after ${n} of ${steps.length} statements of up`);
    }
    await m.up(params);
    t.equal((await columns(table)).length, 1 + steps.length, `${table}: up adds its columns`);
    await m.down(params);
    t.same(await columns(table), ['id'], `${table}: down after all of up`);
  }
});
