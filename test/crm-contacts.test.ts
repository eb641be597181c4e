/**
 * Contacts and the activity log through the API: email uniqueness per company among
 * live contacts (enforced by MySQL, also under 50 concurrent creates), phone and email
 * validation, company references, filters, CSV, restore rules, activity entries.
 */
import t from 'tap';
import { login, makeTenant, setupApp } from './fixtures/app.js';

const { app, ctx } = await setupApp(t);
await makeTenant(ctx, 'crmct');
const admin = (await login(app, 'crmct')).accessToken;
type Opts = { payload?: unknown; headers?: Record<string, string> };
const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, o: Opts = {}) =>
  app.inject({ method, url, payload: o.payload as object, headers: { 'x-tenant': 'crmct', authorization: `Bearer ${admin}`, ...o.headers } });

const acme = (await call('POST', '/api/v1/companies', { payload: { name: 'Acme' } })).json();
const globex = (await call('POST', '/api/v1/companies', { payload: { name: 'Globex' } })).json();

t.test('create validates email, phone and the company', async (t) => {
  const ok = await call('POST', '/api/v1/contacts', {
    payload: { companyId: acme.id, fullName: 'Ada Lovelace', email: 'Ada@Acme.test', phone: '+44 20 7946 0958', jobTitle: 'CTO' },
  });
  t.equal(ok.statusCode, 201, ok.body);
  t.match(ok.json(), { companyId: acme.id, fullName: 'Ada Lovelace', email: 'ada@acme.test', phone: '442079460958', jobTitle: 'CTO', version: 1 });
  for (const payload of [
    { fullName: 'X', email: 'not-an-email' },
    { fullName: 'X', phone: '123' },
    { fullName: 'X', phone: '1234567890123456' },
    { fullName: '' },
    { fullName: 'X', companyId: 'one' },
  ]) {
    t.equal((await call('POST', '/api/v1/contacts', { payload })).statusCode, 400, JSON.stringify(payload));
  }
  const ghost = await call('POST', '/api/v1/contacts', { payload: { fullName: 'X', companyId: 999999 } });
  t.equal(ghost.statusCode, 422);
  t.equal(ghost.json().code, 'INVALID_REFERENCE');
});

t.test('email is unique per company among live contacts', async (t) => {
  const dup = await call('POST', '/api/v1/contacts', { payload: { companyId: acme.id, fullName: 'Other Ada', email: 'ada@acme.test' } });
  t.equal(dup.statusCode, 409);
  t.equal(dup.json().code, 'CONTACT_EMAIL_TAKEN');
  t.equal(
    (await call('POST', '/api/v1/contacts', { payload: { companyId: globex.id, fullName: 'Ada at Globex', email: 'ada@acme.test' } })).statusCode,
    201,
    'another company may have it',
  );
});

t.test('50 concurrent creates with the same email in one company: exactly one succeeds', async (t) => {
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      call('POST', '/api/v1/contacts', { payload: { companyId: globex.id, fullName: `Racer ${i}`, email: 'race@globex.test' } }),
    ),
  );
  const codes = results.map((r) => r.statusCode);
  t.equal(codes.filter((c) => c === 201).length, 1);
  t.equal(codes.filter((c) => c === 409).length, 49);
});

t.test('filters, search, sort and CSV', async (t) => {
  const byCompany = (await call('GET', `/api/v1/contacts?companyId=${acme.id}`)).json();
  t.same(
    byCompany.data.map((c: any) => c.fullName),
    ['Ada Lovelace'],
  );
  t.equal((await call('GET', '/api/v1/contacts?email=ADA@acme.test')).json().total, 2);
  t.equal((await call('GET', '/api/v1/contacts?q=lovelace')).json().total, 1);
  t.equal((await call('GET', '/api/v1/contacts?sort=deletedAt')).statusCode, 400);
  const csv = await call('GET', `/api/v1/contacts/export.csv?companyId=${acme.id}`);
  t.equal(csv.statusCode, 200);
  const lines = csv.body.split('\r\n').filter(Boolean);
  t.equal(lines[0], 'id,companyId,fullName,email,phone,jobTitle,createdAt,updatedAt');
  t.match(lines[1], /,Ada Lovelace,ada@acme\.test,442079460958,CTO,/);
});

t.test('a contact of a deleted company cannot be restored before it', async (t) => {
  const c = (await call('POST', '/api/v1/contacts', { payload: { companyId: acme.id, fullName: 'Bob', email: 'bob@acme.test' } })).json();
  t.equal((await call('DELETE', `/api/v1/companies/${acme.id}`)).statusCode, 204);
  t.equal((await call('GET', `/api/v1/contacts/${c.id}`)).statusCode, 404, 'cascaded');
  const early = await call('POST', `/api/v1/contacts/${c.id}/restore`);
  t.equal(early.statusCode, 409);
  t.equal(early.json().code, 'COMPANY_DELETED');
  t.equal((await call('POST', `/api/v1/companies/${acme.id}/restore`)).statusCode, 200);
  const back = await call('POST', `/api/v1/contacts/${c.id}/restore`);
  t.equal(back.statusCode, 200);
  t.equal(back.json().deletedAt, null);
  const patched = await call('PATCH', `/api/v1/contacts/${c.id}`, { payload: { jobTitle: 'CEO' }, headers: { 'if-match': String(back.json().version) } });
  t.equal(patched.statusCode, 200, patched.body);
});

t.test('the activity log lists every change, newest first, with changed fields', async (t) => {
  const res = await call('GET', '/api/v1/activity?entity=contact&pageSize=100');
  t.equal(res.statusCode, 200);
  const actions = res.json().data.map((a: any) => a.action);
  t.ok(actions.includes('create') && actions.includes('delete') && actions.includes('restore') && actions.includes('update'));
  const upd = res.json().data.find((a: any) => a.action === 'update');
  t.same(upd.changes.jobTitle, { old: null, new: 'CEO' });
  t.equal(upd.userId, 1);
  const users = await call('POST', '/api/v1/users', { payload: { email: 'new@crmct.test', role: 'staff', password: 'a long enough password' } });
  t.equal(users.statusCode, 201);
  const userActs = (await call('GET', '/api/v1/activity?entity=user')).json().data;
  t.equal(userActs[0].action, 'create');
  t.notOk(JSON.stringify(userActs).includes('a long enough password'), 'no password in the log');
});
