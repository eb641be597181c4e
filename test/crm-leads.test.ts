/**
 * Leads through the API: CRUD, roles, validation, owner references, optimistic locking,
 * idempotent creates, soft delete and restore, activity rows, filters, sort on every
 * field, FULLTEXT search with its LIKE fallback for short terms, CSV, cross-tenant 404,
 * and the convert: contact / company (new or reused) / deal in one transaction, a
 * converted lead read-only, concurrent converts (one wins), a failing convert leaves nothing.
 */
import t from 'tap';
import { LEAD_SORT } from '../src/crm/leads.js';
import { addTenantUser } from '../src/provisioning/users-service.js';
import { login, makeTenant, PASSWORD, setupApp } from './fixtures/app.js';

const { app, ctx } = await setupApp(t);
const tenant = await makeTenant(ctx, 'crmlead');
await addTenantUser(ctx, 'crmlead', { email: 'm@crmlead.test', role: 'manager', password: PASSWORD });
await addTenantUser(ctx, 'crmlead', { email: 's@crmlead.test', role: 'staff', password: PASSWORD });
const admin = (await login(app, 'crmlead')).accessToken;
const manager = (await login(app, 'crmlead', 'm@crmlead.test')).accessToken;
const staff = (await login(app, 'crmlead', 's@crmlead.test')).accessToken;
const db = <T>(fn: Parameters<typeof ctx.admin.withTenantDatabase<T>>[1]) => ctx.admin.withTenantDatabase<T>(tenant, fn);
const adminId = Number((await db((kn) => kn('users').where({ email: 'admin@crmlead.test' }).first('id'))).id);
const managerId = Number((await db((kn) => kn('users').where({ email: 'm@crmlead.test' }).first('id'))).id);

type Opts = { token?: string; payload?: unknown; headers?: Record<string, string>; slug?: string };
const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, o: Opts = {}) =>
  app.inject({
    method,
    url,
    payload: o.payload as object,
    headers: { 'x-tenant': o.slug ?? 'crmlead', authorization: `Bearer ${o.token ?? admin}`, ...o.headers },
  });
const create = async (payload: Record<string, unknown>) => {
  const res = await call('POST', '/api/v1/leads', { payload });
  if (res.statusCode !== 201) throw new Error(`create lead: ${res.statusCode} ${res.body}`);
  return res.json();
};
const names = (res: { json: () => any }) => res.json().data.map((l: any) => l.fullName);
const counts = () =>
  db(async (kn) => {
    const out: Record<'leads' | 'contacts' | 'companies' | 'deals' | 'activity_log', number> = {
      leads: 0,
      contacts: 0,
      companies: 0,
      deals: 0,
      activity_log: 0,
    };
    for (const table of Object.keys(out) as Array<keyof typeof out>) out[table] = Number((await kn(table).count({ n: '*' }).first())?.n ?? 0);
    return out;
  });
const activity = (entity: string, id: number) =>
  db((kn) => kn('activity_log').where({ entity, entity_id: id }).orderBy('id').pluck('action')) as Promise<string[]>;

t.test('create answers 201 with defaults and normalized fields; staff may create', async (t) => {
  const res = await call('POST', '/api/v1/leads', {
    token: staff,
    payload: {
      fullName: '  Ada Lovelace ',
      email: 'ADA@Analytical.test',
      phone: '+44 (20) 7946-0000',
      companyName: 'Analytical Engines',
      notes: 'met at the fair',
    },
  });
  t.equal(res.statusCode, 201, res.body);
  const l = res.json();
  t.match(l, {
    fullName: 'Ada Lovelace',
    email: 'ada@analytical.test',
    phone: '442079460000',
    companyName: 'Analytical Engines',
    source: 'other',
    status: 'new',
    score: 0,
    notes: 'met at the fair',
    contactId: null,
    companyId: null,
    dealId: null,
    convertedAt: null,
    version: 1,
    deletedAt: null,
  });
  t.not(l.ownerId, null, 'owner defaults to the creating user');
  t.same(await activity('lead', l.id), ['create']);
  const owned = await create({ fullName: 'Owned', ownerId: managerId, source: 'event', status: 'contacted', score: 55 });
  t.match(owned, { ownerId: managerId, source: 'event', status: 'contacted', score: 55 });
  t.equal((await create({ fullName: 'Nobody', ownerId: null })).ownerId, null);
});

