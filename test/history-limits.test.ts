/**
 * Bounds on reading history and lists: a tenant admin's statistics window spans at most
 * SILO_TENANT_STATS_MAX_DAYS days (400 `STATS_WINDOW_TOO_LONG`; platform staff are not
 * bound by it) and is rate limited per tenant (429); every list endpoint refuses pages
 * deeper than 10,000 rows (`page x pageSize`, 400 `PAGE_TOO_DEEP`); deep history is read
 * with keyset pagination (`cursor` -> `nextCursor`), which walks every row once, newest
 * first; the OpenAPI document shows `cursor` and `nextCursor`; statistics say their
 * method, and exact ones (raw rows) are refused past 1 h (400 `EXACT_WINDOW_TOO_LONG`).
 */
import t from 'tap';
import { login, makeTenant, platformLogin, setupApp } from './fixtures/app.js';
import { isProblem } from './fixtures/problem.js';
import { setupS3 } from './fixtures/s3.js';

const s3 = await setupS3(t);
const { app, ctx } = await setupApp(t, { ...s3.env, SILO_TENANT_STATS_MAX_DAYS: '31', SILO_TENANT_STATS_RATE_LIMIT: '4' });
const ta = await makeTenant(ctx, 'limits-a');
await makeTenant(ctx, 'limits-b');
const tokA = (await login(app, 'limits-a')).accessToken;
const tokB = (await login(app, 'limits-b')).accessToken;
const as = (slug: string, token: string) => (url: string) => app.inject({ url, headers: { 'x-tenant': slug, authorization: `Bearer ${token}` } });
const getA = as('limits-a', tokA);
const getB = as('limits-b', tokB);
const DAY = 24 * 3600 * 1000;
const iso = (ms: number) => new Date(ms).toISOString();

t.test('tenant stats: a window of 31 days is answered, 32 days is 400 STATS_WINDOW_TOO_LONG; platform staff may ask more', async (t) => {
  const to = Date.now();
  t.equal((await getA(`/api/v1/history/stats?from=${iso(to - 31 * DAY)}&to=${iso(to)}`)).statusCode, 200);
  const p = isProblem(t, await getA(`/api/v1/history/stats?from=${iso(to - 32 * DAY)}&to=${iso(to)}`), 400, 'STATS_WINDOW_TOO_LONG');
  t.match(p.detail, /31 days/);
  const support = await platformLogin(app, ctx, 'support');
  const res = await app.inject({ url: `/platform/v1/history/stats?from=${iso(to - 90 * DAY)}&to=${iso(to)}`, headers: { authorization: `Bearer ${support}` } });
  t.equal(res.statusCode, 200, res.body);
});

t.test('stats say their method; exact=true is answered for 1 h and refused past it with 400 EXACT_WINDOW_TOO_LONG', async (t) => {
  const support = await platformLogin(app, ctx, 'support');
  const get = (q: string) => app.inject({ url: `/platform/v1/history/stats?${q}`, headers: { authorization: `Bearer ${support}` } });
  const to = Date.now();
  const roll = await get(`from=${iso(to - 30 * DAY)}&to=${iso(to)}`);
  t.equal(roll.statusCode, 200, roll.body);
  t.match(roll.json(), { method: 'rollups', latency: { relativeError: 0.005 } });
  const exact = await get(`exact=true&from=${iso(to - 3600_000)}&to=${iso(to)}`);
  t.equal(exact.statusCode, 200, exact.body);
  t.match(exact.json(), { method: 'exact', latency: { relativeError: 0 } });
  const p = isProblem(t, await get(`exact=true&from=${iso(to - 3600_001)}&to=${iso(to)}`), 400, 'EXACT_WINDOW_TOO_LONG');
  t.match(p.detail, /60 minutes/);
  isProblem(t, await get(`userId=1&from=${iso(to - 2 * 3600_000)}&to=${iso(to)}`), 400, 'EXACT_WINDOW_TOO_LONG');
  const doc = (await app.inject('/docs/json')).json<{ paths: Record<string, { get: { description: string } }> }>();
  t.match(doc.paths['/platform/v1/history/stats']!.get.description, /0\.5% relative error/, 'the API description states the percentile error');
});

