/**
 * Companies through the API: CRUD, roles, pagination bounds, search/filter/sort,
 * optimistic locking, idempotent creates, cascade soft delete, activity rows, CSV.
 */
import t from 'tap';
import { addTenantUser } from '../src/provisioning/users-service.js';
import { login, makeTenant, PASSWORD, setupApp } from './fixtures/app.js';

const { app, ctx } = await setupApp(t);
const tenant = await makeTenant(ctx, 'crmco');
await addTenantUser(ctx, 'crmco', { email: 'm@crmco.test', role: 'manager', password: PASSWORD });
await addTenantUser(ctx, 'crmco', { email: 's@crmco.test', role: 'staff', password: PASSWORD });
const admin = (await login(app, 'crmco')).accessToken;
const manager = (await login(app, 'crmco', 'm@crmco.test')).accessToken;
const staff = (await login(app, 'crmco', 's@crmco.test')).accessToken;

type Opts = { token?: string; payload?: unknown; headers?: Record<string, string> };
const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, o: Opts = {}) =>
  app.inject({ method, url, payload: o.payload as object, headers: { 'x-tenant': 'crmco', authorization: `Bearer ${o.token ?? admin}`, ...o.headers } });

t.test('create answers 201 with the resource; name unique among live companies', async (t) => {
  const res = await call('POST', '/api/v1/companies', {
    token: staff,
    payload: { name: 'Acme', industry: 'Tools', country: 'de', website: 'https://acme.test', phone: '+49 (30) 1234-5678' },
  });
  t.equal(res.statusCode, 201, res.body);
  const c = res.json();
  t.match(c, { name: 'Acme', industry: 'Tools', country: 'DE', website: 'https://acme.test', phone: '493012345678', version: 1, deletedAt: null });
  t.ok(c.createdAt && c.updatedAt);
  const dup = await call('POST', '/api/v1/companies', { payload: { name: 'ACME' } });
  t.equal(dup.statusCode, 409);
  t.equal(dup.json().code, 'COMPANY_NAME_TAKEN');
});

t.test('authentication comes before validation: no token and a bad body is 401', async (t) => {
  const res = await app.inject({ method: 'POST', url: '/api/v1/companies', payload: { nope: 1 }, headers: { 'x-tenant': 'crmco' } });
  t.equal(res.statusCode, 401);
  t.equal(res.json().code, 'UNAUTHORIZED');
  const staffDelete = await call('DELETE', '/api/v1/companies/abc', { token: staff });
  t.equal(staffDelete.statusCode, 403, 'roles are checked before the params');
});

t.test('bad input gets 400 problem+json and creates nothing', async (t) => {
  const before = await call('GET', '/api/v1/companies');
  for (const payload of [
    {},
    { name: '' },
    { name: 'x'.repeat(201) },
    { name: 'B', website: 'javascript:alert(1)' },
    { name: 'B', phone: '12' },
    { name: 'B', country: 'Germany' },
    { name: 'B', extra: 1 },
    { name: 42 },
  ]) {
    const res = await call('POST', '/api/v1/companies', { payload });
    t.equal(res.statusCode, 400, JSON.stringify(payload));
    t.equal(res.json().code, 'VALIDATION_FAILED');
    t.ok(res.json().errors.length);
  }
  t.equal((await call('GET', '/api/v1/companies')).json().total, before.json().total);
});