t.test('authentication and roles come before validation', async (t) => {
  const res = await app.inject({ method: 'POST', url: '/api/v1/leads', payload: { nope: 1 }, headers: { 'x-tenant': 'crmlead' } });
  t.equal(res.statusCode, 401);
  t.equal((await call('DELETE', '/api/v1/leads/abc', { token: staff })).statusCode, 403);
  t.equal((await call('PATCH', '/api/v1/leads/abc', { token: staff, payload: {} })).statusCode, 403);
  t.equal((await call('POST', '/api/v1/leads/abc/convert', { token: staff, payload: {} })).statusCode, 403);
});

t.test('bad input gets 400 problem+json and creates nothing', async (t) => {
  const before = await counts();
  for (const payload of [
    {},
    { fullName: '' },
    { fullName: 'x'.repeat(201) },
    { fullName: 'B', score: 101 },
    { fullName: 'B', score: -1 },
    { fullName: 'B', score: 1.5 },
    { fullName: 'B', score: '50' },
    { fullName: 'B', status: 'converted' },
    { fullName: 'B', status: 'won' },
    { fullName: 'B', source: 'tv' },
    { fullName: 'B', email: 'not-an-email' },
    { fullName: 'B', phone: '12' },
    { fullName: 'B', ownerId: 'me' },
    { fullName: 'B', ownerId: 0 },
    { fullName: 'B', companyName: '' },
    { fullName: 'B', notes: 'x'.repeat(10_001) },
    { fullName: 'B', contactId: 1 },
    { fullName: 'B', extra: 1 },
  ]) {
    const res = await call('POST', '/api/v1/leads', { payload });
    t.equal(res.statusCode, 400, JSON.stringify(payload).slice(0, 80));
    t.equal(res.json().code, 'VALIDATION_FAILED');
    t.match(res.headers['content-type'], /application\/problem\+json/);
  }
  t.same(await counts(), before);
});

t.test('owner must be an active user of the tenant: 422 INVALID_REFERENCE', async (t) => {
  const before = await counts();
  const missing = await call('POST', '/api/v1/leads', { payload: { fullName: 'X', ownerId: 999_999 } });
  t.equal(missing.statusCode, 422);
  t.equal(missing.json().code, 'INVALID_REFERENCE');
  const inactive = Number(
    (
      await db(async (kn) => {
        const staffRole = await kn('roles').where({ name: 'staff' }).first('id');
        const [id] = await kn('users').insert({ email: 'gone@crmlead.test', password_hash: 'x', role: 'staff', role_id: staffRole.id, active: false });
        return { id };
      })
    ).id,
  );
  t.equal((await call('POST', '/api/v1/leads', { payload: { fullName: 'X', ownerId: inactive } })).json().code, 'INVALID_REFERENCE', 'inactive user');
  const lead = await create({ fullName: 'Ref check' });
  const patch = await call('PATCH', `/api/v1/leads/${lead.id}`, { payload: { ownerId: inactive, version: 1 } });
  t.equal(patch.statusCode, 422);
  t.equal(patch.json().code, 'INVALID_REFERENCE');
  t.equal((await counts()).leads, before.leads + 1, 'only the valid lead was created');
});

