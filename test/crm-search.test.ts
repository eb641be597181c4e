/**
 * `q`: InnoDB FULLTEXT search with a LIKE fallback (src/crm/search.ts). Words of the
 * index size use MATCH ... AGAINST (EXPLAIN shows type `fulltext` on the FULLTEXT index,
 * at 100,000 contacts), shorter words and stopwords use LIKE, boolean operators in the
 * input are plain separators (no error, no widened result), and the results equal a
 * LIKE scan's for the same words.
 */
import type { Knex } from 'knex';
import t from 'tap';
import { parseMysqlUrl } from '../src/config.js';
import { createContactsService } from '../src/crm/contacts.js';
import { fulltextSettings, planSearch } from '../src/crm/search.js';
import { createMysqlKnex } from '../src/lib/knex.js';
import { login, makeTenant, setupApp } from './fixtures/app.js';
import { MYSQL_URL, rootKnex } from './fixtures/env.js';

const started = Date.now();
const { app, ctx } = await setupApp(t);
const root = rootKnex();
t.teardown(() => root.destroy());
const SLUG = 'search';
const tenant = await makeTenant(ctx, SLUG);
const db = tenant.databaseName;
const token = (await login(app, SLUG)).accessToken;
const get = (url: string) => app.inject({ method: 'GET', url, headers: { 'x-tenant': SLUG, authorization: `Bearer ${token}` } });
// A Knex on the tenant database (as root) for EXPLAIN of the service's own query.
const tenantKnex = createMysqlKnex({ ...parseMysqlUrl(MYSQL_URL), database: db }, { min: 0, max: 2 });
t.teardown(() => tenantKnex.destroy());

const FIRST = [
  'Ada',
  'Grace',
  'Alan',
  'Linus',
  'Barbara',
  'Edsger',
  'Donald',
  'Margaret',
  'Ken',
  'Dennis',
  'Frances',
  'John',
  'Radia',
  'Tim',
  'Sophie',
  'Niklaus',
];
const LAST = [
  'Lovelace',
  'Hopper',
  'Turing',
  'Torvalds',
  'Liskov',
  'Dijkstra',
  'Knuth',
  'Hamilton',
  'Thompson',
  'Ritchie',
  'Allen',
  'Backus',
  'Perlman',
  'Berners',
  'Wilson',
  'Wirth',
  'Xylophonist',
];
const JOBS = ['Engineer', 'Buyer', 'Chief Executive', 'Analyst', 'Designer', 'Sales Manager', 'Ops', 'AI Lead'];
const N = 100_000;

/** Contacts whose text has `word` anywhere in a searched column (what LIKE finds). */
async function likeScan(word: string): Promise<number[]> {
  const p = `%${word}%`;
  return (
    await root(`${db}.contacts`)
      .whereNull('deleted_at')
      .where((w) => void w.where('full_name', 'like', p).orWhere('email', 'like', p).orWhere('job_title', 'like', p))
      .orderBy('id')
      .pluck('id')
  ).map(Number);
}
/** Ids the service finds for `q` (all pages of the export query, no pagination limits). */
async function searchIds(q: string): Promise<number[]> {
  const { query } = await createContactsService(tenantKnex, { userId: 1, role: 'admin' }).exportQuery({ q, page: 1, pageSize: 1, sort: 'createdAt' });
  return ((await query) as Array<{ id: number }>).map((r) => Number(r.id)).sort((a, b) => a - b);
}

t.test('planSearch: operators are separators, short words and stopwords go to LIKE', async (t) => {
  const s = await fulltextSettings(tenantKnex);
  t.ok(s.minTokenSize >= 1, `innodb_ft_min_token_size = ${s.minTokenSize}`);
  const std = { minTokenSize: 3, maxTokenSize: 84, stopwords: true };
  t.same(planSearch('ada lovelace', std), { against: '+ada* +lovelace*', like: [] });
  t.same(planSearch('+ada -lovelace* ~"x" (y) <z> @w', std), { against: '+ada* +lovelace*', like: ['x', 'y', 'z', 'w'] });
  t.same(planSearch('al the', std), { against: null, like: ['al', 'the'] });
  t.same(planSearch('the', { ...std, stopwords: false }), { against: '+the*', like: [] });
  t.same(planSearch('%+', std), { against: null, like: ['%+'] }, 'no word: the text itself, literally');
});

