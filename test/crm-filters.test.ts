/**
 * List filters of companies, contacts and deals: `createdAfter`/`createdBefore` and
 * `updatedAfter`/`updatedBefore` (ISO 8601 date-times; `...After` inclusive, `...Before`
 * exclusive; after later than before is 400 `INVALID_DATE_RANGE`; a bad date is 400), on
 * rows with fixed timestamps; `sort` on every allowed field, ascending and descending;
 * an unknown sort field is 400 `INVALID_SORT`.
 */
import t from 'tap';
import { COMPANY_SORT } from '../src/crm/companies.js';
import { CONTACT_SORT } from '../src/crm/contacts.js';
import { DEAL_SORT } from '../src/crm/deals.js';
import { login, makeTenant, setupApp } from './fixtures/app.js';
import { rootKnex } from './fixtures/env.js';

const { app, ctx } = await setupApp(t);
const root = rootKnex();
t.teardown(() => root.destroy());
const SLUG = 'filters';
const db = (await makeTenant(ctx, SLUG)).databaseName;
const token = (await login(app, SLUG)).accessToken;
const call = (method: 'GET' | 'POST', url: string, payload?: object) =>
  app.inject({ method, url, payload, headers: { 'x-tenant': SLUG, authorization: `Bearer ${token}` } });

const stage = Number((await root(`${db}.pipeline_stages`).where({ name: 'Prospecting' }).first('id')).id);
// Three of each, created on Jan 1, 2 and 3 at 12:00 UTC, updated on Feb 1, 2 and 3.
const day = (m: number, d: number) => new Date(Date.UTC(2026, m - 1, d, 12, 0, 0));
const made: Record<string, number[]> = { companies: [], contacts: [], deals: [] };
for (const [i, n] of ['Charlie', 'Alpha', 'Bravo'].entries()) {
  const c = (
    await call('POST', '/api/v1/companies', { name: `${n} Co`, industry: ['Retail', 'Energy', 'Software'][i], country: ['FR', 'DE', 'US'][i] })
  ).json();
  const p = (
    await call('POST', '/api/v1/contacts', {
      fullName: `${n} Person`,
      email: `${n.toLowerCase()}@f.test`,
      companyId: c.id,
      jobTitle: ['CTO', 'Buyer', 'Analyst'][i],
    })
  ).json();
  const d = (
    await call('POST', '/api/v1/deals', { title: `${n} deal`, amount: ['300.00', '100.00', '200.00'][i], currency: ['USD', 'EUR', 'GBP'][i], stageId: stage })
  ).json();
  for (const [table, id] of [
    ['companies', c.id],
    ['contacts', p.id],
    ['deals', d.id],
  ] as const) {
    // updated_at has ON UPDATE CURRENT_TIMESTAMP: set it explicitly in the same statement.
    await root(`${db}.${table}`)
      .where({ id })
      .update({ created_at: day(1, i + 1), updated_at: day(2, i + 1) });
    made[table]!.push(id);
  }
}

const ids = async (url: string) => {
  const res = await call('GET', url);
  if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
  return (res.json().data as Array<{ id: number }>).map((r) => r.id);
};

for (const resource of ['companies', 'contacts', 'deals'] as const) {
  t.test(`${resource}: created and updated ranges, bounds documented`, async (t) => {
    const [d1, d2, d3] = made[resource]!;
    const base = `/api/v1/${resource}?sort=createdAt`;
    t.same(await ids(`${base}&createdAfter=2026-01-02T12:00:00Z`), [d2, d3], 'createdAfter is inclusive');
    t.same(await ids(`${base}&createdBefore=2026-01-02T12:00:00Z`), [d1], 'createdBefore is exclusive');
    t.same(await ids(`${base}&createdAfter=2026-01-02T00:00:00Z&createdBefore=2026-01-03T00:00:00Z`), [d2], 'a day (half-open)');
    t.same(await ids(`${base}&createdAfter=2026-01-02T13:00:00%2B01:00`), [d2, d3], 'an offset is honoured (12:00Z)');
    t.same(await ids(`${base}&updatedAfter=2026-02-03T12:00:00.000Z`), [d3], 'updatedAfter is inclusive');
    t.same(await ids(`${base}&updatedBefore=2026-02-03T12:00:00.000Z`), [d1, d2], 'updatedBefore is exclusive');
    t.same(await ids(`${base}&createdAfter=2026-01-02T12:00:00Z&createdBefore=2026-01-02T12:00:00Z`), [], 'after = before: empty');
    const bad = await call('GET', `${base}&createdAfter=2026-01-03T00:00:00Z&createdBefore=2026-01-02T00:00:00Z`);
    t.equal(bad.statusCode, 400);
    t.equal(bad.json().code, 'INVALID_DATE_RANGE');
    const badU = await call('GET', `${base}&updatedAfter=2026-02-03T00:00:00Z&updatedBefore=2026-02-02T00:00:00Z`);
    t.equal(badU.json().code, 'INVALID_DATE_RANGE');
    for (const v of ['2026-01-02', 'yesterday', '2026-13-01T00:00:00Z', '2026-01-02T12:00:00', '1'])
      t.equal((await call('GET', `${base}&createdAfter=${encodeURIComponent(v)}`)).statusCode, 400, `createdAfter=${v}`);
  });
}

/** Expected order of `rows` by `field`, ties broken by id descending as applySort does. */
const SORTS: Array<[string, Record<string, string>]> = [
  ['companies', COMPANY_SORT],
  ['contacts', CONTACT_SORT],
  ['deals', DEAL_SORT],
];
for (const [resource, allowed] of SORTS) {
  t.test(`${resource}: sort on each field, asc and desc; unknown fields 400`, async (t) => {
    const rows = (await call('GET', `/api/v1/${resource}?pageSize=100`)).json().data as Array<Record<string, unknown>>;
    t.equal(rows.length, 3);
    for (const field of Object.keys(allowed)) {
      for (const desc of [false, true]) {
        const key = (r: Record<string, unknown>) => {
          const v = r[field] as string | number | null | undefined;
          return v === null || v === undefined ? '' : field === 'amount' ? Number(v) : String(v).toLowerCase();
        };
        const want = [...rows]
          .sort((a, b) => {
            const x = key(a);
            const y = key(b);
            const c = x < y ? -1 : x > y ? 1 : 0;
            return (desc ? -c : c) || (b.id as number) - (a.id as number);
          })
          .map((r) => r.id);
        t.same(await ids(`/api/v1/${resource}?sort=${desc ? '-' : ''}${field}`), want, `sort=${desc ? '-' : ''}${field}`);
      }
    }
    for (const bad of ['nope', 'deletedAt', '__proto__', 'name;drop', 'a,b,c,d,e,f']) {
      const res = await call('GET', `/api/v1/${resource}?sort=${encodeURIComponent(bad)}`);
      t.equal(res.statusCode, 400, `sort=${bad}`);
      t.equal(res.json().code, 'INVALID_SORT');
    }
  });
}

t.test('the OpenAPI document lists the sort fields and the date filters', async (t) => {
  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
  const params = doc.paths['/api/v1/contacts'].get.parameters as Array<{ name: string; description?: string }>;
  t.match(params.find((p) => p.name === 'sort')?.description, /fullName, email, phone, jobTitle, companyId, createdAt, updatedAt/);
  for (const name of ['createdAfter', 'createdBefore', 'updatedAfter', 'updatedBefore'])
    t.ok(
      params.some((p) => p.name === name),
      name,
    );
});