t.test('PATCH needs the current version (body or If-Match); stale gets 409; roles apply', async (t) => {
  const lead = await create({ fullName: 'Versioned', score: 10 });
  const none = await call('PATCH', `/api/v1/leads/${lead.id}`, { payload: { score: 20 } });
  t.equal(none.statusCode, 428);
  t.equal(none.json().code, 'VERSION_REQUIRED');
  const ok = await call('PATCH', `/api/v1/leads/${lead.id}`, { token: manager, payload: { score: 20, status: 'qualified', version: 1 } });
  t.equal(ok.statusCode, 200, ok.body);
  t.match(ok.json(), { score: 20, status: 'qualified', version: 2 });
  const stale = await call('PATCH', `/api/v1/leads/${lead.id}`, { payload: { score: 30, version: 1 } });
  t.equal(stale.statusCode, 409);
  t.equal(stale.json().code, 'VERSION_CONFLICT');
  const viaHeader = await call('PATCH', `/api/v1/leads/${lead.id}`, { payload: { notes: null }, headers: { 'if-match': '"2"' } });
  t.equal(viaHeader.statusCode, 200);
  t.equal(viaHeader.json().version, 3);
  t.equal((await call('PATCH', `/api/v1/leads/${lead.id}`, { payload: { status: 'converted', version: 3 } })).statusCode, 400, 'converted is not writable');
  const acts = await db((kn) => kn('activity_log').where({ entity: 'lead', entity_id: lead.id, action: 'update' }).orderBy('id').first('changes'));
  const changes = typeof acts.changes === 'string' ? JSON.parse(acts.changes) : acts.changes;
  t.same(changes.score, { old: 10, new: 20 }, 'the update is logged with old and new values');
});

t.test('Idempotency-Key: a retry returns the first result; another body with the key is 422', async (t) => {
  const headers = { 'idempotency-key': 'lead-k1' };
  const a = await call('POST', '/api/v1/leads', { payload: { fullName: 'Idem' }, headers });
  const b = await call('POST', '/api/v1/leads', { payload: { fullName: 'Idem' }, headers });
  t.equal(a.statusCode, 201);
  t.equal(b.statusCode, 201);
  t.equal(b.headers['idempotent-replayed'], 'true');
  t.equal(b.json().id, a.json().id);
  t.equal(Number((await db((kn) => kn('leads').where({ full_name: 'Idem' }).count({ n: '*' }).first()))?.n), 1);
  const c = await call('POST', '/api/v1/leads', { payload: { fullName: 'Other' }, headers });
  t.equal(c.statusCode, 422);
  t.equal(c.json().code, 'IDEMPOTENCY_KEY_REUSED');
});

t.test('soft delete and restore (admins); deleted rows are 404 unless an admin asks', async (t) => {
  const lead = await create({ fullName: 'Deletable' });
  t.equal((await call('DELETE', `/api/v1/leads/${lead.id}`, { token: manager })).statusCode, 403, 'managers cannot delete');
  t.equal((await call('DELETE', `/api/v1/leads/${lead.id}`)).statusCode, 204);
  t.equal((await call('GET', `/api/v1/leads/${lead.id}`)).statusCode, 404);
  t.equal((await call('DELETE', `/api/v1/leads/${lead.id}`)).statusCode, 404, 'deleting twice is 404');
  t.equal((await call('GET', `/api/v1/leads/${lead.id}?includeDeleted=true`)).json().fullName, 'Deletable');
  t.equal((await call('GET', `/api/v1/leads/${lead.id}?includeDeleted=true`, { token: staff })).statusCode, 403);
  t.notOk(names(await call('GET', '/api/v1/leads?pageSize=100')).includes('Deletable'), 'not listed');
  t.ok(names(await call('GET', '/api/v1/leads?pageSize=100&includeDeleted=true')).includes('Deletable'), 'listed for admins who ask');
  t.equal((await call('POST', `/api/v1/leads/${lead.id}/restore`, { token: manager })).statusCode, 403);
  const restored = await call('POST', `/api/v1/leads/${lead.id}/restore`);
  t.equal(restored.statusCode, 200);
  t.match(restored.json(), { deletedAt: null, version: 3 });
  t.same(await activity('lead', lead.id), ['create', 'delete', 'restore']);
});