t.test(`${N} contacts: FULLTEXT is used (EXPLAIN) and finds what a LIKE scan finds`, async (t) => {
  const t0 = Date.now();
  const BATCH = 5_000;
  for (let start = 0; start < N; start += BATCH) {
    const rows = [];
    for (let i = start; i < start + BATCH; i++) {
      const f = FIRST[i % FIRST.length]!;
      const l = LAST[Math.floor(i / FIRST.length) % LAST.length]!;
      rows.push({ full_name: `${f} ${l} ${i}`, email: `${f}.${l}.${i}@example${i % 7}.test`.toLowerCase(), job_title: JOBS[i % JOBS.length] });
    }
    await root(`${db}.contacts`).insert(rows);
  }
  t.comment(`inserted ${N} contacts in ${Date.now() - t0} ms`);

  const { query } = await createContactsService(tenantKnex, { userId: 1, role: 'admin' }).exportQuery({ q: 'lovelace', page: 1, pageSize: 1 });
  const { sql, bindings } = query.toSQL();
  const [plan] = (await tenantKnex.raw(`EXPLAIN ${sql}`, bindings as readonly Knex.RawBinding[])) as [Array<{ type: string; key: string | null }>];
  t.match(plan, [{ type: 'fulltext', key: 'contacts_search_ftx' }], `EXPLAIN: ${JSON.stringify(plan)}`);

  for (const word of ['lovelace', 'hopp', 'engineer', 'example3', 'xylophonist']) {
    const t1 = Date.now();
    const found = await searchIds(word);
    t.ok(found.length > 0, `${word}: ${found.length} found in ${Date.now() - t1} ms`);
    t.same(found, await likeScan(word), `${word}: the same contacts as LIKE '%${word}%'`);
  }
  // Two words: both must match.
  const both = await searchIds('ada lovelace');
  const ada = new Set(await likeScan('ada'));
  t.same(
    both,
    (await likeScan('lovelace')).filter((id) => ada.has(id)),
    'ada lovelace: contacts with both words',
  );
  // A short word (LIKE fallback) and an indexed one.
  const ai = await searchIds('ai engineer');
  t.same(ai, [], 'no contact is both an AI Lead and an Engineer');
  const aiLead = await searchIds('ai lead');
  t.same(aiLead, await likeScan('ai lead'), 'ai lead (short word by LIKE): same as a LIKE scan');
  t.equal(aiLead.length, N / JOBS.length);
  t.ok(Date.now() - started < 60_000, `whole test in ${Date.now() - started} ms`);
});

t.test('through the API: operators are harmless, short words fall back to LIKE', async (t) => {
  const ops = await get(`/api/v1/contacts?q=${encodeURIComponent('+lovelace -"ada" ~hopper* (@) <>')}&pageSize=1`);
  t.equal(ops.statusCode, 200, ops.body);
  const want = await likeScan('lovelace');
  const adaSet = new Set(await likeScan('ada'));
  const hopperSet = new Set(await likeScan('hopper'));
  t.equal(ops.json().total, want.filter((id) => adaSet.has(id) && hopperSet.has(id)).length, 'every word is required, - and ~ negate nothing');
  const ken = await get('/api/v1/contacts?q=ken&pageSize=1');
  t.equal(ken.json().total, (await likeScan('ken')).length, 'a 3-letter word');
  const ti = await get('/api/v1/contacts?q=ti&pageSize=1');
  t.equal(ti.json().total, (await likeScan('ti')).length, 'a 2-letter word (shorter than the token size) by LIKE');
  const pct = await get(`/api/v1/contacts?q=${encodeURIComponent('%')}&pageSize=1`);
  t.equal(pct.json().total, 0, '% is literal');
  const sql = await get(`/api/v1/contacts?q=${encodeURIComponent("') OR 1=1 -- ")}&pageSize=1`);
  t.equal(sql.statusCode, 200);
  const or1 = new Set(await likeScan('or'));
  t.equal(sql.json().total, (await likeScan('1')).filter((id) => or1.has(id)).length, 'SQL-looking text is only its words: "or" and "1"');
});
