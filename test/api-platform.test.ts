/**
 * The platform API: sign-in, the tenant lifecycle (create, list, get, update, suspend,
 * resume, migrate, repair, delete) over real MariaDB databases, the operations journal,
 * and the split between operators (everything) and support staff (read only).
 */
import t from 'tap';
import { PASSWORD, login, makeTenant, platformLogin, setupApp } from './fixtures/app.js';
import { isProblem } from './fixtures/problem.js';
import { rootKnex } from './fixtures/env.js';

const { app, ctx } = await setupApp(t);
const operator = await platformLogin(app, ctx, 'operator');
const support = await platformLogin(app, ctx, 'support');

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';
const as = (token: string) => (method: Method, url: string, payload?: object) =>
  app.inject({ method, url: `/platform/v1${url}`, ...(payload ? { payload } : {}), headers: { authorization: `Bearer ${token}` } });
const op = as(operator);
const sup = as(support);
const tenantApi = (slug: string, method: Method, url: string, o: { payload?: object; token?: string } = {}) =>
  app.inject({
    method,
    url: `/api/v1${url}`,
    ...(o.payload ? { payload: o.payload } : {}),
    headers: { 'x-tenant': slug, ...(o.token ? { authorization: `Bearer ${o.token}` } : {}) },
  });
const tenantLogin = (slug: string, password: string, email = `admin@${slug}.test`) => tenantApi(slug, 'POST', '/auth/login', { payload: { email, password } });

/** Whether a database exists on the test server. */
async function databaseExists(name: string) {
  const k = rootKnex();
  try {
    return Boolean(await k('information_schema.SCHEMATA').where({ SCHEMA_NAME: name }).first());
  } finally {
    await k.destroy();
  }
}

const catalogCounts = async () => ({
  tenants: (await ctx.catalog.tenants.list()).length,
  operations: (await ctx.catalog.operations.list({ limit: 1000 })).length,
});

t.test('platform login gives a platform token; a wrong password or unknown email is 401 INVALID_CREDENTIALS', async (t) => {
  const ok = await app.inject({ method: 'POST', url: '/platform/v1/auth/login', payload: { email: 'OPERATOR@silo.test', password: PASSWORD } });
  t.equal(ok.statusCode, 200, ok.body);
  t.match(ok.json(), { tokenType: 'Bearer', expiresIn: 900, role: 'operator' });
  t.match(JSON.parse(Buffer.from(ok.json().accessToken.split('.')[1], 'base64url').toString()), {
    aud: 'platform',
    role: 'operator',
    email: 'operator@silo.test',
  });
  const wrong = await app.inject({ method: 'POST', url: '/platform/v1/auth/login', payload: { email: 'operator@silo.test', password: 'not the password' } });
  const unknown = await app.inject({ method: 'POST', url: '/platform/v1/auth/login', payload: { email: 'nobody@silo.test', password: PASSWORD } });
  isProblem(t, wrong, 401, 'INVALID_CREDENTIALS');
  isProblem(t, unknown, 401, 'INVALID_CREDENTIALS');
  t.equal(wrong.json().detail, unknown.json().detail, 'the same answer for both');
  isProblem(t, await app.inject({ method: 'POST', url: '/platform/v1/auth/login', payload: { email: 'operator@silo.test' } }), 400, 'VALIDATION_FAILED');
});

t.test('platform routes need a platform token: without one they are 401', async (t) => {
  for (const [method, url, payload] of [
    ['GET', '/tenants'],
    ['POST', '/tenants', { slug: 'no-token' }],
    ['GET', '/operations'],
    ['DELETE', '/tenants/whatever?confirm=whatever'],
  ] as Array<[Method, string, object?]>) {
    isProblem(t, await app.inject({ method, url: `/platform/v1${url}`, ...(payload ? { payload } : {}) }), 401, 'UNAUTHORIZED');
  }
  t.notOk(await ctx.catalog.tenants.findBySlug('no-token'));
});

