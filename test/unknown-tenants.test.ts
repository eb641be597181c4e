/**
 * Unknown tenant names cost no catalog query: each API process keeps the live slugs and
 * custom domains in memory (loaded at start, kept current by the change watcher), so
 * 2,000 requests naming random tenants make well under 300 SELECTs on the server (the
 * server's own `Com_select` counter, on a MariaDB of this test only, so that other test
 * files do not add to it); real tenants keep answering 200 and stay cached; one address
 * naming unknown tenants again and again gets 429 past `SILO_UNKNOWN_TENANT_RATE_LIMIT`
 * per minute. Names created, deleted or given a custom domain by another process (the
 * CLI) reach the API within one poll interval.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { buildApp } from '../src/http/app.js';
import { login, makeTenant, PASSWORD, TEST_JWT_SECRET } from './fixtures/app.js';
import { startDisposableMariaDB } from './fixtures/disposable-mariadb.js';
import { rootKnex, runCli, setupSilo } from './fixtures/env.js';
import { isProblem } from './fixtures/problem.js';

const POLL_MS = 500;
/** "Within one poll interval": the interval, plus the poll's own query and this test's request loop. */
const WITHIN_MS = POLL_MS + 500;
const UNKNOWN_LIMIT = 30;
const FLOOD = 2_000;

const db = await startDisposableMariaDB(t);
const { ctx, env } = await setupSilo(
  t,
  {
    SILO_JWT_SECRET: TEST_JWT_SECRET,
    SILO_LOGIN_RATE_LIMIT: '1000',
    SILO_TENANT_CHANGE_POLL_MS: String(POLL_MS),
    SILO_TENANT_CACHE_TTL_MS: '600000',
    SILO_UNKNOWN_TENANT_RATE_LIMIT: String(UNKNOWN_LIMIT),
  },
  db.url,
);
const root = rootKnex(db.url);
t.teardown(() => root.destroy());
for (const slug of ['real-a', 'real-b', 'doomed']) await makeTenant(ctx, slug);
const app = await buildApp({ ctx });
await app.ready();
t.teardown(() => app.close());
const tokens = new Map<string, string>();
for (const slug of ['real-a', 'real-b']) tokens.set(slug, (await login(app, slug)).accessToken);

/** SELECT statements the server has run so far (all sessions). */
async function comSelect(): Promise<number> {
  const [rows] = (await root.raw("SHOW GLOBAL STATUS LIKE 'Com_select'")) as [Array<{ Value: string }>];
  return Number(rows[0]!.Value);
}

let ipCounter = 0;
/** A fresh client address (198.18.0.0/15, the benchmarking block). */
const nextIp = () => {
  const n = ipCounter++;
  return `198.${18 + ((n >> 16) & 1)}.${(n >> 8) & 255}.${n & 255}`;
};
const unknownSlug = () => `nx-${randomBytes(6).toString('hex')}`;

const me = (headers: Record<string, string>, remoteAddress = nextIp(), token?: string) =>
  app.inject({ url: '/api/v1/auth/me', remoteAddress, headers: token ? { ...headers, authorization: `Bearer ${token}` } : headers });
const realMe = (slug: string, remoteAddress?: string) => me({ 'x-tenant': slug }, remoteAddress, tokens.get(slug));

/** One request naming a random unknown tenant: X-Tenant, a subdomain, or a custom domain. */
const unknownRequest = (i: number, remoteAddress: string) => {
  const slug = unknownSlug();
  const headers: Record<string, string> = i % 4 === 1 ? { host: `${slug}.localhost` } : i % 4 === 3 ? { host: `crm.${slug}.example` } : { 'x-tenant': slug };
  return me(headers, remoteAddress);
};

/** `n` unknown-name requests, 50 at a time, from addresses that each send `perIp` (below the limit). */
async function flood(n: number, perIp: number, between?: () => Promise<void>) {
  const statuses = new Map<string, number>();
  let ip = nextIp();
  for (let i = 0; i < n; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 50); j++) {
      if (j % perIp === 0) ip = nextIp();
      batch.push(unknownRequest(j, ip));
    }
    for (const res of await Promise.all(batch)) {
      const key = `${res.statusCode} ${res.json<{ code: string }>().code}`;
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
    }
    await between?.();
  }
  return Object.fromEntries(statuses);
}

/** Sends `request` until `done(res)` holds (at most 5 s); the answer and the time it took, ms. */
async function until(request: () => ReturnType<typeof me>, done: (res: Awaited<ReturnType<typeof me>>) => boolean) {
  const start = Date.now();
  let res = await request();
  while (!done(res) && Date.now() - start < 5_000) {
    await new Promise((r) => setTimeout(r, 20));
    res = await request();
  }
  return { res, ms: Date.now() - start };
}

t.test(`${FLOOD} requests naming unknown tenants, spread over addresses below the limit, cost well under 300 SELECTs`, async (t) => {
  const before = await comSelect();
  const started = Date.now();
  const statuses = await flood(FLOOD, 10);
  const ms = Date.now() - started;
  const delta = (await comSelect()) - before;
  t.comment(`Com_select delta for ${FLOOD} unknown names: ${delta} (in ${ms} ms, poll interval ${POLL_MS} ms); answers: ${JSON.stringify(statuses)}`);
  t.same(
    Object.keys(statuses).sort(),
    ['404 TENANT_NOT_FOUND', '404 TENANT_REQUIRED'],
    'every answer is a 404 (an unknown custom domain names no tenant), none a 429',
  );
  t.ok(delta < 300, `${delta} SELECTs for ${FLOOD} unknown names (< 300)`);
});

