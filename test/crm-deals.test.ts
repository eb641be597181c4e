/**
 * Deals and pipeline stages through the API: stage CRUD and its guard, money validation
 * and exact expected revenue, references, roles, filters/sort, optimistic locking,
 * move/win/lose, soft delete and restore, idempotent creates, stats against the rows,
 * activity rows in the change's transaction, and tenant isolation.
 */
import type { Knex } from 'knex';
import t from 'tap';
import { createDealsService } from '../src/crm/deals.js';
import { addTenantUser } from '../src/provisioning/users-service.js';
import { login, makeTenant, PASSWORD, setupApp } from './fixtures/app.js';

const { app, ctx } = await setupApp(t);
const tenant = await makeTenant(ctx, 'crmdl');
const managerUser = await addTenantUser(ctx, 'crmdl', { email: 'm@crmdl.test', role: 'manager', password: PASSWORD });
const staffUser = await addTenantUser(ctx, 'crmdl', { email: 's@crmdl.test', role: 'staff', password: PASSWORD });
const retired = await addTenantUser(ctx, 'crmdl', { email: 'gone@crmdl.test', role: 'staff', password: PASSWORD });
const admin = (await login(app, 'crmdl')).accessToken;
const manager = (await login(app, 'crmdl', 'm@crmdl.test')).accessToken;
const staff = (await login(app, 'crmdl', 's@crmdl.test')).accessToken;
const db = <T>(fn: (kn: Knex) => Promise<T>) => ctx.admin.withTenantDatabase(tenant, fn);
await db((kn) => kn('users').where({ id: retired.id }).update({ active: false }));

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';
type Opts = { token?: string; payload?: unknown; headers?: Record<string, string>; slug?: string };
const call = (method: Method, url: string, o: Opts = {}) =>
  app.inject({
    method,
    url,
    payload: o.payload as object,
    headers: { 'x-tenant': o.slug ?? 'crmdl', authorization: `Bearer ${o.token ?? admin}`, ...o.headers },
  });
const created = async (payload: Record<string, unknown>, token = admin) => {
  const res = await call('POST', '/api/v1/deals', { token, payload });
  if (res.statusCode !== 201) throw new Error(`create failed: ${res.statusCode} ${res.body}`);
  return res.json();
};
const count = async (table: string, where: Record<string, unknown> = {}) => Number((await db((kn) => kn(table).where(where).count({ n: '*' }).first()))?.n);
const changesOf = (raw: unknown) => (typeof raw === 'string' ? JSON.parse(raw) : raw) as Record<string, { old: unknown; new: unknown }>;

const stageList = (await call('GET', '/api/v1/pipeline-stages', { token: staff })).json().data as Array<{ id: number; name: string }>;
const stage = Object.fromEntries(stageList.map((s) => [s.name, s.id])) as Record<string, number>;
const acme = (await call('POST', '/api/v1/companies', { payload: { name: 'Acme' } })).json();
const globex = (await call('POST', '/api/v1/companies', { payload: { name: 'Globex' } })).json();
const ada = (await call('POST', '/api/v1/contacts', { payload: { companyId: acme.id, fullName: 'Ada', email: 'ada@acme.test' } })).json();
const hank = (await call('POST', '/api/v1/contacts', { payload: { companyId: globex.id, fullName: 'Hank', email: 'hank@globex.test' } })).json();
const base = { title: 'Base deal', amount: '100', currency: 'EUR', stageId: stage.Prospecting! };

