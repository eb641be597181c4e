/**
 * Isolation between two tenants with data: every get/update/delete/restore of tenant A
 * with tenant B's ids is 404 and changes nothing, and A's token never reaches B's rows
 * by any identification source.
 */
import t from 'tap';
import { login, makeTenant, setupApp } from './fixtures/app.js';

const { app, ctx } = await setupApp(t);
await makeTenant(ctx, 'iso-a');
const tb = await makeTenant(ctx, 'iso-b');
const tokA = (await login(app, 'iso-a')).accessToken;
const tokB = (await login(app, 'iso-b')).accessToken;

const as =
  (slug: string, token: string) =>
  (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object, headers: Record<string, string> = {}) =>
    app.inject({ method, url, payload, headers: { 'x-tenant': slug, authorization: `Bearer ${token}`, ...headers } });
const A = as('iso-a', tokA);
const B = as('iso-b', tokB);

// B has data; A has a little so that ids overlap in range but not in ownership.
const bCompany = (await B('POST', '/api/v1/companies', { name: 'B Corp' })).json();
const bContact = (await B('POST', '/api/v1/contacts', { companyId: bCompany.id, fullName: 'B Person', email: 'p@b.test' })).json();
for (let i = 0; i < 3; i++) await B('POST', '/api/v1/companies', { name: `B filler ${i}` });
await A('POST', '/api/v1/companies', { name: 'A Corp' });

async function snapshot(tenant: typeof tb) {
  return ctx.admin.withTenantDatabase(tenant, async (k) => {
    const [rows] = await k.raw('CHECKSUM TABLE companies, contacts, deals, users');
    return rows;
  });
}

t.test("tenant A with tenant B's ids gets 404 everywhere and B is unchanged", async (t) => {
  const before = await snapshot(tb);
  const ids = { companies: bCompany.id + 3, contacts: bContact.id + 5 }; // ids that exist in B but not in A
  for (const [res, id] of Object.entries(ids)) {
    for (const [method, url, payload] of [
      ['GET', `/api/v1/${res}/${id}`],
      ['PATCH', `/api/v1/${res}/${id}`, { version: 1, ...(res === 'companies' ? { name: 'Hijack' } : { fullName: 'Hijack' }) }],
      ['DELETE', `/api/v1/${res}/${id}`],
      ['POST', `/api/v1/${res}/${id}/restore`],
    ] as Array<['GET' | 'PATCH' | 'DELETE' | 'POST', string, object?]>) {
      const r = await A(method, url, payload);
      t.equal(r.statusCode, 404, `${method} ${url}`);
    }
  }
  const listed = (await A('GET', '/api/v1/companies?pageSize=100')).json().data.map((c: any) => c.name);
  t.same(listed, ['A Corp'], "A's list never shows B's rows");
  t.same(await snapshot(tb), before, "B's tables are byte-for-byte unchanged (CHECKSUM TABLE)");
});

t.test("A's token never reaches B's rows by any identification source", async (t) => {
  for (const headers of [{ 'x-tenant': 'iso-b' }, { host: 'iso-b.localhost', 'x-tenant': '' }]) {
    const r = await app.inject({ url: `/api/v1/companies/${bCompany.id}`, headers: { authorization: `Bearer ${tokA}`, ...headers } });
    t.equal(r.statusCode, 401, JSON.stringify(headers));
    t.equal(r.json().code, 'TOKEN_TENANT_MISMATCH');
  }
  const q = await app.inject({ url: `/api/v1/companies/${bCompany.id}?tenant=iso-b`, headers: { authorization: `Bearer ${tokA}` } });
  t.equal(q.statusCode, 401);
  const conflict = await app.inject({
    url: `/api/v1/companies/${bCompany.id}?tenant=iso-b`,
    headers: { authorization: `Bearer ${tokA}`, 'x-tenant': 'iso-a' },
  });
  t.equal(conflict.statusCode, 400, 'two tenants named: refused before anything');
  t.equal(conflict.json().code, 'TENANT_CONFLICT');
});

t.test('a contact cannot be attached to another tenant company', async (t) => {
  const r = await A('POST', '/api/v1/contacts', { companyId: bCompany.id + 3, fullName: 'Spy' });
  t.equal(r.statusCode, 422);
  t.equal((await A('GET', '/api/v1/contacts')).json().total, 0, 'nothing created');
});

t.test('SQL-looking and hostile strings are stored as data, byte for byte', async (t) => {
  for (const name of ["Robert'); DROP TABLE companies;--", '%_\\', '💥 Ünïcödé ﷽', '<script>alert(1)</script>']) {
    const r = await A('POST', '/api/v1/companies', { name });
    t.equal(r.statusCode, 201, name);
    t.equal((await A('GET', `/api/v1/companies/${r.json().id}`)).json().name, name);
  }
  t.equal((await B('GET', '/api/v1/companies')).json().total, 4, 'B still has its 4 companies');
  t.equal((await A('GET', `/api/v1/companies?q=${encodeURIComponent('%_\\')}`)).json().total, 1, 'LIKE wildcards are matched literally');
});
