/**
 * Notes through the API: the author is the signed-in user; only the author or an admin
 * changes or deletes a note; text bounds; related-record checks (422); list by record;
 * optimistic locking; idempotent creates; soft delete; activity rows; another tenant's 404.
 */
import t from 'tap';
import { addTenantUser } from '../src/provisioning/users-service.js';
import { login, makeTenant, PASSWORD, setupApp } from './fixtures/app.js';

const { app, ctx } = await setupApp(t);
const tenant = await makeTenant(ctx, 'crmnote');
await addTenantUser(ctx, 'crmnote', { email: 'm@crmnote.test', role: 'manager', password: PASSWORD });
await addTenantUser(ctx, 'crmnote', { email: 's@crmnote.test', role: 'staff', password: PASSWORD });
await addTenantUser(ctx, 'crmnote', { email: 's2@crmnote.test', role: 'staff', password: PASSWORD });
const admin = (await login(app, 'crmnote')).accessToken;
const manager = (await login(app, 'crmnote', 'm@crmnote.test')).accessToken;
const staff = (await login(app, 'crmnote', 's@crmnote.test')).accessToken;
const staff2 = (await login(app, 'crmnote', 's2@crmnote.test')).accessToken;
const db = <T>(fn: Parameters<typeof ctx.admin.withTenantDatabase<T>>[1]) => ctx.admin.withTenantDatabase(tenant, fn);
const staffId = Number((await db((kn) => kn('users').where({ email: 's@crmnote.test' }).first('id'))).id);

type Opts = { token?: string; payload?: unknown; headers?: Record<string, string> };
const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, o: Opts = {}) =>
  app.inject({ method, url, payload: o.payload as object, headers: { 'x-tenant': 'crmnote', authorization: `Bearer ${o.token ?? admin}`, ...o.headers } });
const must = async (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, o: Opts = {}) => {
  const res = await call(method, url, o);
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
  return res.statusCode === 204 ? undefined : res.json();
};

const company = await must('POST', '/api/v1/companies', { payload: { name: 'Note Co' } });
const gone = await must('POST', '/api/v1/companies', { payload: { name: 'Gone Co' } });
await must('DELETE', `/api/v1/companies/${gone.id}`);
const stage = (await must('GET', '/api/v1/pipeline-stages')).data[0];
const deal = await must('POST', '/api/v1/deals', { payload: { title: 'Note deal', amount: '1.00', currency: 'EUR', stageId: stage.id } });
const contact = await must('POST', '/api/v1/contacts', { payload: { fullName: 'Note Person' } });

t.test('create: 201, the author is the caller, the text is kept byte for byte', async (t) => {
  const text = '  Line one\n\tLine two 🎉  ';
  const res = await call('POST', '/api/v1/notes', { token: staff, payload: { relatedType: 'company', relatedId: company.id, text } });
  t.equal(res.statusCode, 201, res.body);
  t.match(res.json(), { relatedType: 'company', relatedId: company.id, text, authorId: staffId, version: 1, deletedAt: null });
  for (const [relatedType, relatedId] of [
    ['deal', deal.id],
    ['contact', contact.id],
  ])
    t.equal((await call('POST', '/api/v1/notes', { payload: { relatedType, relatedId, text: 'x' } })).statusCode, 201, relatedType);
  t.equal(
    (await call('POST', '/api/v1/notes', { payload: { relatedType: 'company', relatedId: company.id, text: 'y'.repeat(10_000) } })).statusCode,
    201,
    '10,000 characters',
  );
});

t.test('authentication before validation; bad bodies are 400 and create nothing', async (t) => {
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/notes', payload: {}, headers: { 'x-tenant': 'crmnote' } })).statusCode, 401);
  const count = async () => Number((await db((kn) => kn('notes').count({ n: '*' }).first()))?.n);
  const before = await count();
  for (const payload of [
    {},
    { relatedType: 'company', relatedId: company.id },
    { relatedType: 'company', relatedId: company.id, text: '' },
    { relatedType: 'company', relatedId: company.id, text: 'y'.repeat(10_001) },
    { relatedType: 'company', text: 'x' },
    { relatedId: company.id, text: 'x' },
    { relatedType: 'user', relatedId: 1, text: 'x' },
    { relatedType: 'company', relatedId: -1, text: 'x' },
    { relatedType: 'company', relatedId: company.id, text: 'x', authorId: 1 },
    { relatedType: 'company', relatedId: company.id, text: 5 },
  ]) {
    const res = await call('POST', '/api/v1/notes', { payload });
    t.equal(res.statusCode, 400, JSON.stringify(payload).slice(0, 80));
    t.equal(res.json().code, 'VALIDATION_FAILED');
  }
  t.equal(await count(), before);
});