t.test('stages: every role lists them in position order; admins create, update with a version, delete unused ones', async (t) => {
  t.same(
    stageList.map((s) => s.name),
    ['Prospecting', 'Qualification', 'Proposal', 'Negotiation', 'Won', 'Lost'],
  );
  const one = await call('GET', `/api/v1/pipeline-stages/${stage.Proposal}`, { token: staff });
  t.match(one.json(), { name: 'Proposal', position: 3, probability: 50, version: 1 });
  t.equal((await call('GET', '/api/v1/pipeline-stages/999999')).json().code, 'STAGE_NOT_FOUND');

  t.equal(
    (await call('POST', '/api/v1/pipeline-stages', { token: manager, payload: { name: 'Demo', probability: 30 } })).statusCode,
    403,
    'managers cannot create',
  );
  const demo = await call('POST', '/api/v1/pipeline-stages', { payload: { name: 'Demo', probability: 30 } });
  t.equal(demo.statusCode, 201, demo.body);
  t.match(demo.json(), { name: 'Demo', position: 7, probability: 30, version: 1 }, 'appended after the last stage');
  const dup = await call('POST', '/api/v1/pipeline-stages', { payload: { name: 'Demo', position: 9, probability: 1 } });
  t.equal(dup.statusCode, 409);
  t.equal(dup.json().code, 'STAGE_NAME_TAKEN');
  for (const payload of [
    { name: 'X', probability: 101 },
    { name: 'X', probability: -1 },
    { name: 'X', probability: 2.5 },
    { name: '', probability: 1 },
    { name: 'x'.repeat(101), probability: 1 },
    { name: 'X', probability: 1, position: 1.5 },
    { name: 'X' },
  ]) {
    t.equal((await call('POST', '/api/v1/pipeline-stages', { payload })).statusCode, 400, JSON.stringify(payload));
  }

  const id = demo.json().id;
  t.equal((await call('PATCH', `/api/v1/pipeline-stages/${id}`, { payload: { probability: 35 } })).json().code, 'VERSION_REQUIRED');
  t.equal((await call('PATCH', `/api/v1/pipeline-stages/${id}`, { token: manager, payload: { probability: 35, version: 1 } })).statusCode, 403);
  const upd = await call('PATCH', `/api/v1/pipeline-stages/${id}`, { payload: { probability: 35, position: 0, version: 1 } });
  t.equal(upd.statusCode, 200, upd.body);
  t.match(upd.json(), { probability: 35, position: 0, version: 2 });
  t.equal((await call('GET', '/api/v1/pipeline-stages')).json().data[0].name, 'Demo', 'position orders the list');
  t.equal((await call('PATCH', `/api/v1/pipeline-stages/${id}`, { payload: { probability: 40, version: 1 } })).json().code, 'VERSION_CONFLICT');
  t.equal((await call('PATCH', `/api/v1/pipeline-stages/${id}`, { payload: { name: 'Won', version: 2 } })).json().code, 'STAGE_NAME_TAKEN');

  t.equal((await call('DELETE', `/api/v1/pipeline-stages/${id}`, { token: manager })).statusCode, 403);
  t.equal((await call('DELETE', `/api/v1/pipeline-stages/${id}`)).statusCode, 204);
  t.equal((await call('GET', `/api/v1/pipeline-stages/${id}`)).statusCode, 404);
  const acts = await db((kn) => kn('activity_log').where({ entity: 'pipeline_stage', entity_id: id }).orderBy('id').select('action', 'changes'));
  t.same(
    acts.map((a: any) => a.action),
    ['create', 'update', 'delete'],
  );
  t.same(changesOf(acts[1].changes).probability, { old: 30, new: 35 });
});

t.test('create: amount normalised to 2 places, expectedRevenue exact, owner defaults to the creator', async (t) => {
  const res = await call('POST', '/api/v1/deals', {
    token: staff,
    payload: {
      title: 'Big one',
      amount: '1200',
      currency: 'EUR',
      stageId: stage.Proposal,
      companyId: acme.id,
      contactId: ada.id,
      expectedCloseDate: '2030-06-15',
    },
  });
  t.equal(res.statusCode, 201, res.body);
  const d = res.json();
  t.match(d, {
    title: 'Big one',
    amount: '1200.00',
    currency: 'EUR',
    stageId: stage.Proposal,
    companyId: acme.id,
    contactId: ada.id,
    ownerId: staffUser.id,
    expectedCloseDate: '2030-06-15',
    status: 'open',
    expectedRevenue: '600.00',
    version: 1,
    deletedAt: null,
  });
  t.same((await call('GET', `/api/v1/deals/${d.id}`, { token: staff })).json(), d, 'GET answers the same view');
  const cases: Array<[string, string, string]> = [
    ['1234.5', 'Prospecting', '123.45'],
    ['0.01', 'Qualification', '0.00'],
    ['0.02', 'Qualification', '0.01'],
    ['9999999999999.99', 'Negotiation', '7499999999999.99'],
    ['0.10', 'Won', '0.10'],
    ['500', 'Lost', '0.00'],
  ];
  for (const [amount, name, revenue] of cases) {
    const x = await created({ ...base, title: `Revenue ${amount}`, amount, stageId: stage[name], ownerId: null });
    t.equal(x.expectedRevenue, revenue, `${amount} in ${name}`);
    t.equal(x.ownerId, null, 'null means no owner');
  }
});