t.test('list: pagination bounds, search, filters, sort allow-list', async (t) => {
  for (const [name, industry, country] of [
    ['Globex', 'Energy', 'US'],
    ['Initech', 'Software', 'US'],
    ['Umbrella', 'Pharma', 'GB'],
    ['Hooli', 'Software', 'US'],
  ]) {
    t.equal((await call('POST', '/api/v1/companies', { payload: { name, industry, country } })).statusCode, 201);
  }
  const p1 = (await call('GET', '/api/v1/companies?pageSize=2&sort=name')).json();
  t.same(
    p1.data.map((c: any) => c.name),
    ['Acme', 'Globex'],
  );
  t.equal(p1.total, 5);
  t.equal(p1.pageSize, 2);
  const p3 = (await call('GET', '/api/v1/companies?pageSize=2&page=3&sort=name')).json();
  t.same(
    p3.data.map((c: any) => c.name),
    ['Umbrella'],
  );
  t.equal((await call('GET', '/api/v1/companies?pageSize=101')).statusCode, 400);
  t.equal((await call('GET', '/api/v1/companies?page=0')).statusCode, 400);
  t.same(
    (await call('GET', '/api/v1/companies?industry=Software&sort=-name')).json().data.map((c: any) => c.name),
    ['Initech', 'Hooli'],
  );
  t.same(
    (await call('GET', '/api/v1/companies?country=gb')).json().data.map((c: any) => c.name),
    ['Umbrella'],
  );
  t.same(
    (await call('GET', '/api/v1/companies?q=glob')).json().data.map((c: any) => c.name),
    ['Globex'],
  );
  t.same((await call('GET', `/api/v1/companies?q=${encodeURIComponent("%' OR 1=1 --")}`)).json().data, [], 'SQL-looking search finds nothing');
  const badSort = await call('GET', '/api/v1/companies?sort=password');
  t.equal(badSort.statusCode, 400);
  t.equal(badSort.json().code, 'INVALID_SORT');
});

t.test('PATCH needs the current version (body or If-Match); stale gets 409; roles apply', async (t) => {
  const acme = (await call('GET', '/api/v1/companies?q=Acme')).json().data[0];
  const none = await call('PATCH', `/api/v1/companies/${acme.id}`, { payload: { industry: 'Hardware' } });
  t.equal(none.statusCode, 428);
  t.equal(none.json().code, 'VERSION_REQUIRED');
  t.equal(
    (await call('PATCH', `/api/v1/companies/${acme.id}`, { token: staff, payload: { industry: 'Hardware', version: 1 } })).statusCode,
    403,
    'staff cannot update',
  );
  const ok = await call('PATCH', `/api/v1/companies/${acme.id}`, { token: manager, payload: { industry: 'Hardware', version: 1 } });
  t.equal(ok.statusCode, 200, ok.body);
  t.equal(ok.json().version, 2);
  const stale = await call('PATCH', `/api/v1/companies/${acme.id}`, { payload: { industry: 'Other', version: 1 } });
  t.equal(stale.statusCode, 409);
  t.equal(stale.json().code, 'VERSION_CONFLICT');
  const viaHeader = await call('PATCH', `/api/v1/companies/${acme.id}`, { payload: { industry: 'Machines' }, headers: { 'if-match': '"2"' } });
  t.equal(viaHeader.statusCode, 200);
  t.equal(viaHeader.json().version, 3);
});

t.test('Idempotency-Key: a retry returns the first result; another body with the key is 422', async (t) => {
  const headers = { 'idempotency-key': 'k-123' };
  const a = await call('POST', '/api/v1/companies', { payload: { name: 'Stark' }, headers });
  const b = await call('POST', '/api/v1/companies', { payload: { name: 'Stark' }, headers });
  t.equal(a.statusCode, 201);
  t.equal(b.statusCode, 201);
  t.equal(b.headers['idempotent-replayed'], 'true');
  t.equal(b.json().id, a.json().id);
  t.equal((await call('GET', '/api/v1/companies?q=Stark')).json().total, 1, 'nothing new created');
  const c = await call('POST', '/api/v1/companies', { payload: { name: 'Wayne' }, headers });
  t.equal(c.statusCode, 422);
  t.equal(c.json().code, 'IDEMPOTENCY_KEY_REUSED');
  const [x, y] = await Promise.all([
    call('POST', '/api/v1/companies', { payload: { name: 'Parallel' }, headers: { 'idempotency-key': 'par' } }),
    call('POST', '/api/v1/companies', { payload: { name: 'Parallel' }, headers: { 'idempotency-key': 'par' } }),
  ]);
  t.same([x.statusCode, y.statusCode], [201, 201]);
  t.equal(x.json().id, y.json().id, 'concurrent retries create one company');
});