t.test('a missing, soft-deleted or wrong-type record is 422 INVALID_REFERENCE', async (t) => {
  for (const [relatedType, relatedId] of [
    ['company', 999_999],
    ['company', gone.id],
    ['deal', contact.id + 1000],
    ['contact', 999_999],
  ] as const) {
    const res = await call('POST', '/api/v1/notes', { payload: { relatedType, relatedId, text: 'x' } });
    t.equal(res.statusCode, 422, `${relatedType} ${relatedId}`);
    t.equal(res.json().code, 'INVALID_REFERENCE');
    t.equal(res.json().errors?.[0]?.path, 'body.relatedId');
  }
});

t.test('list by record: newest first, only that record, paginated; relatedId needs relatedType', async (t) => {
  const co = await must('POST', '/api/v1/companies', { payload: { name: 'List Co' } });
  for (const n of [1, 2, 3]) await must('POST', '/api/v1/notes', { payload: { relatedType: 'company', relatedId: co.id, text: `n${n}` } });
  await must('POST', '/api/v1/notes', { payload: { relatedType: 'company', relatedId: company.id, text: 'another company' } });
  // A contact whose id is the company's: notes of (contact, id) are not the company's.
  await db((kn) => kn('contacts').insert({ id: co.id, full_name: 'Twin id' }));
  await must('POST', '/api/v1/notes', { payload: { relatedType: 'contact', relatedId: co.id, text: 'same id, other type' } });
  const all = await must('GET', `/api/v1/notes?relatedType=company&relatedId=${co.id}`);
  t.same(
    all.data.map((n: any) => n.text),
    ['n3', 'n2', 'n1'],
  );
  t.equal(all.total, 3);
  const p2 = await must('GET', `/api/v1/notes?relatedType=company&relatedId=${co.id}&pageSize=2&page=2`, { token: staff });
  t.same(
    p2.data.map((n: any) => n.text),
    ['n1'],
  );
  t.equal((await call('GET', `/api/v1/notes?relatedId=${co.id}`)).statusCode, 400);
  t.ok(
    (await must('GET', '/api/v1/notes?relatedType=contact&pageSize=100')).data.every((n: any) => n.relatedType === 'contact'),
    'by type',
  );
  t.ok((await must('GET', '/api/v1/notes?pageSize=100')).total >= 5, 'all notes');
});

t.test('update: author or admin only, with the current version; each change logged', async (t) => {
  const note = await must('POST', '/api/v1/notes', { token: staff, payload: { relatedType: 'company', relatedId: company.id, text: 'draft' } });
  const url = `/api/v1/notes/${note.id}`;
  t.equal((await call('PATCH', url, { token: staff, payload: { text: 'v2' } })).statusCode, 428);
  for (const token of [staff2, manager]) {
    const res = await call('PATCH', url, { token, payload: { text: 'hijack', version: 1 } });
    t.equal(res.statusCode, 403, 'another user, even a manager');
    t.equal(res.json().code, 'NOT_NOTE_AUTHOR');
  }
  const mine = await call('PATCH', url, { token: staff, payload: { text: 'v2', version: 1 } });
  t.equal(mine.statusCode, 200, mine.body);
  t.match(mine.json(), { text: 'v2', version: 2, authorId: staffId });
  const stale = await call('PATCH', url, { payload: { text: 'v3', version: 1 } });
  t.equal(stale.statusCode, 409);
  t.equal(stale.json().code, 'VERSION_CONFLICT');
  const byAdmin = await call('PATCH', url, { payload: { text: 'v3' }, headers: { 'if-match': 'W/"2"' } });
  t.equal(byAdmin.statusCode, 200);
  t.match(byAdmin.json(), { text: 'v3', version: 3, authorId: staffId }, 'the author stays the author');
  t.equal((await call('PATCH', url, { payload: { text: '', version: 3 } })).statusCode, 400);
  t.equal((await call('PATCH', url, { payload: { text: 'x', relatedId: 1, version: 3 } })).statusCode, 400, 'a note does not move');
  const acts = await db((kn) => kn('activity_log').where({ entity: 'note', entity_id: note.id }).orderBy('id').select('action', 'user_id', 'changes'));
  t.same(
    acts.map((a: any) => a.action),
    ['create', 'update', 'update'],
  );
  const changes = typeof acts[1].changes === 'string' ? JSON.parse(acts[1].changes) : acts[1].changes;
  t.same(changes.text, { old: 'draft', new: 'v2' });
});