t.test('bad input gets 400 problem+json and creates nothing', async (t) => {
  const before = await count('deals');
  const bad: Array<Record<string, unknown>> = [
    { amount: '-5' },
    { amount: '1.234' },
    { amount: 1200 },
    { amount: '12345678901234' },
    { amount: '1e3' },
    { amount: ' 12' },
    { amount: '' },
    { currency: 'EURO' },
    { currency: 'eur' },
    { currency: 'ABC' },
    { currency: 'EU' },
    { expectedCloseDate: '2030-02-30' },
    { expectedCloseDate: '15/06/2030' },
    { expectedCloseDate: '0999-01-01' },
    { status: 'pending' },
    { title: '' },
    { title: 'x'.repeat(201) },
    { stageId: 'one' },
    { stageId: -1 },
    { extra: 1 },
  ];
  for (const change of bad) {
    const res = await call('POST', '/api/v1/deals', { payload: { ...base, ...change } });
    t.equal(res.statusCode, 400, JSON.stringify(change));
    t.equal(res.json().code, 'VALIDATION_FAILED');
    t.match(res.headers['content-type'], /application\/problem\+json/);
  }
  const currency = (await call('POST', '/api/v1/deals', { payload: { ...base, currency: 'EURO' } })).json();
  t.match(currency.errors[0], { path: 'body.currency' }, 'the field is named');
  t.equal(await count('deals'), before);
});

t.test('references: unknown stage, dead or foreign company, dead contact, inactive owner are 422 INVALID_REFERENCE naming the field', async (t) => {
  const gone = (await call('POST', '/api/v1/companies', { payload: { name: 'Gone' } })).json();
  t.equal((await call('DELETE', `/api/v1/companies/${gone.id}`)).statusCode, 204);
  const goneContact = (await call('POST', '/api/v1/contacts', { payload: { fullName: 'Gone', email: 'gone@x.test' } })).json();
  t.equal((await call('DELETE', `/api/v1/contacts/${goneContact.id}`)).statusCode, 204);
  // A company of another tenant: ids are per database, so make one that does not exist here.
  await makeTenant(ctx, 'crmdl-b');
  const otherAdmin = (await login(app, 'crmdl-b')).accessToken;
  let foreign: { id: number } = { id: 0 };
  while (foreign.id <= (await db((kn) => kn('companies').max({ m: 'id' }).first()))!.m) {
    foreign = (await call('POST', '/api/v1/companies', { slug: 'crmdl-b', token: otherAdmin, payload: { name: `B ${foreign.id}` } })).json();
  }
  const before = await count('deals');
  const activityBefore = await count('activity_log', { entity: 'deal' });
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ stageId: 999999 }, 'stageId'],
    [{ companyId: gone.id }, 'companyId'],
    [{ companyId: foreign.id }, 'companyId'],
    [{ contactId: goneContact.id }, 'contactId'],
    [{ contactId: 999999 }, 'contactId'],
    [{ ownerId: retired.id }, 'ownerId'],
    [{ ownerId: 999999 }, 'ownerId'],
    [{ companyId: acme.id, contactId: hank.id }, 'contactId'],
  ];
  for (const [change, field] of cases) {
    const res = await call('POST', '/api/v1/deals', { payload: { ...base, ...change } });
    t.equal(res.statusCode, 422, JSON.stringify(change));
    t.equal(res.json().code, 'INVALID_REFERENCE');
    t.equal(res.json().errors[0].path, `body.${field}`);
    t.match(res.json().detail, field);
  }
  t.equal(await count('deals'), before, 'nothing created');
  t.equal(await count('activity_log', { entity: 'deal' }), activityBefore, 'nothing logged');
  const d = await created({ ...base, companyId: acme.id, contactId: ada.id });
  const moveCompany = await call('PATCH', `/api/v1/deals/${d.id}`, { payload: { companyId: globex.id, version: 1 } });
  t.equal(moveCompany.statusCode, 422, 'the contact must work for the new company');
  t.equal(moveCompany.json().errors[0].path, 'body.companyId');
  t.equal((await call('PATCH', `/api/v1/deals/${d.id}`, { payload: { companyId: globex.id, contactId: hank.id, version: 1 } })).statusCode, 200);
});

