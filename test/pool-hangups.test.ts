/**
 * Hung-up clients cannot pin the tenant pools, and the pool budget holds whatever the
 * clients and the operators do. Over a real HTTP server on loopback, clients hang up at
 * random moments (in the middle of their request, right after sending it, on the first
 * byte of the answer) while tenants are suspended, resumed and evicted at random moments,
 * and MySQL's own processlist is sampled every few ms: the open tenant connections never
 * pass SILO_POOL_MAX_CONNECTIONS (nor SILO_POOL_MAX_PER_TENANT for one account), and
 * afterwards every tenant signs in. A request that cannot get a connection within
 * SILO_POOL_ACQUIRE_TIMEOUT_MS is answered 503 POOL_EXHAUSTED with Retry-After, and a
 * handler whose client hung up keeps its connection (counted in the budget) until its
 * query ends and runs to its end.
 */
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import pLimit from 'p-limit';
import mysql from 'mysql2/promise';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import type { Tenant } from '../src/catalog/index.js';
import { loadConfig, parseMysqlUrl } from '../src/config.js';
import { createContext } from '../src/context.js';
import { buildApp } from '../src/http/app.js';
import { resumeTenant, suspendTenant } from '../src/provisioning/tenants-service.js';
import { makeTenant, PASSWORD, setupApp } from './fixtures/app.js';
import { MYSQL_URL, rootKnex } from './fixtures/env.js';
import { sampleProcesslist } from './fixtures/processlist-sampler.js';

const MAX_PER_TENANT = 2;
const BUDGET = 6;
const ACQUIRE_TIMEOUT_MS = 3_000;
/** How long a test client waits for an answer before it calls the server stuck, ms. */
const CLIENT_TIMEOUT_MS = 8_000;

const { app, ctx, names, env } = await setupApp(t, {
  SILO_POOL_MAX_CONNECTIONS: String(BUDGET),
  SILO_POOL_MAX_PER_TENANT: String(MAX_PER_TENANT),
  SILO_POOL_ACQUIRE_TIMEOUT_MS: String(ACQUIRE_TIMEOUT_MS),
  SILO_TENANT_CHANGE_POLL_MS: '0',
});
const root = rootKnex();
t.teardown(() => root.destroy());
await app.listen({ port: 0, host: '127.0.0.1' });
const port = (app.server.address() as AddressInfo).port;

const provision = pLimit(4);
const tenants: Tenant[] = await Promise.all(Array.from({ length: 12 }, (_, i) => provision(() => makeTenant(ctx, `hang-${String(i).padStart(2, '0')}`))));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A normal request that waits for its answer ('timeout' after `timeoutMs`). */
function send(
  p: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
  timeoutMs = CLIENT_TIMEOUT_MS,
): Promise<Answer | 'timeout'> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: '127.0.0.1',
      port: p,
      method,
      path,
      headers: body ? { ...headers, 'content-type': 'application/json' } : headers,
      agent: false,
    });
    const timer = setTimeout(() => {
      req.destroy();
      resolve('timeout');
    }, timeoutMs);
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text });
      });
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(body);
  });
}

const loginBody = (slug: string) => JSON.stringify({ email: `admin@${slug}.test`, password: PASSWORD });
const login = (p: number, slug: string, timeoutMs?: number) => send(p, 'POST', '/api/v1/auth/login', { 'x-tenant': slug }, loginBody(slug), timeoutMs);
const describe = (a: Answer | 'timeout') => (a === 'timeout' ? 'no answer (timeout)' : `${a.status} ${a.body.slice(0, 160)}`);

/** Ways a client hangs up. */
type HangUp = 'mid-request' | 'after-request' | 'mid-response';

/**
 * Sends a raw HTTP/1.1 request over TCP and destroys the socket: in the middle of the
 * request (headers sent, body not all), `delayMs` after the whole request, or on the first
 * byte of the answer. Resolves once the socket is gone.
 */
function hangUp(
  p: number,
  how: HangUp,
  method: string,
  path: string,
  headers: Record<string, string>,
  body = '',
  delayMs: number | Promise<unknown> = 0,
): Promise<void> {
  return new Promise((resolve) => {
    const sock = connect(p, '127.0.0.1');
    const bound = setTimeout(() => sock.destroy(), CLIENT_TIMEOUT_MS);
    sock.on('close', () => {
      clearTimeout(bound);
      resolve();
    });
    sock.on('error', () => undefined);
    const head =
      `${method} ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n` +
      Object.entries({ ...headers, ...(body ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}) })
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('') +
      '\r\n';
    sock.on('connect', () => {
      if (how === 'mid-request') {
        sock.write(body ? head + body.slice(0, Math.floor(body.length / 2)) : head.slice(0, Math.floor(head.length / 2)));
        setTimeout(() => sock.destroy(), typeof delayMs === 'number' ? delayMs : 0);
        return;
      }
      sock.write(head + body);
      if (how === 'mid-response') sock.once('data', () => sock.destroy());
      else if (typeof delayMs === 'number') setTimeout(() => sock.destroy(), delayMs);
      else void delayMs.finally(() => sock.destroy());
    });
  });
}