t.test('tenant stats are rate limited per tenant (SILO_TENANT_STATS_RATE_LIMIT a minute)', async (t) => {
  // One request was spent above, in the window test (two, counting the 400).
  let status = 0;
  for (let i = 0; i < 5 && status !== 429; i++) status = (await getA('/api/v1/history/stats')).statusCode;
  t.equal(status, 429, 'the limit is reached');
  isProblem(t, await getA('/api/v1/history/stats'), 429, 'RATE_LIMITED');
  t.equal((await getB('/api/v1/history/stats')).statusCode, 200, 'another tenant keeps its budget');
});

t.test('every list endpoint: pages deeper than 10,000 rows are 400 PAGE_TOO_DEEP; the last allowed page answers', async (t) => {
  const co = (
    await app.inject({
      method: 'POST',
      url: '/api/v1/companies',
      headers: { 'x-tenant': 'limits-a', authorization: `Bearer ${tokA}` },
      payload: { name: 'Co' },
    })
  ).json();
  const lists = [
    '/api/v1/contacts',
    '/api/v1/companies',
    '/api/v1/deals',
    '/api/v1/users',
    '/api/v1/pipeline-stages',
    '/api/v1/activity',
    `/api/v1/companies/${co.id}/attachments`,
    '/api/v1/history',
  ];
  for (const url of lists) {
    const ok = await getA(`${url}?page=101&pageSize=100`);
    t.not(ok.statusCode >= 500 || ok.json().code === 'PAGE_TOO_DEEP', true, `${url}: offset 10,000 is allowed (${ok.statusCode})`);
    isProblem(t, await getA(`${url}?page=102&pageSize=100`), 400, 'PAGE_TOO_DEEP');
    isProblem(t, await getA(`${url}?page=1000000&pageSize=100`), 400, 'PAGE_TOO_DEEP');
  }
  const support = await platformLogin(app, ctx, 'support');
  isProblem(
    t,
    await app.inject({ url: '/platform/v1/history?page=10001&pageSize=100', headers: { authorization: `Bearer ${support}` } }),
    400,
    'PAGE_TOO_DEEP',
  );
});

t.test('history keyset pagination: cursor -> nextCursor walks every row once, newest first', async (t) => {
  const base = Date.now() - 3600 * 1000;
  const rows = Array.from({ length: 40 }, (_, i) => ({
    // Several rows share a timestamp: the id breaks ties.
    created_at: new Date(base + Math.floor(i / 3) * 1000),
    request_id: `keyset-${i}`,
    tenant_id: ta.id,
    method: 'GET',
    route: '/keyset',
    path: `/keyset/${i}`,
    status: 200,
    duration_ms: 1,
  }));
  await ctx.catalog.knex('request_history').insert(rows);
  const expected = (
    await ctx.catalog
      .knex('request_history')
      .where({ route: '/keyset' })
      .orderBy([
        { column: 'created_at', order: 'desc' },
        { column: 'id', order: 'desc' },
      ])
      .select('id')
  ).map((r) => Number(r.id));
  const seen: number[] = [];
  let cursor: string | null = '';
  let pages = 0;
  while (cursor !== null && pages < 20) {
    const res = await getA(`/api/v1/history?route=/keyset&pageSize=7&from=${iso(base - DAY)}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    t.equal(res.statusCode, 200, res.body);
    const body = res.json<{ data: Array<{ id: number }>; nextCursor: string | null; total: number }>();
    seen.push(...body.data.map((r) => r.id));
    cursor = body.nextCursor;
    pages++;
  }
  t.same(seen, expected, 'every row once, in order');
  isProblem(t, await getA('/api/v1/history?cursor=not-a-cursor'), 400, 'VALIDATION_FAILED');
});

t.test('OpenAPI: history lists take `cursor` and answer `nextCursor`', async (t) => {
  const doc = (await app.inject('/docs/json')).json();
  for (const path of ['/api/v1/history', '/platform/v1/history']) {
    const op = doc.paths[path].get;
    t.ok(
      op.parameters.some((p: { name: string }) => p.name === 'cursor'),
      `${path} documents cursor`,
    );
    t.match(JSON.stringify(op.responses['200']), /nextCursor/, `${path} documents nextCursor`);
    t.match(JSON.stringify(op.parameters), /10,000/, `${path} documents the page bound`);
  }
});