t.test('list: filters by status, source, owner, score and date ranges; sort on every field; pagination', async (t) => {
  await db((kn) => kn('leads').update({ deleted_at: new Date() }));
  const rows = [
    { fullName: 'F Alpha', source: 'website', status: 'new', score: 10, ownerId: adminId },
    { fullName: 'F Bravo', source: 'referral', status: 'qualified', score: 50, ownerId: managerId },
    { fullName: 'F Charlie', source: 'website', status: 'qualified', score: 90, ownerId: managerId },
    { fullName: 'F Delta', source: 'cold-call', status: 'unqualified', score: 100, ownerId: null },
  ];
  const made = [];
  for (const r of rows) made.push(await create(r));
  // Creation times a day apart, so the ranges are exact.
  for (const [i, l] of made.entries()) {
    await db((kn) =>
      kn('leads')
        .where({ id: l.id })
        .update({ created_at: new Date(Date.UTC(2030, 0, 1 + i)), updated_at: new Date(Date.UTC(2030, 1, 1 + i)) }),
    );
  }
  const q = async (query: string) => {
    const res = await call('GET', `/api/v1/leads?${query}`);
    t.equal(res.statusCode, 200, `${query}: ${res.body.slice(0, 200)}`);
    return names(res);
  };
  t.same(await q('status=qualified&sort=fullName'), ['F Bravo', 'F Charlie']);
  t.same(await q('source=website&sort=fullName'), ['F Alpha', 'F Charlie']);
  t.same(await q(`ownerId=${managerId}&sort=fullName`), ['F Bravo', 'F Charlie']);
  t.same(await q('scoreMin=50&scoreMax=90&sort=score'), ['F Bravo', 'F Charlie'], 'score bounds are inclusive');
  t.same(await q('scoreMin=91&sort=score'), ['F Delta']);
  t.same(await q('createdAfter=2030-01-02T00:00:00Z&createdBefore=2030-01-03T00:00:00.000Z&sort=fullName'), ['F Bravo', 'F Charlie']);
  t.same(await q('createdAfter=2030-01-02T01:00:00%2B01:00&sort=fullName'), ['F Bravo', 'F Charlie', 'F Delta'], 'offsets are honoured');
  t.same(await q('updatedAfter=2030-02-04T00:00:00Z'), ['F Delta']);
  t.same(await q('updatedBefore=2030-02-01T00:00:00Z'), ['F Alpha']);
  t.same(await q('sort=-score&pageSize=2&page=2'), ['F Bravo', 'F Alpha']);
  t.same(await q('sort=-createdAt'), ['F Delta', 'F Charlie', 'F Bravo', 'F Alpha'], 'default sort is newest first');
  t.same(await q('sort=source,-score'), ['F Charlie', 'F Alpha', 'F Bravo', 'F Delta'], 'enum sorts by declaration order, then the tie-breaker');
  for (const field of Object.keys(LEAD_SORT)) {
    for (const dir of ['', '-']) t.equal((await q(`sort=${dir}${field}`)).length, 4, `sort=${dir}${field}`);
  }
  t.same(await q('sort=fullName'), ['F Alpha', 'F Bravo', 'F Charlie', 'F Delta']);
  t.same(await q('sort=-fullName'), ['F Delta', 'F Charlie', 'F Bravo', 'F Alpha']);
  for (const bad of [
    'scoreMin=101',
    'scoreMax=-1',
    'scoreMin=a',
    'status=won',
    'source=tv',
    'createdAfter=2030-01-01',
    'updatedBefore=yesterday',
    'ownerId=x',
    'pageSize=101',
  ]) {
    const res = await call('GET', `/api/v1/leads?${bad}`);
    t.equal(res.statusCode, 400, bad);
  }
  const badSort = await call('GET', '/api/v1/leads?sort=password');
  t.equal(badSort.statusCode, 400);
  t.equal(badSort.json().code, 'INVALID_SORT');
  t.equal((await call('GET', '/api/v1/leads?sort=__proto__')).statusCode, 400);
});