t.test('delete soft-deletes the company and its contacts in one transaction; restore is admin-only', async (t) => {
  const acme = (await call('GET', '/api/v1/companies?q=Acme')).json().data[0];
  await ctx.admin.withTenantDatabase(tenant, (kn) =>
    kn('contacts').insert([
      { company_id: acme.id, full_name: 'A One', email: 'a1@acme.test' },
      { company_id: acme.id, full_name: 'A Two', email: 'a2@acme.test' },
    ]),
  );
  t.equal((await call('DELETE', `/api/v1/companies/${acme.id}`, { token: manager })).statusCode, 403, 'managers cannot delete');
  t.equal((await call('DELETE', `/api/v1/companies/${acme.id}`)).statusCode, 204);
  t.equal((await call('GET', `/api/v1/companies/${acme.id}`)).statusCode, 404);
  t.equal((await call('GET', `/api/v1/companies/${acme.id}?includeDeleted=true`)).json().name, 'Acme', 'admins see deleted rows');
  t.equal((await call('GET', `/api/v1/companies/${acme.id}?includeDeleted=true`, { token: staff })).statusCode, 403);
  const live = await ctx.admin.withTenantDatabase(tenant, (kn) =>
    kn('contacts').where({ company_id: acme.id }).whereNull('deleted_at').count({ n: '*' }).first(),
  );
  t.equal(Number(live?.n), 0, 'contacts soft-deleted with it');
  t.equal((await call('POST', `/api/v1/companies/${acme.id}/restore`, { token: manager })).statusCode, 403);
  const restored = await call('POST', `/api/v1/companies/${acme.id}/restore`);
  t.equal(restored.statusCode, 200);
  t.equal(restored.json().deletedAt, null);
  const acts = await ctx.admin.withTenantDatabase(tenant, (kn) =>
    kn('activity_log').where({ entity: 'company', entity_id: acme.id }).orderBy('id').select('action', 'user_id', 'changes'),
  );
  t.same(
    acts.map((a: any) => a.action),
    ['create', 'update', 'update', 'delete', 'restore'],
  );
  const changes = typeof acts[1].changes === 'string' ? JSON.parse(acts[1].changes) : acts[1].changes;
  t.same(changes.industry, { old: 'Tools', new: 'Hardware' }, 'changed fields with old and new values');
  const contactActs = await ctx.admin.withTenantDatabase(tenant, (kn) =>
    kn('activity_log').where({ entity: 'contact', action: 'delete' }).count({ n: '*' }).first(),
  );
  t.equal(Number(contactActs?.n), 2, 'the cascade is logged too');
});

t.test('CSV export streams the filtered list (RFC 4180) and parses back', async (t) => {
  await call('POST', '/api/v1/companies', { payload: { name: 'Quote "Inc", Ltd', industry: 'Software' } });
  const res = await call('GET', '/api/v1/companies/export.csv?industry=Software&sort=name');
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /text\/csv/);
  const lines = res.body.split('\r\n').filter(Boolean);
  t.equal(lines[0], 'id,name,industry,country,website,phone,createdAt,updatedAt');
  t.equal(lines.length, 4);
  t.ok(
    lines.some((l) => l.includes('"Quote ""Inc"", Ltd"')),
    'quotes and commas are escaped',
  );
});

t.test('another tenant never sees these rows', async (t) => {
  await makeTenant(ctx, 'other');
  const other = (await login(app, 'other')).accessToken;
  const acme = (await call('GET', '/api/v1/companies?q=Acme')).json().data[0];
  const res = await app.inject({ url: `/api/v1/companies/${acme.id}`, headers: { 'x-tenant': 'other', authorization: `Bearer ${other}` } });
  t.equal(res.statusCode, 404);
  const patch = await app.inject({
    method: 'PATCH',
    url: `/api/v1/companies/${acme.id}`,
    payload: { name: 'Hijack', version: 1 },
    headers: { 'x-tenant': 'other', authorization: `Bearer ${other}` },
  });
  t.equal(patch.statusCode, 404);
  t.equal((await call('GET', `/api/v1/companies/${acme.id}`)).json().name, 'Acme', 'unchanged');
});