/** Waits (at most 10 s) until no request holds a lease: the handlers of hung-up clients have all returned. */
async function settled(a: FastifyInstance): Promise<void> {
  const until = Date.now() + 10_000;
  while (Date.now() < until && (a.tenantConnections.stats() as { heldLeases?: number }).heldLeases !== 0) await sleep(20);
}

/** Reads a metric's samples from `/metrics` text: name (with labels) -> value. */
async function metrics(a: FastifyInstance): Promise<Map<string, number>> {
  const res = await a.inject({ url: '/metrics' });
  const out = new Map<string, number>();
  for (const line of res.body.split('\n')) {
    const m = /^(silo_tenant_[a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}
const sumOf = (m: Map<string, number>, name: string) => [...m].filter(([k]) => k === name || k.startsWith(`${name}{`)).reduce((a, [, v]) => a + v, 0);

t.test('48 logins over 8 tenants whose client hangs up before the answer leave all 8 able to sign in', async (t) => {
  const eight = tenants.slice(0, 8);
  const sampler = sampleProcesslist({ prefix: names.prefix });
  await sampler.ready();
  await Promise.all(
    Array.from({ length: 48 }, (_, i) => {
      const slug = eight[i % 8]!.slug;
      return hangUp(port, 'after-request', 'POST', '/api/v1/auth/login', { 'x-tenant': slug }, loginBody(slug), Math.floor(Math.random() * 30));
    }),
  );
  await settled(app);
  const answers = await Promise.all(eight.map((tenant) => login(port, tenant.slug)));
  const seen = await sampler.stop();
  const failed = eight.map((tenant, i) => [tenant.slug, answers[i]!] as const).filter(([, a]) => a === 'timeout' || a.status !== 200);
  t.same(
    failed.map(([slug, a]) => `${slug}: ${describe(a)}`),
    [],
    `all 8 tenants sign in afterwards (${8 - failed.length} of 8 did)`,
  );
  t.ok(seen.total <= BUDGET, `at most ${BUDGET} tenant connections on the server at any of ${seen.samples} samples (max ${seen.total})`);
});

t.test(`clients hanging up at random, suspensions and evictions over 12 tenants never pass ${BUDGET} connections`, async (t) => {
  const tokens = new Map(tenants.map((tenant) => [tenant.slug, app.signAccessToken({ aud: 'tenant', sub: '1', tid: tenant.id, role: 'admin' })]));
  const sampler = sampleProcesslist({ prefix: names.prefix });
  await sampler.ready();
  const deadline = Date.now() + 15_000;
  const outcomes = new Map<string, number>();
  const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);

  // Operators: suspend a random tenant, resume it a moment later (its pool closes on suspend).
  let loadDone = false;
  let suspensions = 0;
  // Two operators, each over its own half of the tenants.
  const operator = (mine: Tenant[]) =>
    (async () => {
      for (let i = 0; i < 40 && !loadDone && Date.now() < deadline; i++) {
        const slug = pick(mine).slug;
        await suspendTenant(ctx, slug, 'test');
        suspensions++;
        await sleep(10 + Math.random() * 80);
        await resumeTenant(ctx, slug, 'test');
        await sleep(Math.random() * 40);
      }
    })();
  const operators = [operator(tenants.slice(0, 6)), operator(tenants.slice(6))];

  const limit = pLimit(24);
  try {
    await Promise.all(
      Array.from({ length: 360 }, () =>
        limit(async () => {
          if (Date.now() > deadline) return count('skipped (time bound)');
          const slug = pick(tenants).slug;
          const isLogin = Math.random() < 0.35;
          const [method, path, headers, body] = isLogin
            ? (['POST', '/api/v1/auth/login', { 'x-tenant': slug }, loginBody(slug)] as const)
            : (['GET', '/api/v1/auth/me', { 'x-tenant': slug, authorization: `Bearer ${tokens.get(slug)}` }, ''] as const);
          const r = Math.random();
          if (r < 0.25) {
            const a = await send(port, method, path, headers, body || undefined);
            const code = a === 'timeout' ? 'timeout' : `${a.status} ${(JSON.parse(a.body) as { code?: string }).code ?? ''}`.trim();
            return count(`answered: ${code}`);
          }
          const how: HangUp = r < 0.45 ? 'mid-request' : r < 0.75 ? 'after-request' : 'mid-response';
          await hangUp(port, how, method, path, headers, body, Math.floor(Math.random() * 40));
          count(`hung up ${how}`);
        }),
      ),
    );
  } finally {
    loadDone = true;
    await Promise.all(operators);
  }
  for (const tenant of tenants) await resumeTenant(ctx, tenant.slug, 'test');
  await settled(app);

  const answers = await Promise.all(tenants.map((tenant) => login(port, tenant.slug)));
  const seen = await sampler.stop();
  const stats = app.tenantConnections.stats();
  t.comment(`outcomes ${JSON.stringify(Object.fromEntries(outcomes))}; ${suspensions} suspensions; ${JSON.stringify(stats)}`);
  t.comment(`${seen.samples} PROCESSLIST samples: max ${seen.total} tenant connections (${seen.perUser} for one account); budget ${BUDGET}`);

  const failed = tenants.map((tenant, i) => [tenant.slug, answers[i]!] as const).filter(([, a]) => a === 'timeout' || a.status !== 200);
  t.same(
    failed.map(([slug, a]) => `${slug}: ${describe(a)}`),
    [],
    `every tenant signs in afterwards (${12 - failed.length} of 12 did)`,
  );
  const bad = [...outcomes.keys()].filter((k) => k.startsWith('answered') && !/^answered: (200|403 TENANT_SUSPENDED|503 POOL_EXHAUSTED)$/.test(k));
  t.same(bad, [], 'clients that waited got 200, 403 (suspended) or 503 POOL_EXHAUSTED, never a stuck or broken answer');
  t.ok(suspensions >= 5, `tenants were suspended during the load (${suspensions})`);
  t.ok(stats.evictions > 0, `idle connections were changed to other tenants during the load (${stats.evictions})`);
  t.ok(seen.samples >= 50, `PROCESSLIST sampled every few ms (${seen.samples} samples)`);
  t.ok(seen.total <= BUDGET, `at most ${BUDGET} tenant connections on the server at any sample (max ${seen.total})`);
  t.ok(seen.perUser <= MAX_PER_TENANT, `at most ${MAX_PER_TENANT} per tenant account (max ${seen.perUser})`);
  const m = await metrics(app);
  const peak = m.get('silo_tenant_connections_peak');
  t.ok(peak !== undefined && peak >= 1 && peak <= BUDGET, `silo_tenant_connections_peak on /metrics is within the budget (${peak})`);
  t.ok(stats.openConnections <= BUDGET, `at most ${BUDGET} connections open afterwards (${stats.openConnections})`);
});

t.test('a busy handler whose client hung up keeps its pool; waiters past the timeout get 503 POOL_EXHAUSTED with Retry-After', async (t) => {
  // A second API process over the same catalog with room for one connection of one tenant.
  const tinyTimeout = 400;
  const ctx2 = createContext(
    loadConfig({ ...env, SILO_POOL_MAX_CONNECTIONS: '1', SILO_POOL_MAX_PER_TENANT: '1', SILO_POOL_ACQUIRE_TIMEOUT_MS: String(tinyTimeout) }),
    pino({ level: 'silent' }),
  );
  const app2 = await buildApp({ ctx: ctx2 });
  t.teardown(async () => {
    await app2.close();
    await ctx2.close();
  });
  await app2.listen({ port: 0, host: '127.0.0.1' });
  const port2 = (app2.server.address() as AddressInfo).port;
  const [a, b] = [tenants[10]!, tenants[11]!];
  const refreshTokens = async () => Number((await root.raw('SELECT COUNT(*) AS n FROM ??.refresh_tokens', [a.databaseName]))[0][0].n);
  const before = await refreshTokens();
  // Only app2 uses A's and B's accounts from here on.
  await app.tenantConnections.drop(a.id);
  await app.tenantConnections.drop(b.id);
  const sampler = sampleProcesslist({ users: [a.dbUser, b.dbUser] });
  await sampler.ready();
  const server = parseMysqlUrl(MYSQL_URL);
  const locker = await mysql.createConnection({ host: server.host, port: server.port, user: server.user, password: server.password });
  t.teardown(() => locker.end());
  try {
    // A's users table is locked: A's login handler blocks in its first query, holding A's only connection.
    await locker.query('LOCK TABLES ??.?? WRITE', [a.databaseName, 'users']);
    const blocked = (async () => {
      const blockedBy = Date.now() + 5_000;
      for (;;) {
        const [rows] = await root.raw("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ? AND STATE LIKE '%lock%'", [a.dbUser]);
        if (Number((rows as Array<{ n: number }>)[0]!.n) > 0) return true;
        if (Date.now() > blockedBy) return false;
        await sleep(10);
      }
    })();
    // The client hangs up while its handler is in a query.
    await hangUp(port2, 'after-request', 'POST', '/api/v1/auth/login', { 'x-tenant': a.slug }, loginBody(a.slug), blocked);
    t.ok(await blocked, "A's login handler is blocked in its query when its client hangs up");

    // Waiting for A's (only) connection: 503 past the timeout.
    const started = Date.now();
    const sameTenant = await login(port2, a.slug, 5_000);
    t.match(
      sameTenant === 'timeout' ? sameTenant : { status: sameTenant.status, code: (JSON.parse(sameTenant.body) as { code?: string }).code },
      { status: 503, code: 'POOL_EXHAUSTED' },
      `a wait for a connection ends in 503 POOL_EXHAUSTED (${describe(sameTenant)})`,
    );
    if (sameTenant !== 'timeout') {
      t.ok(Number(sameTenant.headers['retry-after']) >= 1, `with Retry-After (${String(sameTenant.headers['retry-after'])})`);
      t.match(sameTenant.headers['content-type'], /application\/problem\+json/, 'as problem+json');
      t.ok(Date.now() - started < tinyTimeout + 2_000, `after about SILO_POOL_ACQUIRE_TIMEOUT_MS (${Date.now() - started} ms)`);
    }
    // Waiting for a pool slot: A's pool is held by its running handler, so B waits, then 503.
    const other = await login(port2, b.slug, 5_000);
    t.match(
      other === 'timeout' ? other : { status: other.status, code: (JSON.parse(other.body) as { code?: string }).code },
      { status: 503, code: 'POOL_EXHAUSTED' },
      `a wait for a pool slot ends in 503 POOL_EXHAUSTED (${describe(other)})`,
    );
    if (other !== 'timeout') t.ok(Number(other.headers['retry-after']) >= 1, `with Retry-After (${String(other.headers['retry-after'])})`);
    // Suspending A closes its pool; while A's handler runs, that pool still counts.
    await suspendTenant(ctx2, a.slug, 'test');
    await app2.tenantConnections.drop(a.id);
    const afterDrop = await login(port2, b.slug, 5_000);
    t.match(
      afterDrop === 'timeout' ? afterDrop : { status: afterDrop.status },
      { status: 503 },
      `a dropped pool still in use still counts against the budget (${describe(afterDrop)})`,
    );
    await resumeTenant(ctx2, a.slug, 'test');
  } finally {
    await locker.query('UNLOCK TABLES');
  }
  // A's handler finishes its work (its client is gone), then its lease frees the budget for B.
  const doneBy = Date.now() + 5_000;
  while ((await refreshTokens()) === before && Date.now() < doneBy) await sleep(20);
  t.equal(await refreshTokens(), before + 1, 'the hung-up login ran to its end (its refresh token was stored): its pool was not closed under it');
  let signedIn: Answer | 'timeout' = 'timeout';
  for (let i = 0; i < 5; i++) {
    signedIn = await login(port2, b.slug, 5_000);
    if (signedIn !== 'timeout' && signedIn.status !== 503) break;
    await sleep(200);
  }
  t.equal(signedIn === 'timeout' ? 0 : signedIn.status, 200, `B signs in once A's handler returned (${describe(signedIn)})`);
  const again = await login(port2, a.slug, 5_000);
  t.equal(again === 'timeout' ? 0 : again.status, 200, `A signs in again (${describe(again)})`);
  const seen = await sampler.stop();
  t.ok(seen.total <= 1, `at most 1 tenant connection on the server at any of ${seen.samples} samples (max ${seen.total})`);
  const m = await metrics(app2);
  t.ok(
    sumOf(m, 'silo_tenant_pool_exhausted_total') >= 3,
    `503 POOL_EXHAUSTED answers are counted on /metrics (${sumOf(m, 'silo_tenant_pool_exhausted_total')})`,
  );
  t.equal(m.get('silo_tenant_connections_peak'), 1, 'silo_tenant_connections_peak is 1');
});