t.test('search: FULLTEXT prefix words, LIKE for terms shorter than innodb_ft_min_token_size, punctuation, no injection', async (t) => {
  await db((kn) => kn('leads').update({ deleted_at: new Date() }));
  await create({ fullName: 'Grace Hopper', email: 'grace@navy.test', companyName: 'Globex Corporation' });
  await create({ fullName: 'Alan Turing', email: 'alan@bletchley.test', companyName: 'Bletchley Park' });
  await create({ fullName: 'Al Jo', email: 'aj@x.test', companyName: 'Initech' });
  const min = Number((await db((kn) => kn.raw('SELECT @@innodb_ft_min_token_size AS n')))[0][0].n);
  t.equal(min, 3, 'the server uses the default minimum token size (the terms below are chosen for it)');
  const q = async (term: string) => names(await call('GET', `/api/v1/leads?sort=fullName&q=${encodeURIComponent(term)}`));
  t.same(await q('glob'), ['Grace Hopper'], 'a word prefix through the FULLTEXT index');
  t.same(await q('GLOBEX corp'), ['Grace Hopper'], 'every term must match, case-insensitively');
  t.same(await q('lobex'), [], 'FULLTEXT matches words from their start (the index answered, not a LIKE)');
  t.same(await q('bletchley'), ['Alan Turing'], 'company name and email are indexed');
  t.same(await q('ob'), ['Grace Hopper'], 'a 2-letter term is a substring search (LIKE)');
  t.same(await q('al'), ['Al Jo', 'Alan Turing'], 'short terms find short words the index does not hold');
  t.same(await q('Al Jo'), ['Al Jo']);
  t.same(await q('alan turing'), ['Alan Turing']);
  t.same(await q('grace@navy.test'), ['Grace Hopper'], 'an email address (punctuation) is matched as a substring');
  t.same(await q('the'), [], 'a stopword goes to LIKE (and matches nothing here)');
  for (const hostile of ["%' OR 1=1 --", '+glob* -grace', '"grace"', '@2 grace', '*', '%', '_', 'gr(ace']) {
    const res = await call('GET', `/api/v1/leads?q=${encodeURIComponent(hostile)}`);
    t.equal(res.statusCode, 200, hostile);
  }
  t.same(await q("%' OR 1=1 --"), []);
  t.same(await q('+glob* -grace'), await q('glob grace'), 'boolean-mode operators are not operators: they only separate words (-grace excludes nothing)');
  t.same(await q('%'), [], 'LIKE wildcards are escaped');
  const explain = await db((kn) => kn.raw("EXPLAIN SELECT id FROM leads WHERE MATCH(full_name, email, company_name) AGAINST ('+glob*' IN BOOLEAN MODE)"));
  t.match(explain[0][0], { type: 'fulltext', key: 'leads_search_ft' }, 'MATCH over the index columns uses the FULLTEXT index');
});

t.test('CSV export streams the filtered list', async (t) => {
  const res = await call('GET', '/api/v1/leads/export.csv?q=grace');
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /text\/csv/);
  const lines = res.body.split('\r\n').filter(Boolean);
  t.equal(lines[0], 'id,fullName,email,phone,companyName,source,status,score,ownerId,notes,createdAt,updatedAt');
  t.equal(lines.length, 2);
  t.match(lines[1], /Grace Hopper,grace@navy\.test,,Globex Corporation,other,new,0,/);
});