t.test('roles: staff create and read; managers update, move, win, lose; admins delete and restore', async (t) => {
  const d = await created({ ...base, title: 'Roles' }, staff);
  const tries: Array<[string, Method, string, unknown, Record<string, number>]> = [
    ['list', 'GET', '/api/v1/deals', undefined, { staff: 200, manager: 200, admin: 200 }],
    ['get', 'GET', `/api/v1/deals/${d.id}`, undefined, { staff: 200, manager: 200, admin: 200 }],
    ['stats', 'GET', '/api/v1/deals/stats', undefined, { staff: 200, manager: 200, admin: 200 }],
    ['patch', 'PATCH', `/api/v1/deals/${d.id}`, { title: 'Roles 2' }, { staff: 403, manager: 200, admin: 200 }],
    ['move', 'POST', `/api/v1/deals/${d.id}/move`, { stageId: stage.Qualification }, { staff: 403, manager: 200, admin: 200 }],
    ['win', 'POST', `/api/v1/deals/${d.id}/win`, {}, { staff: 403, manager: 200, admin: 200 }],
    ['lose', 'POST', `/api/v1/deals/${d.id}/lose`, {}, { staff: 403, manager: 200, admin: 200 }],
  ];
  for (const [what, method, url, payload, expected] of tries) {
    for (const [role, token] of [
      ['staff', staff],
      ['manager', manager],
      ['admin', admin],
    ] as const) {
      const { version } = (await call('GET', `/api/v1/deals/${d.id}`)).json();
      const res = await call(method, url, { token, payload: payload === undefined ? undefined : { ...(payload as object), version } });
      t.equal(res.statusCode, expected[role], `${role} ${what}`);
    }
  }
  for (const token of [staff, manager]) t.equal((await call('DELETE', `/api/v1/deals/${d.id}`, { token })).statusCode, 403, 'only admins delete');
  t.equal((await call('DELETE', `/api/v1/deals/${d.id}`)).statusCode, 204);
  for (const token of [staff, manager]) t.equal((await call('POST', `/api/v1/deals/${d.id}/restore`, { token })).statusCode, 403, 'only admins restore');
  t.equal((await call('POST', `/api/v1/deals/${d.id}/restore`)).statusCode, 200);
  t.equal((await call('POST', '/api/v1/deals', { token: staff, payload: base })).statusCode, 201, 'staff create');
  t.equal((await call('GET', '/api/v1/deals?includeDeleted=true', { token: manager })).statusCode, 403, 'includeDeleted is for admins');
  t.equal((await app.inject({ url: '/api/v1/deals', headers: { 'x-tenant': 'crmdl' } })).statusCode, 401, 'a token is needed');
});

t.test('list: filters, title search, sort allow-list, pagination', async (t) => {
  const rows: Array<[string, string, string, string, string]> = [
    ['Filter alpha', '99.50', 'Prospecting', '2031-01-10', 'open'],
    ['Filter bravo', '100.00', 'Proposal', '2031-01-31', 'open'],
    ['Filter charlie', '1000', 'Proposal', '2031-02-01', 'open'],
    ['Filter delta', '250.25', 'Negotiation', '2031-03-15', 'lost'],
  ];
  for (const [title, amount, name, expectedCloseDate, status] of rows)
    await created({ title, amount, currency: 'USD', stageId: stage[name], expectedCloseDate, status, ownerId: managerUser.id });
  const titles = async (query: string) => {
    const res = await call('GET', `/api/v1/deals?q=Filter&${query}`, { token: staff });
    t.equal(res.statusCode, 200, `${query}: ${res.body}`);
    return res.json().data.map((d: any) => d.title.replace('Filter ', ''));
  };
  t.same(await titles('sort=amount'), ['alpha', 'bravo', 'delta', 'charlie'], 'amounts sort as numbers');
  t.same(await titles('sort=-amount'), ['charlie', 'delta', 'bravo', 'alpha']);
  t.same(await titles('sort=-expectedCloseDate'), ['delta', 'charlie', 'bravo', 'alpha']);
  t.same(await titles('sort=title'), ['alpha', 'bravo', 'charlie', 'delta']);
  t.same(await titles(`stageId=${stage.Proposal}&sort=title`), ['bravo', 'charlie']);
  t.same(await titles('status=lost'), ['delta']);
  t.same(await titles(`ownerId=${managerUser.id}&sort=title`), ['alpha', 'bravo', 'charlie', 'delta']);
  t.same(await titles(`ownerId=${staffUser.id}`), []);
  t.same(await titles('minAmount=100&maxAmount=250.25&sort=amount'), ['bravo', 'delta'], 'amount bounds are inclusive');
  t.same(await titles('closeAfter=2031-01-31&closeBefore=2031-02-01&sort=title'), ['bravo', 'charlie'], 'date bounds are inclusive');
  t.same(
    (await call('GET', '/api/v1/deals?q=charl')).json().data.map((d: any) => d.title),
    ['Filter charlie'],
  );
  t.same((await call('GET', `/api/v1/deals?q=${encodeURIComponent('%')}`)).json().data, [], 'LIKE wildcards are escaped');
  const p1 = (await call('GET', '/api/v1/deals?q=Filter&sort=title&pageSize=3')).json();
  const p2 = (await call('GET', '/api/v1/deals?q=Filter&sort=title&pageSize=3&page=2')).json();
  t.same([p1.total, p1.data.length, p2.data.length, p2.data[0].title], [4, 3, 1, 'Filter delta']);
  t.match((await call('GET', '/api/v1/deals?q=Filter&sort=title')).json().data[1], {
    amount: '100.00',
    expectedRevenue: '50.00',
    expectedCloseDate: '2031-01-31',
    currency: 'USD',
  });
  for (const query of ['sort=password', 'minAmount=-1', 'maxAmount=1.001', 'closeBefore=tomorrow', 'status=pending', 'stageId=x', 'pageSize=101']) {
    const res = await call('GET', `/api/v1/deals?${query}`);
    t.equal(res.statusCode, 400, query);
  }
  t.equal((await call('GET', '/api/v1/deals?sort=password')).json().code, 'INVALID_SORT');
});