t.test('an operator creates a tenant: 201, active, the generated admin password shown once and working', async (t) => {
  const res = await op('POST', '/tenants', { slug: 'plat-life', name: 'Life Cycle Ltd', adminEmail: 'admin@plat-life.test' });
  t.equal(res.statusCode, 201, res.body);
  const body = res.json();
  t.match(body, {
    tenant: { slug: 'plat-life', name: 'Life Cycle Ltd', plan: 'standard', status: 'active', adminEmail: 'admin@plat-life.test' },
    admin: { email: 'admin@plat-life.test', created: true },
  });
  t.type(body.operationId, 'number');
  t.type(body.admin.password, 'string');
  t.ok(body.admin.password.length >= 12, 'a strong generated password');
  t.ok(await databaseExists(body.tenant.databaseName), 'its database exists');

  const signIn = await tenantLogin('plat-life', body.admin.password);
  t.equal(signIn.statusCode, 200, 'the tenant admin signs in with it');

  const got = await op('GET', '/tenants/plat-life');
  t.equal(got.statusCode, 200);
  t.notOk(got.body.includes(body.admin.password), 'the password is never shown again');
  t.notOk(/password/i.test(got.body), 'no password field of any kind');
  t.match(got.json(), { slug: 'plat-life', status: 'active', domains: [] });

  const given = await op('POST', '/tenants', { slug: 'plat-given', adminEmail: 'admin@plat-given.test', adminPassword: PASSWORD });
  t.equal(given.statusCode, 201, given.body);
  t.notOk('password' in given.json().admin, 'a password chosen by the operator is not echoed');
  t.equal((await tenantLogin('plat-given', PASSWORD)).statusCode, 200);
});

t.test('operators list, filter and get tenants, and PATCH changes the name and plan', async (t) => {
  const list = await op('GET', '/tenants');
  t.equal(list.statusCode, 200);
  t.same(
    list
      .json()
      .data.map((x: { slug: string }) => x.slug)
      .sort(),
    ['plat-given', 'plat-life'],
  );
  t.equal((await op('GET', '/tenants?status=suspended')).json().data.length, 0);
  t.equal((await op('GET', '/tenants?status=active')).json().data.length, 2);
  isProblem(t, await op('GET', '/tenants?status=sleepy'), 400, 'VALIDATION_FAILED');
  isProblem(t, await op('GET', '/tenants/no-such-tenant'), 404, 'TENANT_NOT_FOUND');
  isProblem(t, await op('GET', '/tenants/Not_A_Slug'), 400, 'INVALID_SLUG');

  // Tenants are on catalog plans (catalog 0014): `pro` must exist first.
  await ctx.catalog.plans.insert({ name: 'pro' });
  const patched = await op('PATCH', '/tenants/plat-life', { name: '  Life Cycle Inc  ', plan: 'pro' });
  t.equal(patched.statusCode, 200, patched.body);
  t.match(patched.json(), { slug: 'plat-life', name: 'Life Cycle Inc', plan: 'pro', status: 'active' });
  t.match((await op('GET', '/tenants/plat-life')).json(), { name: 'Life Cycle Inc', plan: 'pro' });
  for (const payload of [{ name: '' }, { plan: 'Not A Plan' }, { slug: 'ok-slug', name: '' }, { status: 'deleted' }]) {
    isProblem(t, await op('PATCH', '/tenants/plat-life', payload), 400, 'VALIDATION_FAILED');
  }
  // A rename (`slug`) to a malformed slug or to the tenant's own is refused; the rename itself is test/tenant-rename.test.ts.
  isProblem(t, await op('PATCH', '/tenants/plat-life', { slug: 'Not_A_Slug' }), 400, 'INVALID_SLUG');
  isProblem(t, await op('PATCH', '/tenants/no-such-tenant', { name: 'X' }), 404, 'TENANT_NOT_FOUND');
  t.match((await op('GET', '/tenants/plat-life')).json(), { slug: 'plat-life', name: 'Life Cycle Inc', status: 'active' }, 'refused PATCHes changed nothing');
});

