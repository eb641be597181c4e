/**
 * Bulk actions (`POST /api/v1/{companies,contacts,deals,leads}/bulk`): each action on each
 * resource changes every named row and writes one activity row per row; one failing row
 * among many changes nothing at all (every table of the tenant database has the same rows,
 * count and SHA-256, and no activity row is written) and the 409 lists every failing id;
 * ids are 1 to 500 and distinct; each action needs the roles of its single-row route.
 */
import t from 'tap';
import { addTenantUser } from '../src/provisioning/users-service.js';
import { login, makeTenant, PASSWORD, setupApp } from './fixtures/app.js';
import { databaseDigest } from './fixtures/db-digest.js';
import { rootKnex } from './fixtures/env.js';

const { app, ctx } = await setupApp(t);
const root = rootKnex();
t.teardown(() => root.destroy());
const tenant = await makeTenant(ctx, 'crmbulk');
await addTenantUser(ctx, 'crmbulk', { email: 'm@crmbulk.test', role: 'manager', password: PASSWORD });
await addTenantUser(ctx, 'crmbulk', { email: 's@crmbulk.test', role: 'staff', password: PASSWORD });
const admin = (await login(app, 'crmbulk')).accessToken;
const manager = (await login(app, 'crmbulk', 'm@crmbulk.test')).accessToken;
const staff = (await login(app, 'crmbulk', 's@crmbulk.test')).accessToken;
const stageId = Number((await root(`${tenant.databaseName}.pipeline_stages`).orderBy('position').first('id')).id);
const digest = () => databaseDigest(root, tenant.databaseName);
const tbl = (name: string) => root(`${tenant.databaseName}.${name}`);

const call = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown, token = admin) =>
  app.inject({ method, url, payload: payload as object, headers: { 'x-tenant': 'crmbulk', authorization: `Bearer ${token}` } });
let n = 0;
const BODY: Record<string, () => Record<string, unknown>> = {
  companies: () => ({ name: `Bulk company ${++n}` }),
  contacts: () => ({ fullName: `Bulk contact ${++n}`, email: `c${n}@bulk.test` }),
  deals: () => ({ title: `Bulk deal ${++n}`, amount: '100.00', currency: 'EUR', stageId }),
  leads: () => ({ fullName: `Bulk lead ${++n}`, companyName: `Lead co ${n}` }),
};
const PATCH: Record<string, Record<string, unknown>> = {
  companies: { industry: 'Bulk' },
  contacts: { jobTitle: 'Bulk buyer' },
  deals: { amount: '999.99' },
  leads: { score: 77 },
};
const TABLE: Record<string, string> = { companies: 'companies', contacts: 'contacts', deals: 'deals', leads: 'leads' };
const ENTITY: Record<string, string> = { companies: 'company', contacts: 'contact', deals: 'deal', leads: 'lead' };
const make = async (resource: string, count: number): Promise<number[]> => {
  const ids: number[] = [];
  for (let i = 0; i < count; i++) {
    const res = await call('POST', `/api/v1/${resource}`, BODY[resource]!());
    if (res.statusCode !== 201) throw new Error(`${resource}: ${res.statusCode} ${res.body}`);
    ids.push(res.json().id);
  }
  return ids;
};
const activityCount = async (entity: string, action: string, ids: number[]) =>
  Number((await tbl('activity_log').where({ entity, action }).whereIn('entity_id', ids).count({ n: '*' }).first())?.n);