t.test('optimistic locking: a version is required, a stale one is 409, If-Match works, concurrent moves: one wins', async (t) => {
  const d = await created({ ...base, title: 'Locking' });
  t.equal((await call('PATCH', `/api/v1/deals/${d.id}`, { payload: { title: 'L2' } })).statusCode, 428);
  t.equal((await call('POST', `/api/v1/deals/${d.id}/move`, { payload: { stageId: stage.Proposal } })).json().code, 'VERSION_REQUIRED');
  t.equal((await call('POST', `/api/v1/deals/${d.id}/win`, { payload: {} })).statusCode, 428);
  const ok = await call('PATCH', `/api/v1/deals/${d.id}`, { token: manager, payload: { title: 'L2', amount: '150.5', version: 1 } });
  t.match(ok.json(), { title: 'L2', amount: '150.50', expectedRevenue: '15.05', version: 2 });
  const stale = await call('PATCH', `/api/v1/deals/${d.id}`, { payload: { title: 'L3', version: 1 } });
  t.equal(stale.statusCode, 409);
  t.match(stale.json(), { code: 'VERSION_CONFLICT', detail: /current version is 2/ });
  t.equal((await call('POST', `/api/v1/deals/${d.id}/lose`, { payload: { version: 1 } })).json().code, 'VERSION_CONFLICT');
  const viaHeader = await call('POST', `/api/v1/deals/${d.id}/move`, { payload: { stageId: stage.Qualification }, headers: { 'if-match': '"2"' } });
  t.equal(viaHeader.json().version, 3);
  const [a, b] = await Promise.all([
    call('POST', `/api/v1/deals/${d.id}/move`, { payload: { stageId: stage.Proposal, version: 3 } }),
    call('POST', `/api/v1/deals/${d.id}/move`, { payload: { stageId: stage.Negotiation, version: 3 } }),
  ]);
  t.same([a.statusCode, b.statusCode].sort(), [200, 409]);
  const after = (await call('GET', `/api/v1/deals/${d.id}`)).json();
  t.equal(after.version, 4);
  t.equal(after.stageId, (a.statusCode === 200 ? a : b).json().stageId, "the winner's move stands");
  t.equal(await count('activity_log', { entity: 'deal', entity_id: d.id, action: 'update' }), 3, 'one activity row per successful change');
});