t.test('a suspended tenant answers 403 TENANT_SUSPENDED on its API until resumed', async (t) => {
  const before = await login(app, 'plat-given');
  const suspended = await op('POST', '/tenants/plat-given/suspend');
  t.equal(suspended.statusCode, 200, suspended.body);
  t.match(suspended.json(), { slug: 'plat-given', status: 'suspended' });
  t.type(suspended.json().suspendedAt, 'string');

  isProblem(t, await tenantLogin('plat-given', PASSWORD), 403, 'TENANT_SUSPENDED');
  isProblem(t, await tenantApi('plat-given', 'GET', '/auth/me', { token: before.accessToken }), 403, 'TENANT_SUSPENDED');
  isProblem(t, await tenantApi('plat-given', 'POST', '/auth/refresh', { payload: { refreshToken: before.refreshToken } }), 403, 'TENANT_SUSPENDED');
  t.equal((await tenantLogin('plat-life', PASSWORD)).statusCode, 401, 'another tenant is still served (only its credentials decide)');
  const opsBefore = (await ctx.catalog.operations.list({ limit: 1000 })).length;
  const again = await op('POST', '/tenants/plat-given/suspend');
  t.equal(again.statusCode, 200, 'suspending a suspended tenant is a no-op');
  t.equal(again.json().status, 'suspended');
  t.equal((await ctx.catalog.operations.list({ limit: 1000 })).length, opsBefore, 'and records no operation');

  const resumed = await op('POST', '/tenants/plat-given/resume');
  t.equal(resumed.statusCode, 200, resumed.body);
  t.match(resumed.json(), { status: 'active', suspendedAt: null });
  t.equal((await tenantApi('plat-given', 'GET', '/auth/me', { token: before.accessToken })).statusCode, 200, 'served again');
  t.equal((await tenantLogin('plat-given', PASSWORD)).statusCode, 200);
  t.match((await op('POST', '/tenants/plat-given/resume')).json(), { status: 'active' }, 'resuming an active tenant is a no-op');
});

t.test('migrate and repair of a healthy tenant report that nothing needed doing', async (t) => {
  const migrated = await op('POST', '/tenants/plat-life/migrate');
  t.equal(migrated.statusCode, 200, migrated.body);
  t.match(migrated.json(), { slug: 'plat-life', outcome: 'up-to-date', applied: [] });
  t.equal(migrated.json().schemaVersion, (await op('GET', '/tenants/plat-life')).json().schemaVersion);
  const repaired = await op('POST', '/tenants/plat-life/repair');
  t.equal(repaired.statusCode, 200, repaired.body);
  t.match(repaired.json(), { slug: 'plat-life', status: 'active', outcome: 'ok', actions: [] });
  for (const verb of ['migrate', 'repair', 'suspend', 'resume']) {
    isProblem(t, await op('POST', `/tenants/no-such-tenant/${verb}`), 404, 'TENANT_NOT_FOUND');
    isProblem(t, await op('POST', `/tenants/Bad_Slug/${verb}`), 400, 'INVALID_SLUG');
  }
});

t.test('repair rebuilds a lost tenant database and shows the new admin password once', async (t) => {
  const tenant = await makeTenant(ctx, 'plat-lost');
  const k = rootKnex();
  try {
    await k.raw('DROP DATABASE ??', [tenant.databaseName]);
  } finally {
    await k.destroy();
  }
  const res = await op('POST', '/tenants/plat-lost/repair');
  t.equal(res.statusCode, 200, res.body);
  const body = res.json();
  t.match(body, { slug: 'plat-lost', status: 'active', outcome: 'repaired', admin: { email: 'admin@plat-lost.test', created: true } });
  t.ok(
    body.actions.includes('create-database') && body.actions.includes('apply-migrations') && body.actions.includes('seed-admin'),
    JSON.stringify(body.actions),
  );
  t.type(body.operationId, 'number');
  t.ok(await databaseExists(tenant.databaseName));
  t.type(body.admin?.password, 'string', 'the regenerated admin password is returned');
  t.equal((await tenantLogin('plat-lost', body.admin?.password ?? '')).statusCode, 200, 'and the new admin signs in with it');
  t.match((await op('POST', '/tenants/plat-lost/repair')).json(), { outcome: 'ok', actions: [] }, 'a second repair has nothing to do');
  t.notOk('admin' in (await op('POST', '/tenants/plat-lost/repair')).json(), 'the password is not shown again');
});