t.test('convert without company or deal: a contact from the lead, the lead converted and read-only', async (t) => {
  const lead = await create({ fullName: 'Conv One', email: 'one@conv.test', phone: '+1 555 0100 100', companyName: 'Conv Co' });
  const before = await counts();
  const res = await call('POST', `/api/v1/leads/${lead.id}/convert`, { token: manager, payload: {} });
  t.equal(res.statusCode, 200, res.body);
  const r = res.json();
  t.match(r, { companyId: null, dealId: null, companyReused: false, lead: { status: 'converted', companyId: null, dealId: null, version: 2 } });
  t.equal(r.lead.contactId, r.contactId);
  t.ok(r.lead.convertedAt);
  const contact = (await call('GET', `/api/v1/contacts/${r.contactId}`)).json();
  t.match(contact, { fullName: 'Conv One', email: 'one@conv.test', phone: '15550100100', companyId: null });
  const after = await counts();
  t.same({ ...after }, { ...before, contacts: before.contacts + 1, activity_log: before.activity_log + 2 }, 'one contact; two activity rows');
  t.same(await activity('contact', r.contactId), ['create']);
  t.same(await activity('lead', lead.id), ['create', 'update']);
  for (const [method, url, payload] of [
    ['PATCH', `/api/v1/leads/${lead.id}`, { score: 1, version: 2 }],
    ['DELETE', `/api/v1/leads/${lead.id}`, undefined],
    ['POST', `/api/v1/leads/${lead.id}/convert`, {}],
  ] as const) {
    const refused = await call(method, url, { payload });
    t.equal(refused.statusCode, 409, `${method} ${url}`);
    t.equal(refused.json().code, 'LEAD_CONVERTED');
  }
  t.same(await counts(), after, 'the refusals changed nothing');
});

t.test('convert with createCompany and a deal: a new company, or the live one of that name (any case) reused', async (t) => {
  const stageId = Number((await db((kn) => kn('pipeline_stages').orderBy('position').first('id'))).id);
  const lead = await create({ fullName: 'Conv Two', email: 'two@conv.test', companyName: 'Brand New Ltd', ownerId: managerId });
  const before = await counts();
  const res = await call('POST', `/api/v1/leads/${lead.id}/convert`, {
    payload: { createCompany: true, deal: { title: 'First order', amount: '1500', currency: 'EUR', stageId } },
  });
  t.equal(res.statusCode, 200, res.body);
  const r = res.json();
  t.equal(r.companyReused, false);
  t.match((await call('GET', `/api/v1/companies/${r.companyId}`)).json(), { name: 'Brand New Ltd' });
  t.match((await call('GET', `/api/v1/contacts/${r.contactId}`)).json(), { companyId: r.companyId });
  t.match((await call('GET', `/api/v1/deals/${r.dealId}`)).json(), {
    title: 'First order',
    amount: '1500.00',
    currency: 'EUR',
    stageId,
    companyId: r.companyId,
    contactId: r.contactId,
    ownerId: managerId,
  });
  t.match(r.lead, { status: 'converted', contactId: r.contactId, companyId: r.companyId, dealId: r.dealId });
  const after = await counts();
  t.same(after, { ...before, contacts: before.contacts + 1, companies: before.companies + 1, deals: before.deals + 1, activity_log: before.activity_log + 4 });

  const existing = (await call('POST', '/api/v1/companies', { payload: { name: 'Reuse Me GmbH' } })).json();
  const deletedTwin = (await call('POST', '/api/v1/companies', { payload: { name: 'Gone Inc' } })).json();
  await call('DELETE', `/api/v1/companies/${deletedTwin.id}`);
  const reuse = await create({ fullName: 'Conv Three', companyName: 'reuse me gmbh' });
  const mid = await counts();
  const res2 = await call('POST', `/api/v1/leads/${reuse.id}/convert`, { payload: { createCompany: true } });
  t.equal(res2.statusCode, 200, res2.body);
  t.match(res2.json(), { companyId: existing.id, companyReused: true });
  t.equal((await counts()).companies, mid.companies, 'no company created');
  const gone = await create({ fullName: 'Conv Four', companyName: 'Gone Inc' });
  const res3 = await call('POST', `/api/v1/leads/${gone.id}/convert`, { payload: { createCompany: true } });
  t.equal(res3.statusCode, 200, res3.body);
  t.not(res3.json().companyId, deletedTwin.id, 'a deleted company of that name is not reused');
  t.equal(res3.json().companyReused, false);
});