t.test('move, win and lose change stage, status and expectedRevenue, each with an activity row', async (t) => {
  const d = await created({ ...base, title: 'Journey', amount: '1000' });
  t.equal(d.expectedRevenue, '100.00');
  const moved = await call('POST', `/api/v1/deals/${d.id}/move`, { token: manager, payload: { stageId: stage.Negotiation, version: 1 } });
  t.match(moved.json(), { stageId: stage.Negotiation, expectedRevenue: '750.00', status: 'open', version: 2 });
  const unknown = await call('POST', `/api/v1/deals/${d.id}/move`, { payload: { stageId: 999999, version: 2 } });
  t.equal(unknown.statusCode, 422);
  t.equal(unknown.json().code, 'INVALID_REFERENCE');
  const won = await call('POST', `/api/v1/deals/${d.id}/win`, { token: manager, payload: { version: 2 } });
  t.match(won.json(), { status: 'won', stageId: stage.Won, expectedRevenue: '1000.00', version: 3 });
  const lost = await call('POST', `/api/v1/deals/${d.id}/lose`, { token: manager, headers: { 'if-match': '3' } });
  t.equal(lost.statusCode, 200, lost.body);
  t.match(lost.json(), { status: 'lost', stageId: stage.Lost, expectedRevenue: '0.00', version: 4 });
  const acts = await db((kn) => kn('activity_log').where({ entity: 'deal', entity_id: d.id }).orderBy('id').select('action', 'user_id', 'changes'));
  t.same(
    acts.map((a: any) => a.action),
    ['create', 'update', 'update', 'update'],
  );
  t.same(
    acts.map((a: any) => Number(a.user_id)),
    [1, managerUser.id, managerUser.id, managerUser.id],
  );
  t.same(changesOf(acts[1].changes), { stageId: { old: stage.Prospecting, new: stage.Negotiation }, expectedRevenue: { old: '100.00', new: '750.00' } });
  t.same(changesOf(acts[2].changes).status, { old: 'open', new: 'won' });
  t.same(changesOf(acts[2].changes).stageId, { old: stage.Negotiation, new: stage.Won });

  // Without a stage named "Won", winning only sets the status.
  const wonStage = (await call('GET', `/api/v1/pipeline-stages/${stage.Won}`)).json();
  t.equal((await call('PATCH', `/api/v1/pipeline-stages/${stage.Won}`, { payload: { name: 'Closed won', version: wonStage.version } })).statusCode, 200);
  const e = await created({ ...base, title: 'No won stage', stageId: stage.Proposal });
  t.match((await call('POST', `/api/v1/deals/${e.id}/win`, { payload: { version: 1 } })).json(), { status: 'won', stageId: stage.Proposal });
  t.equal((await call('PATCH', `/api/v1/pipeline-stages/${stage.Won}`, { payload: { name: 'Won', version: wonStage.version + 1 } })).statusCode, 200);
});

t.test('delete is soft, admin-only, hidden from lists; restore brings it back; a used stage cannot be deleted', async (t) => {
  const s = (await call('POST', '/api/v1/pipeline-stages', { payload: { name: 'Pilot', probability: 60 } })).json();
  const d = await created({ ...base, title: 'Doomed', stageId: s.id });
  const inUse = await call('DELETE', `/api/v1/pipeline-stages/${s.id}`);
  t.equal(inUse.statusCode, 409);
  t.equal(inUse.json().code, 'STAGE_IN_USE');
  t.equal((await call('DELETE', `/api/v1/deals/${d.id}`)).statusCode, 204);
  t.equal((await call('GET', `/api/v1/deals/${d.id}`)).statusCode, 404);
  t.equal((await call('GET', '/api/v1/deals?q=Doomed')).json().total, 0);
  t.equal((await call('GET', '/api/v1/deals?q=Doomed&includeDeleted=true')).json().total, 1);
  t.ok((await call('GET', `/api/v1/deals/${d.id}?includeDeleted=true`)).json().deletedAt, 'admins see it');
  t.equal((await call('GET', `/api/v1/deals/${d.id}?includeDeleted=true`, { token: staff })).statusCode, 403);
  t.equal((await call('PATCH', `/api/v1/deals/${d.id}`, { payload: { title: 'Zombie', version: 2 } })).statusCode, 404, 'a deleted deal cannot change');
  const stillRef = await call('DELETE', `/api/v1/pipeline-stages/${s.id}`);
  t.equal(stillRef.json().code, 'STAGE_IN_USE', 'a deleted deal keeps its stage for a restore');
  const restored = await call('POST', `/api/v1/deals/${d.id}/restore`);
  t.equal(restored.statusCode, 200);
  t.match(restored.json(), { deletedAt: null, version: 3, stageId: s.id, expectedRevenue: '60.00' });
  t.equal((await call('POST', `/api/v1/deals/99999999/restore`)).statusCode, 404);
  const acts = await db((kn) => kn('activity_log').where({ entity: 'deal', entity_id: d.id }).orderBy('id').pluck('action'));
  t.same(acts, ['create', 'delete', 'restore']);
  const unused = (await call('POST', '/api/v1/pipeline-stages', { payload: { name: 'Unused', probability: 5 } })).json();
  t.equal((await call('DELETE', `/api/v1/pipeline-stages/${unused.id}`)).statusCode, 204);
});