for (const resource of ['companies', 'contacts', 'deals', 'leads']) {
  t.test(`${resource}: update, delete and restore every named row, one activity row each`, async (t) => {
    const ids = await make(resource, 5);
    const upd = await call('POST', `/api/v1/${resource}/bulk`, { action: 'update', ids, patch: PATCH[resource] }, manager);
    t.equal(upd.statusCode, 200, upd.body);
    t.same(upd.json(), { action: 'update', count: 5 });
    const [column, value] = Object.entries(PATCH[resource]!)[0]!;
    const snake = column.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    const rows = await tbl(TABLE[resource]!).whereIn('id', ids).select(snake, 'version');
    t.ok(
      rows.every((r: any) => String(r[snake]) === String(value) && r.version === 2),
      'every row patched, version bumped',
    );
    t.equal(await activityCount(ENTITY[resource]!, 'update', ids), 5);
    const del = await call('POST', `/api/v1/${resource}/bulk`, { action: 'delete', ids });
    t.same(del.json(), { action: 'delete', count: 5 }, del.body);
    t.equal(Number((await tbl(TABLE[resource]!).whereIn('id', ids).whereNotNull('deleted_at').count({ n: '*' }).first())?.n), 5);
    t.equal(await activityCount(ENTITY[resource]!, 'delete', ids), 5);
    const res = await call('POST', `/api/v1/${resource}/bulk`, { action: 'restore', ids });
    t.same(res.json(), { action: 'restore', count: 5 }, res.body);
    t.equal(Number((await tbl(TABLE[resource]!).whereIn('id', ids).whereNull('deleted_at').count({ n: '*' }).first())?.n), 5);
    t.equal(await activityCount(ENTITY[resource]!, 'restore', ids), 5);
  });
}

t.test('bulk delete of companies cascades to their contacts, as the single delete does', async (t) => {
  const [a, b] = await make('companies', 2);
  const contact = (await call('POST', '/api/v1/contacts', { fullName: 'Cascaded', companyId: a })).json();
  const res = await call('POST', '/api/v1/companies/bulk', { action: 'delete', ids: [a, b] });
  t.equal(res.statusCode, 200, res.body);
  t.not((await tbl('contacts').where({ id: contact.id }).first()).deleted_at, null, 'the contact is deleted with its company');
  t.equal(await activityCount('contact', 'delete', [contact.id]), 1, 'and the cascade is logged');
});

t.test('one failing row among many: 409 BULK_FAILED lists every failing id, nothing changed, no activity', async (t) => {
  const companies = await make('companies', 30);
  await call('DELETE', `/api/v1/companies/${companies[7]}`);
  const before = await digest();
  const missing = 9_999_999;
  const del = await call('POST', '/api/v1/companies/bulk', { action: 'delete', ids: [...companies, missing] });
  t.equal(del.statusCode, 409, del.body);
  t.equal(del.json().code, 'BULK_FAILED');
  t.match(del.headers['content-type'], /problem\+json/);
  t.same(
    del.json().failures.map((f: any) => [f.id, f.code]),
    [
      [companies[7], 'COMPANY_NOT_FOUND'],
      [missing, 'COMPANY_NOT_FOUND'],
    ],
  );
  t.same(await digest(), before, 'every table unchanged (the 29 deletable rows too, and the activity log)');

  // A unique conflict: two rows cannot take one name.
  const upd = await call('POST', '/api/v1/companies/bulk', { action: 'update', ids: companies.slice(0, 3), patch: { name: 'Same Name' } });
  t.equal(upd.statusCode, 409);
  t.same(
    upd.json().failures.map((f: any) => [f.id, f.code]),
    [
      [companies[1], 'COMPANY_NAME_TAKEN'],
      [companies[2], 'COMPANY_NAME_TAKEN'],
    ],
  );
  const restore = await call('POST', '/api/v1/companies/bulk', { action: 'restore', ids: [companies[7], companies[8]] });
  t.same(
    restore.json().failures.map((f: any) => [f.id, f.code]),
    [[companies[8], 'NOT_DELETED']],
    'restoring a live row fails',
  );
  const deals = await make('deals', 4);
  const badRef = await call('POST', '/api/v1/deals/bulk', { action: 'update', ids: deals, patch: { stageId: 9_999_999 } });
  t.equal(badRef.statusCode, 409);
  t.same(
    badRef.json().failures.map((f: any) => f.code),
    ['INVALID_REFERENCE', 'INVALID_REFERENCE', 'INVALID_REFERENCE', 'INVALID_REFERENCE'],
    'an invalid reference fails every row, each listed',
  );
  const contacts = await make('contacts', 3);
  const badCompany = await call('POST', '/api/v1/contacts/bulk', { action: 'update', ids: contacts, patch: { companyId: companies[7] } });
  t.equal(badCompany.json().failures.length, 3, 'a deleted company is no reference');
  const leads = await make('leads', 4);
  t.equal((await call('POST', `/api/v1/leads/${leads[2]}/convert`, {})).statusCode, 200);
  const mid = await digest();
  for (const [action, patch] of [
    ['delete', undefined],
    ['update', { score: 5 }],
  ] as const) {
    const res = await call('POST', '/api/v1/leads/bulk', { action, ids: leads, patch });
    t.equal(res.statusCode, 409, action);
    t.same(
      res.json().failures.map((f: any) => [f.id, f.code]),
      [[leads[2], 'LEAD_CONVERTED']],
      `${action}: a converted lead is read-only`,
    );
  }
  t.same(await digest(), mid, 'nothing changed by any failed bulk');
});