t.test('soft delete: author or admin; the row stays; admins may still read it', async (t) => {
  const note = await must('POST', '/api/v1/notes', { token: staff, payload: { relatedType: 'deal', relatedId: deal.id, text: 'to delete' } });
  const other = await must('POST', '/api/v1/notes', { token: staff, payload: { relatedType: 'deal', relatedId: deal.id, text: 'by admin' } });
  t.equal((await call('DELETE', `/api/v1/notes/${note.id}`, { token: staff2 })).statusCode, 403);
  t.equal((await call('DELETE', `/api/v1/notes/${note.id}`, { token: staff })).statusCode, 204, 'its author');
  t.equal((await call('DELETE', `/api/v1/notes/${other.id}`)).statusCode, 204, 'an admin');
  t.equal((await call('GET', `/api/v1/notes/${note.id}`)).statusCode, 404);
  t.equal((await call('DELETE', `/api/v1/notes/${note.id}`, { token: staff })).statusCode, 404);
  t.equal((await call('PATCH', `/api/v1/notes/${note.id}`, { token: staff, payload: { text: 'back', version: 2 } })).statusCode, 404);
  t.equal((await call('GET', `/api/v1/notes/${note.id}?includeDeleted=true`)).json().text, 'to delete');
  t.equal((await call('GET', `/api/v1/notes/${note.id}?includeDeleted=true`, { token: staff })).statusCode, 403);
  t.notOk(
    (await must('GET', `/api/v1/notes?relatedType=deal&relatedId=${deal.id}`)).data.some((n: any) => n.id === note.id),
    'not listed',
  );
  t.ok((await must('GET', `/api/v1/notes?relatedType=deal&relatedId=${deal.id}&includeDeleted=true`)).data.some((n: any) => n.id === note.id));
  const acts = await db((kn) => kn('activity_log').where({ entity: 'note', entity_id: note.id }).orderBy('id').pluck('action'));
  t.same(acts, ['create', 'delete']);
});

t.test("a record's soft delete keeps its notes", async (t) => {
  const co = await must('POST', '/api/v1/companies', { payload: { name: 'Brief Co' } });
  const note = await must('POST', '/api/v1/notes', { payload: { relatedType: 'company', relatedId: co.id, text: 'still here' } });
  await must('DELETE', `/api/v1/companies/${co.id}`);
  t.match(await must('GET', `/api/v1/notes/${note.id}`), { text: 'still here', deletedAt: null });
  t.equal((await must('GET', `/api/v1/notes?relatedType=company&relatedId=${co.id}`)).total, 1);
});

t.test('Idempotency-Key: a retry returns the first note; another body with the key is 422', async (t) => {
  const headers = { 'idempotency-key': 'note-1' };
  const payload = { relatedType: 'company', relatedId: company.id, text: 'once' };
  const [a, b] = await Promise.all([call('POST', '/api/v1/notes', { payload, headers }), call('POST', '/api/v1/notes', { payload, headers })]);
  t.same([a.statusCode, b.statusCode], [201, 201]);
  t.equal(a.json().id, b.json().id);
  const c = await call('POST', '/api/v1/notes', { payload: { ...payload, text: 'twice' }, headers });
  t.equal(c.statusCode, 422);
  t.equal(c.json().code, 'IDEMPOTENCY_KEY_REUSED');
  const n = await db((kn) => kn('notes').where({ text: 'once' }).count({ n: '*' }).first());
  t.equal(Number(n?.n), 1);
});

t.test('another tenant never sees these notes', async (t) => {
  await makeTenant(ctx, 'crmnote-other');
  const other = (await login(app, 'crmnote-other')).accessToken;
  const note = await must('POST', '/api/v1/notes', { payload: { relatedType: 'company', relatedId: company.id, text: 'secret' } });
  const as = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    app.inject({ method, url, payload, headers: { 'x-tenant': 'crmnote-other', authorization: `Bearer ${other}` } });
  t.equal((await as('GET', `/api/v1/notes/${note.id}`)).statusCode, 404);
  t.equal((await as('PATCH', `/api/v1/notes/${note.id}`, { text: 'x', version: 1 })).statusCode, 404);
  t.equal((await as('DELETE', `/api/v1/notes/${note.id}`)).statusCode, 404);
  t.equal((await as('GET', `/api/v1/notes?relatedType=company&relatedId=${company.id}`)).json().total, 0);
  t.equal((await as('POST', '/api/v1/notes', { relatedType: 'company', relatedId: company.id, text: 'x' })).statusCode, 422);
  t.equal((await must('GET', `/api/v1/notes/${note.id}`)).text, 'secret');
});