t.test('Idempotency-Key: a retry returns the first deal; the key with another body is 422', async (t) => {
  const headers = { 'idempotency-key': 'deal-1' };
  const before = await count('deals');
  const a = await call('POST', '/api/v1/deals', { payload: { ...base, title: 'Once' }, headers });
  const b = await call('POST', '/api/v1/deals', { payload: { ...base, title: 'Once' }, headers });
  t.same([a.statusCode, b.statusCode], [201, 201]);
  t.equal(b.headers['idempotent-replayed'], 'true');
  t.same(b.json(), a.json());
  t.equal(await count('deals'), before + 1);
  const c = await call('POST', '/api/v1/deals', { payload: { ...base, title: 'Twice' }, headers });
  t.equal(c.statusCode, 422);
  t.equal(c.json().code, 'IDEMPOTENCY_KEY_REUSED');
  const bad = await call('POST', '/api/v1/deals', { payload: { ...base, stageId: 999999 }, headers: { 'idempotency-key': 'deal-2' } });
  t.equal(bad.statusCode, 422);
  t.equal(await count('idempotency_keys', { idem_key: 'deal-2' }), 0, 'a failed create leaves no key behind');
});

t.test("activity rows are written in the change's transaction: a rollback or a failed log write leaves nothing", async (t) => {
  const before = await count('deals');
  const logged = await count('activity_log', { entity: 'deal' });
  await db(async (kn) => {
    const trx = await kn.transaction();
    const d = await createDealsService(kn, { userId: 1, role: 'admin' }).create({ ...base, amount: '1.00', title: 'Rolled back' }, trx);
    t.equal(Number((await trx('activity_log').where({ entity: 'deal', entity_id: d.id }).count({ n: '*' }).first())?.n), 1, 'logged inside the transaction');
    await trx.rollback();
  });
  t.equal(await count('deals'), before);
  t.equal(await count('activity_log', { entity: 'deal' }), logged);

  const d = await created({ ...base, title: 'Half done' });
  await db((kn) => kn.raw('RENAME TABLE activity_log TO activity_log_away'));
  try {
    const res = await call('POST', `/api/v1/deals/${d.id}/win`, { payload: { version: 1 } });
    t.equal(res.statusCode, 500);
  } finally {
    await db((kn) => kn.raw('RENAME TABLE activity_log_away TO activity_log'));
  }
  t.match(
    (await call('GET', `/api/v1/deals/${d.id}`)).json(),
    { status: 'open', stageId: stage.Prospecting, version: 1 },
    'the change rolled back with the log write',
  );
});