t.test('support staff read tenants and operations but get 403 FORBIDDEN on every change', async (t) => {
  t.equal((await sup('GET', '/tenants')).statusCode, 200);
  t.equal((await sup('GET', '/tenants/plat-life')).statusCode, 200);
  const ops = await sup('GET', '/operations?tenant=plat-life');
  t.equal(ops.statusCode, 200);
  t.equal((await sup('GET', `/operations/${ops.json().data[0].id}`)).statusCode, 200);

  const before = { tenant: (await op('GET', '/tenants/plat-life')).json(), counts: await catalogCounts() };
  for (const [method, url, payload] of [
    ['POST', '/tenants', { slug: 'by-support', adminEmail: 'a@by-support.test' }],
    ['PATCH', '/tenants/plat-life', { name: 'Renamed by support' }],
    ['POST', '/tenants/plat-life/suspend'],
    ['POST', '/tenants/plat-life/resume'],
    ['POST', '/tenants/plat-life/migrate'],
    ['POST', '/tenants/plat-life/repair'],
    ['DELETE', '/tenants/plat-life?confirm=plat-life'],
  ] as Array<[Method, string, object?]>) {
    isProblem(t, await sup(method, url, payload), 403, 'FORBIDDEN');
  }
  t.same((await op('GET', '/tenants/plat-life')).json(), before.tenant, 'the tenant is unchanged');
  t.same(await catalogCounts(), before.counts, 'no tenant and no operation was created');
  t.notOk(await ctx.catalog.tenants.findBySlug('by-support'));
});

t.test("the operations journal lists a tenant's operations and shows each one; an unknown id is 404", async (t) => {
  const res = await op('GET', '/operations?tenant=plat-given');
  t.equal(res.statusCode, 200);
  const data = res.json().data as Array<{ id: number; kind: string; status: string; actor: string; tenantId: number }>;
  const plat = (await op('GET', '/tenants/plat-given')).json();
  t.ok(data.length >= 3);
  t.ok(
    data.every((o) => o.tenantId === plat.id),
    'only this tenant',
  );
  t.same([...new Set(data.map((o) => o.kind))].sort(), ['create', 'resume', 'suspend']);
  t.ok(data.every((o) => o.status === 'succeeded'));
  t.ok(
    data.every((o) => o.actor === 'platform:operator@silo.test'),
    'the acting operator is recorded',
  );
  t.ok(
    data.every((o, i) => i === 0 || data[i - 1]!.id > o.id),
    'newest first',
  );

  const one = await op('GET', `/operations/${data[0]!.id}`);
  t.equal(one.statusCode, 200);
  t.match(one.json(), { id: data[0]!.id, kind: data[0]!.kind, tenantId: plat.id, status: 'succeeded' });
  t.type(one.json().finishedAt, 'string');

  t.equal((await op('GET', '/operations?limit=1')).json().data.length, 1);
  t.ok((await op('GET', '/operations')).json().data.length > data.length, 'without a filter, every tenant');
  isProblem(t, await op('GET', '/operations/99999999'), 404, 'OPERATION_NOT_FOUND');
  isProblem(t, await op('GET', '/operations/abc'), 400, 'VALIDATION_FAILED');
  isProblem(t, await op('GET', '/operations?tenant=no-such-tenant'), 404, 'TENANT_NOT_FOUND');
  isProblem(t, await op('GET', '/operations?limit=0'), 400, 'VALIDATION_FAILED');
});