t.test('real tenants keep answering 200 during a flood of unknown names, and stay cached', async (t) => {
  const cost = async () => {
    const before = await comSelect();
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await realMe(i % 2 ? 'real-a' : 'real-b')).statusCode);
    t.same(statuses, Array(20).fill(200), '20 real-tenant requests: 200');
    return (await comSelect()) - before;
  };
  const baseline = await cost();
  const during: number[] = [];
  await flood(FLOOD, 10, async () => {
    during.push((await realMe('real-a')).statusCode, (await realMe('real-b')).statusCode);
  });
  t.ok(during.length >= 80 && during.every((s) => s === 200), `${during.length} real-tenant requests during the flood: all 200`);
  const after = await cost();
  t.comment(`SELECTs of 20 real-tenant requests: ${baseline} before the floods, ${after} after`);
  t.ok(after <= baseline + 2, 'no catalog lookup for the real tenants after the floods (they were not evicted)');
});

t.test('one address naming unknown tenants is answered 429 with Retry-After past the limit; its real tenants still answer', async (t) => {
  const ip = '192.0.2.50';
  const first: string[] = [];
  for (let i = 0; i < UNKNOWN_LIMIT; i++) first.push((await me({ 'x-tenant': unknownSlug() }, ip)).json<{ code: string }>().code);
  t.same(first, Array(UNKNOWN_LIMIT).fill('TENANT_NOT_FOUND'), `the first ${UNKNOWN_LIMIT} in the minute: 404 TENANT_NOT_FOUND`);
  const res = await me({ 'x-tenant': unknownSlug() }, ip);
  const body = isProblem(t, res, 429, 'TOO_MANY_UNKNOWN_TENANTS');
  const retryAfter = Number(res.headers['retry-after']);
  t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After is 1..60 s (${res.headers['retry-after']})`);
  t.equal(body.retryAfter, retryAfter, 'the body repeats it');
  isProblem(t, await me({ host: `${unknownSlug()}.localhost` }, ip), 429, 'TOO_MANY_UNKNOWN_TENANTS');
  t.equal((await realMe('real-a', ip)).statusCode, 200, 'a real tenant still answers that address');
  isProblem(t, await me({ 'x-tenant': unknownSlug() }, '192.0.2.51'), 404, 'TENANT_NOT_FOUND');
});

t.test('a tenant created by the CLI is served within one poll interval, even if asked for just before', async (t) => {
  isProblem(t, await me({ 'x-tenant': 'fresh-one' }), 404, 'TENANT_NOT_FOUND');
  const r = await runCli(['tenants', 'create', 'fresh-one', '--admin-email', 'admin@fresh-one.test', '--admin-password', PASSWORD], env);
  t.equal(r.code, 0, r.stderr);
  const { res, ms } = await until(
    () =>
      app.inject({
        method: 'POST',
        url: '/api/v1/auth/login',
        remoteAddress: nextIp(),
        headers: { 'x-tenant': 'fresh-one' },
        payload: { email: 'admin@fresh-one.test', password: PASSWORD },
      }),
    (res) => res.statusCode === 200,
  );
  t.equal(res.statusCode, 200, res.body);
  t.ok(ms <= WITHIN_MS, `served ${ms} ms after the CLI exited (<= ${WITHIN_MS})`);
});

t.test('a custom domain added by the CLI is served within one poll interval, and answers 404 within one once removed', async (t) => {
  const host = 'crm.real-a.example';
  const viaDomain = () => me({ host }, nextIp(), tokens.get('real-a'));
  t.equal((await viaDomain()).statusCode, 404, 'unknown before');
  const add = await runCli(['tenants', 'domains', 'add', 'real-a', host], env);
  t.equal(add.code, 0, add.stderr);
  const added = await until(viaDomain, (res) => res.statusCode === 200);
  t.equal(added.res.statusCode, 200, added.res.body);
  t.ok(added.ms <= WITHIN_MS, `served ${added.ms} ms after the CLI exited (<= ${WITHIN_MS})`);
  const remove = await runCli(['tenants', 'domains', 'remove', 'real-a', host], env);
  t.equal(remove.code, 0, remove.stderr);
  const removed = await until(viaDomain, (res) => res.statusCode === 404);
  t.equal(removed.res.statusCode, 404, removed.res.body);
  t.ok(removed.ms <= WITHIN_MS, `404 ${removed.ms} ms after the CLI exited (<= ${WITHIN_MS})`);
});

t.test('a tenant deleted by the CLI answers 404 within one poll interval', async (t) => {
  const token = (await login(app, 'doomed')).accessToken;
  t.equal((await me({ 'x-tenant': 'doomed' }, nextIp(), token)).statusCode, 200);
  const r = await runCli(['tenants', 'delete', 'doomed', '--no-backup', '--confirm', 'doomed'], env);
  t.equal(r.code, 0, r.stderr);
  const { res, ms } = await until(
    () => me({ 'x-tenant': 'doomed' }, nextIp(), token),
    (res) => res.statusCode === 404,
  );
  isProblem(t, res, 404, 'TENANT_NOT_FOUND');
  t.ok(ms <= WITHIN_MS, `404 ${ms} ms after the CLI exited (<= ${WITHIN_MS})`);
});