t.test('stats: counts and per-currency sums by stage and status, live deals only, match the rows', async (t) => {
  // Every live deal of this tenant, summed here independently of the service.
  const live: any[] = [];
  for (let p = 1; ; p++) {
    const r = (await call('GET', `/api/v1/deals?pageSize=100&page=${p}`)).json();
    live.push(...r.data);
    if (live.length >= r.total) break;
  }
  const sum = (ds: any[]) => {
    const m: Record<string, bigint> = {};
    for (const x of ds) m[x.currency] = (m[x.currency] ?? 0n) + BigInt(x.amount.replace('.', ''));
    return Object.fromEntries(
      Object.entries(m)
        .sort()
        .map(([c, v]) => [c, `${v / 100n}.${String(v % 100n).padStart(2, '0')}`]),
    );
  };
  const stats = (await call('GET', '/api/v1/deals/stats', { token: staff })).json();
  t.same(
    stats.byStage.map((s: any) => s.stageId),
    (await call('GET', '/api/v1/pipeline-stages')).json().data.map((s: any) => s.id),
    'every stage, in pipeline order',
  );
  for (const s of stats.byStage) {
    const mine = live.filter((d) => d.stageId === s.stageId);
    t.same({ count: s.count, amountSum: s.amountSum }, { count: mine.length, amountSum: sum(mine) }, `stage ${s.name}`);
  }
  t.same(
    stats.byStatus.map((s: any) => s.status),
    ['open', 'won', 'lost'],
  );
  for (const s of stats.byStatus) {
    const mine = live.filter((d) => d.status === s.status);
    t.same({ count: s.count, amountSum: s.amountSum }, { count: mine.length, amountSum: sum(mine) }, `status ${s.status}`);
  }
  t.same(stats.total, { count: live.length, amountSum: sum(live) });

  // A fresh tenant with known figures: sums are exact and a deleted deal does not count.
  const b = (await login(app, 'crmdl-b')).accessToken;
  const bStages = Object.fromEntries((await call('GET', '/api/v1/pipeline-stages', { slug: 'crmdl-b', token: b })).json().data.map((s: any) => [s.name, s.id]));
  const mk = async (amount: string, currency: string, name: string, status = 'open') =>
    (
      await call('POST', '/api/v1/deals', { slug: 'crmdl-b', token: b, payload: { title: `B ${amount}`, amount, currency, stageId: bStages[name], status } })
    ).json();
  await mk('0.10', 'EUR', 'Proposal');
  await mk('0.20', 'EUR', 'Proposal');
  await mk('9999999999999.99', 'EUR', 'Proposal');
  await mk('5', 'USD', 'Proposal');
  await mk('7.77', 'EUR', 'Won', 'won');
  const dead = await mk('1000', 'EUR', 'Proposal');
  t.equal((await call('DELETE', `/api/v1/deals/${dead.id}`, { slug: 'crmdl-b', token: b })).statusCode, 204);
  const bs = (await call('GET', '/api/v1/deals/stats', { slug: 'crmdl-b', token: b })).json();
  t.same(
    bs.byStage.find((s: any) => s.name === 'Proposal'),
    { stageId: bStages.Proposal, name: 'Proposal', position: 3, count: 4, amountSum: { EUR: '10000000000000.29', USD: '5.00' } },
  );
  t.same(
    bs.byStage.find((s: any) => s.name === 'Prospecting'),
    { stageId: bStages.Prospecting, name: 'Prospecting', position: 1, count: 0, amountSum: {} },
  );
  t.same(bs.byStatus, [
    { status: 'open', count: 4, amountSum: { EUR: '10000000000000.29', USD: '5.00' } },
    { status: 'won', count: 1, amountSum: { EUR: '7.77' } },
    { status: 'lost', count: 0, amountSum: {} },
  ]);
  t.same(bs.total, { count: 5, amountSum: { EUR: '10000000000008.06', USD: '5.00' } });
});

t.test("isolation: tenant B's token and ids never reach tenant A's deals", async (t) => {
  const b = (await login(app, 'crmdl-b')).accessToken;
  const d = await created({ ...base, title: 'Secret' });
  const bMax = Number(
    (await ctx.admin.withTenantDatabase((await ctx.catalog.tenants.findBySlug('crmdl-b'))!, (kn) => kn('deals').max({ m: 'id' }).first()))?.m ?? 0,
  );
  t.ok(d.id > bMax, 'the id does not exist in B');
  t.equal((await call('GET', `/api/v1/deals/${d.id}`, { token: b })).json().code, 'TOKEN_TENANT_MISMATCH', "B's token is refused by A");
  const asB = { slug: 'crmdl-b', token: b };
  t.equal((await call('GET', `/api/v1/deals/${d.id}`, asB)).statusCode, 404);
  t.equal((await call('PATCH', `/api/v1/deals/${d.id}`, { ...asB, payload: { title: 'Hijack', version: 1 } })).statusCode, 404);
  t.equal((await call('POST', `/api/v1/deals/${d.id}/move`, { ...asB, payload: { stageId: 1, version: 1 } })).statusCode, 404);
  t.equal((await call('POST', `/api/v1/deals/${d.id}/win`, { ...asB, payload: { version: 1 } })).statusCode, 404);
  t.equal((await call('DELETE', `/api/v1/deals/${d.id}`, asB)).statusCode, 404);
  t.notOk((await call('GET', '/api/v1/deals?q=Secret', asB)).json().data.length);
  t.match((await call('GET', `/api/v1/deals/${d.id}`)).json(), { title: 'Secret', version: 1, deletedAt: null }, 'unchanged');
});