t.test('delete needs ?confirm=<slug>; afterwards the tenant API is 404 and its database is gone', async (t) => {
  const tenant = (await op('GET', '/tenants/plat-life')).json();
  isProblem(t, await op('DELETE', '/tenants/plat-life'), 400, 'CONFIRMATION_REQUIRED');
  isProblem(t, await op('DELETE', '/tenants/plat-life?confirm=plat-given'), 400, 'CONFIRMATION_REQUIRED');
  t.match((await op('GET', '/tenants/plat-life')).json(), { status: 'active' }, 'not deleted without confirmation');
  t.ok(await databaseExists(tenant.databaseName));
  t.equal((await tenantLogin('plat-life', PASSWORD)).statusCode, 401, 'still served');

  isProblem(t, await op('DELETE', '/tenants/plat-life?confirm=plat-life'), 503, 'STORAGE_NOT_CONFIGURED');
  t.ok(await databaseExists(tenant.databaseName), 'no backup possible: nothing dropped');
  const res = await op('DELETE', '/tenants/plat-life?confirm=plat-life&backup=false');
  t.equal(res.statusCode, 200, res.body);
  t.match(res.json(), { tenant: { slug: 'plat-life', status: 'deleted' } });
  t.type(res.json().operationId, 'number');
  isProblem(t, await tenantLogin('plat-life', PASSWORD), 404, 'TENANT_NOT_FOUND');
  t.notOk(await databaseExists(tenant.databaseName), 'its database is dropped');
  t.match((await op('GET', '/tenants/plat-life')).json(), { status: 'deleted' }, 'the record stays, marked deleted');
  t.equal((await tenantLogin('plat-given', PASSWORD)).statusCode, 200, 'other tenants are unaffected');
  isProblem(t, await op('DELETE', '/tenants/plat-life?confirm=plat-life&backup=false'), 404, 'TENANT_NOT_FOUND');
  isProblem(t, await op('POST', '/tenants', { slug: 'plat-life' }), 409, 'TENANT_EXISTS');
});

t.test('a bad slug or bad admin details are 400 and create nothing', async (t) => {
  const before = await catalogCounts();
  for (const slug of ['Bad_Slug', 'ab', '-abc', 'abc-', '9lives', 'a'.repeat(33), 'has space', "x'; drop database mysql; --", 'www', 'admin', '']) {
    isProblem(t, await op('POST', '/tenants', { slug }), 400, 'INVALID_SLUG');
  }
  isProblem(t, await op('POST', '/tenants', {}), 400, 'VALIDATION_FAILED');
  isProblem(t, await op('POST', '/tenants', { slug: 42 }), 400, 'VALIDATION_FAILED');
  isProblem(t, await op('POST', '/tenants', { slug: 'plat-bad', adminEmail: 'not-an-email' }), 400, 'VALIDATION_FAILED');
  isProblem(t, await op('POST', '/tenants', { slug: 'plat-bad', adminPassword: 'short' }), 400, 'WEAK_PASSWORD');
  isProblem(t, await op('POST', '/tenants', { slug: 'plat-bad', plan: 'Gold Plan' }), 400, 'VALIDATION_FAILED');
  isProblem(t, await op('POST', '/tenants', { slug: 'plat-bad', owner: 'me' }), 400, 'VALIDATION_FAILED');
  isProblem(t, await op('POST', '/tenants', { slug: 'plat-given' }), 409, 'TENANT_EXISTS');
  t.same(await catalogCounts(), before, 'no tenant and no operation was created');
  const k = rootKnex();
  try {
    const dbs: Array<{ SCHEMA_NAME: string }> = await k('information_schema.SCHEMATA')
      .where('SCHEMA_NAME', 'like', `${ctx.config.tenantDbPrefix}%`)
      .select('SCHEMA_NAME');
    t.same(
      dbs.map((d) => d.SCHEMA_NAME).sort(),
      (await ctx.catalog.tenants.list({ slugs: ['plat-given', 'plat-lost'] })).map((x) => x.databaseName).sort(),
      'no database was created',
    );
  } finally {
    await k.destroy();
  }
});