t.test('ids: 1 to 500, distinct; patch for update only, validated as the PATCH is', async (t) => {
  const before = await digest();
  const many = Array.from({ length: 501 }, (_, i) => 8_000_000 + i);
  for (const [what, body] of [
    ['501 ids', { action: 'delete', ids: many }],
    ['no ids', { action: 'delete', ids: [] }],
    ['duplicates', { action: 'delete', ids: [1, 2, 1] }],
    ['bad id', { action: 'delete', ids: ['x'] }],
    ['unknown action', { action: 'archive', ids: [1] }],
    ['update without patch', { action: 'update', ids: [1] }],
    ['empty patch', { action: 'update', ids: [1], patch: {} }],
    ['delete with patch', { action: 'delete', ids: [1], patch: { name: 'x' } }],
    ['invalid patch field', { action: 'update', ids: [1], patch: { country: 'Germany' } }],
    ['unknown patch field', { action: 'update', ids: [1], patch: { version: 3 } }],
    ['extra field', { action: 'delete', ids: [1], extra: true }],
  ] as const) {
    const res = await call('POST', '/api/v1/companies/bulk', body);
    t.equal(res.statusCode, 400, `${what}: ${res.body.slice(0, 200)}`);
    t.equal(res.json().code, 'VALIDATION_FAILED');
  }
  const res500 = await call('POST', '/api/v1/companies/bulk', { action: 'delete', ids: many.slice(0, 500) });
  t.equal(res500.statusCode, 409, '500 ids are accepted (and here all missing)');
  t.equal(res500.json().failures.length, 500, 'every one listed');
  t.same(await digest(), before);
  const ok500 = await make('leads', 500);
  const all = await call('POST', '/api/v1/leads/bulk', { action: 'update', ids: ok500, patch: { status: 'contacted' } });
  t.same(all.json(), { action: 'update', count: 500 }, '500 rows in one request');
});

t.test('each action needs the roles of its single-row route; staff cannot bulk at all', async (t) => {
  const ids = await make('companies', 2);
  const before = await digest();
  for (const action of ['delete', 'restore', 'update'] as const) {
    const body = { action, ids, ...(action === 'update' ? { patch: { industry: 'X' } } : {}) };
    t.equal((await call('POST', '/api/v1/companies/bulk', body, staff)).statusCode, 403, `staff ${action}`);
    if (action !== 'update') t.equal((await call('POST', '/api/v1/companies/bulk', body, manager)).statusCode, 403, `manager ${action}`);
  }
  t.equal((await call('POST', '/api/v1/contacts/bulk', { nonsense: true }, staff)).statusCode, 403, 'roles come before validation');
  t.same(await digest(), before);
  t.equal((await call('POST', '/api/v1/companies/bulk', { action: 'update', ids, patch: { industry: 'X' } }, manager)).statusCode, 200);
});

t.test("another tenant's ids are not found there", async (t) => {
  await makeTenant(ctx, 'crmbulk-other');
  const other = (await login(app, 'crmbulk-other')).accessToken;
  const ids = await make('deals', 2);
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/deals/bulk',
    payload: { action: 'delete', ids },
    headers: { 'x-tenant': 'crmbulk-other', authorization: `Bearer ${other}` },
  });
  t.equal(res.statusCode, 409);
  t.same(
    res.json().failures.map((f: any) => f.code),
    ['DEAL_NOT_FOUND', 'DEAL_NOT_FOUND'],
  );
  t.equal(Number((await tbl('deals').whereIn('id', ids).whereNull('deleted_at').count({ n: '*' }).first())?.n), 2);
});