t.test('a failing convert leaves nothing created and the lead as it was', async (t) => {
  const lead = await create({ fullName: 'Conv Fail', email: 'fail@conv.test', companyName: 'Never Made Co' });
  const before = await counts();
  const bad = await call('POST', `/api/v1/leads/${lead.id}/convert`, {
    payload: { createCompany: true, deal: { title: 'Nope', amount: '10.00', currency: 'EUR', stageId: 999_999 } },
  });
  t.equal(bad.statusCode, 422, bad.body);
  t.equal(bad.json().code, 'INVALID_REFERENCE');
  t.same(await counts(), before, 'no contact, company, deal or activity row');
  t.match((await call('GET', `/api/v1/leads/${lead.id}`)).json(), { status: 'new', contactId: null, version: 1 });
  t.equal((await call('GET', '/api/v1/companies?q=Never')).json().total, 0);
  const noName = await create({ fullName: 'No Company' });
  const missing = await call('POST', `/api/v1/leads/${noName.id}/convert`, { payload: { createCompany: true } });
  t.equal(missing.statusCode, 422);
  t.equal(missing.json().code, 'LEAD_COMPANY_NAME_MISSING');
  for (const payload of [
    { createCompany: false },
    { deal: { title: 'x' } },
    { deal: { title: 'x', amount: '1', currency: 'EUR', stageId: 1, extra: 1 } },
    { other: 1 },
  ]) {
    t.equal((await call('POST', `/api/v1/leads/${noName.id}/convert`, { payload })).statusCode, 400, JSON.stringify(payload));
  }
  const deleted = await create({ fullName: 'Deleted Lead' });
  await call('DELETE', `/api/v1/leads/${deleted.id}`);
  t.equal((await call('POST', `/api/v1/leads/${deleted.id}/convert`, { payload: {} })).statusCode, 404, 'a deleted lead is not converted');
  t.same((await counts()).contacts, before.contacts);
});

t.test('concurrent converts of one lead: exactly one wins, the other is 409 LEAD_CONVERTED', async (t) => {
  for (let round = 0; round < 4; round++) {
    const lead = await create({ fullName: `Race ${round}`, email: `race${round}@conv.test`, companyName: `Race Co ${round}` });
    const before = await counts();
    const answers = await Promise.all([0, 1, 2].map(() => call('POST', `/api/v1/leads/${lead.id}/convert`, { payload: { createCompany: true } })));
    t.same(answers.map((a) => a.statusCode).sort(), [200, 409, 409], answers.map((a) => a.body.slice(0, 120)).join(' | '));
    t.ok(answers.filter((a) => a.statusCode === 409).every((a) => a.json().code === 'LEAD_CONVERTED'));
    const after = await counts();
    t.equal(after.contacts, before.contacts + 1, 'one contact');
    t.equal(after.companies, before.companies + 1, 'one company');
  }
});

t.test('another tenant never sees, changes or converts these leads', async (t) => {
  await makeTenant(ctx, 'crmlead-other');
  const other = (await login(app, 'crmlead-other')).accessToken;
  const lead = await create({ fullName: 'Mine', companyName: 'Mine Co' });
  const as = { token: other, slug: 'crmlead-other' };
  t.equal((await call('GET', `/api/v1/leads/${lead.id}`, as)).statusCode, 404);
  t.equal((await call('PATCH', `/api/v1/leads/${lead.id}`, { ...as, payload: { fullName: 'Hijack', version: 1 } })).statusCode, 404);
  t.equal((await call('DELETE', `/api/v1/leads/${lead.id}`, as)).statusCode, 404);
  t.equal((await call('POST', `/api/v1/leads/${lead.id}/convert`, { ...as, payload: { createCompany: true } })).statusCode, 404);
  t.equal((await call('POST', `/api/v1/leads/${lead.id}/restore`, as)).statusCode, 404);
  t.equal((await call('GET', '/api/v1/leads', as)).json().total, 0);
  t.equal((await call('GET', '/api/v1/leads?token=x', { token: admin, slug: 'crmlead-other' })).statusCode, 401, "this tenant's token is refused there");
  t.match((await call('GET', `/api/v1/leads/${lead.id}`)).json(), { fullName: 'Mine', version: 1, status: 'new' });
});
