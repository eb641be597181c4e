/**
 * A real MySQL outage under load: the server that holds the catalog and every tenant
 * database (a disposable MariaDB started by this test, never the shared one) is shut down
 * while clients keep calling the API over HTTP, and started again a few seconds later on
 * the same port and data directory. While it is down every answer is a 503 problem+json
 * with Retry-After (a write whose transaction the shutdown cuts too); no answer is ever a
 * 500 or outlives the request timeout; nothing is printed on stdout; once it is back the
 * same API process serves again, and the request history buffered meanwhile is written,
 * one row per request.
 */
import t from 'tap';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildApp } from '../../src/http/app.js';
import { login, makeTenant, TEST_JWT_SECRET } from '../fixtures/app.js';
import { startDisposableMariaDB } from '../fixtures/disposable-mariadb.js';
import { rootKnex, setupSilo } from '../fixtures/env.js';

const REQUEST_TIMEOUT_MS = 3_000;
/** How long the server stays down once it has exited. */
const OUTAGE_MS = 4_000;
/** Codes an answer may carry while MySQL is unreachable. */
const UNAVAILABLE_CODES = ['DATABASE_UNAVAILABLE', 'CATALOG_UNAVAILABLE', 'TENANT_UNAVAILABLE'];

const db = await startDisposableMariaDB(t);
const { ctx } = await setupSilo(
  t,
  {
    SILO_JWT_SECRET: TEST_JWT_SECRET,
    SILO_LOGIN_RATE_LIMIT: '1000',
    SILO_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    // Tenants looked up before the outage stay cached: their requests reach their own database.
    SILO_TENANT_CACHE_TTL_MS: '600000',
    SILO_HISTORY_FLUSH_MS: '200',
    SILO_HISTORY_BATCH: '100',
  },
  db.url,
);
const root = rootKnex(db.url);
t.teardown(() => root.destroy());
const tenants = ['outage-a', 'outage-b'];
/** A tenant first asked for during the outage: its lookup needs the catalog. */
const COLD = 'outage-c';
const records = new Map<string, { id: number; databaseName: string }>();
for (const slug of [...tenants, COLD]) records.set(slug, await makeTenant(ctx, slug));
const app = await buildApp({ ctx });
// A write whose transaction is still open when the server stops (a route of this test only).
app.post('/api/v1/test-slow-write', { onRequest: (request) => app.identifyTenant(request) }, async (request, reply) => {
  const knex = await app.tenantKnex(request);
  await knex.transaction(async (trx) => {
    await trx('companies').insert({ name: `Slow ${request.id}` });
    await trx.raw('SELECT SLEEP(10)');
  });
  return reply.code(201).send({ written: true });
});
await app.listen({ host: '127.0.0.1', port: 0 });
t.teardown(() => app.close());
const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
// One token per tenant: logins are rate-limited, reads are not. The cold tenant's token is
// signed here, so that nothing looks that tenant up before the outage.
const tokens = new Map<string, string>();
for (const slug of tenants) tokens.set(slug, (await login(app, slug)).accessToken);
tokens.set(COLD, app.signAccessToken({ aud: 'tenant', sub: '1', tid: records.get(COLD)!.id, role: 'admin' }));

type Phase = 'before' | 'stopping' | 'down' | 'starting' | 'after';
let phase: Phase = 'before';

/** What one request got. */
interface Sample {
  id: string;
  tenant: string | null;
  method: string;
  path: string;
  /** Phases when the request was sent and when its answer was read. */
  sent: Phase;
  answered: Phase;
  /** When the request was sent, ms since the load started. */
  at: number;
  ms: number;
  /** 0 when no HTTP answer came (connection error, client timeout). */
  status: number;
  contentType: string | null;
  retryAfter: string | null;
  body: Record<string, unknown> | undefined;
  error?: string;
}

const samples: Sample[] = [];
const loadStart = performance.now();
let seq = 0;
let running = true;

async function send(tenant: string | null, method: 'GET' | 'POST', path: string, body?: unknown): Promise<void> {
  const id = `outage-${++seq}`;
  const sent = phase;
  const started = performance.now();
  const headers: Record<string, string> = { 'x-request-id': id };
  if (tenant) {
    headers['x-tenant'] = tenant;
    headers.authorization = `Bearer ${tokens.get(tenant)}`;
  }
  if (body !== undefined) headers['content-type'] = 'application/json';
  const sample: Sample = {
    id,
    tenant,
    method,
    path,
    sent,
    answered: sent,
    at: started - loadStart,
    ms: 0,
    status: 0,
    contentType: null,
    retryAfter: null,
    body: undefined,
  };
  try {
    // The client gives up well after the server should have answered: a hang shows as a long duration, not a stuck test.
    const res = await fetch(base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS * 3),
    });
    const text = await res.text();
    sample.status = res.status;
    sample.contentType = res.headers.get('content-type');
    sample.retryAfter = res.headers.get('retry-after');
    try {
      sample.body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      sample.body = { text: text.slice(0, 200) };
    }
  } catch (err) {
    sample.error = String(err);
  }
  sample.ms = performance.now() - started;
  sample.answered = phase;
  samples.push(sample);
}

/** One client of a tenant: lists contacts and companies, and now and then creates a company. */
async function tenantClient(tenant: string, n: number): Promise<void> {
  for (let i = 0; running; i++) {
    if (i % 5 === 4) await send(tenant, 'POST', '/api/v1/companies', { name: `Load ${tenant} ${n}-${i}` });
    else await send(tenant, 'GET', i % 2 ? '/api/v1/contacts?pageSize=5' : '/api/v1/companies?pageSize=5');
    await sleep(20);
  }
}

/** A client of the cold tenant: starts once the server is down. */
async function coldClient(): Promise<void> {
  await until('the outage', () => phase === 'down' || !running, 60_000);
  while (running) {
    await send(COLD, 'GET', '/api/v1/contacts?pageSize=5');
    await sleep(50);
  }
}

/** A probe of `/ready` (the catalog): not a recorded route. */
async function readinessClient(): Promise<void> {
  while (running) {
    await send(null, 'GET', '/ready');
    await sleep(100);
  }
}

/** Resolves when `cond` holds (checked every 50 ms). @throws after `timeoutMs` */
async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const ok = (s: Sample) => s.status >= 200 && s.status < 300;
const okAfterRestart = (tenant: string | null) => samples.filter((s) => s.tenant === tenant && s.sent === 'after' && ok(s)).length;

// Everything written on stdout while the load runs (stdout is for data: nothing is expected).
const printed: string[] = [];
const stdoutWrite = process.stdout.write.bind(process.stdout);
process.stdout.write = function (chunk: unknown, ...rest: unknown[]) {
  printed.push(String(chunk));
  return (stdoutWrite as (...a: unknown[]) => boolean)(chunk, ...rest);
};

const clients = [...tenants.flatMap((slug) => [0, 1, 2].map((n) => tenantClient(slug, n))), coldClient(), readinessClient()];
const slowWrites: Array<Promise<void>> = [];
let restartedAt = 0;
let downFor = 0;
try {
  await until('steady successes before the outage', () => tenants.every((slug) => samples.filter((s) => s.tenant === slug && ok(s)).length >= 60), 20_000);
  for (const slug of tenants) slowWrites.push(send(slug, 'POST', '/api/v1/test-slow-write', {}));
  const sleeping = async () =>
    Number((await root('information_schema.PROCESSLIST').where('INFO', 'like', 'SELECT SLEEP%').count({ n: '*' }))[0]!.n) === tenants.length;
  await until('the slow writes inside their transactions', sleeping, 10_000);
  phase = 'stopping';
  const stopAt = performance.now();
  await db.stop();
  phase = 'down';
  await sleep(OUTAGE_MS);
  phase = 'starting';
  await db.start();
  phase = 'after';
  restartedAt = performance.now() - loadStart;
  downFor = performance.now() - stopAt;
  await until('successes for every tenant after the restart', () => [...tenants, COLD, null].every((slug) => okAfterRestart(slug) >= 20), 30_000);
  // A little more steady load, so that the tail is clean.
  await sleep(1_000);
} finally {
  running = false;
  await Promise.all([...clients, ...slowWrites]);
  process.stdout.write = stdoutWrite;
  if (!db.running) await db.start();
}
const recorded = samples.filter((s) => s.path.startsWith('/api/'));
t.comment(`${samples.length} requests (${recorded.length} recorded), server down for ${Math.round(downFor)} ms (shutdown + ${OUTAGE_MS} ms + startup)`);

/** A short description of a sample for failure messages. */
const show = (s: Sample) =>
  `${s.id} ${s.method} ${s.path} ${s.tenant ?? ''} sent ${s.sent} answered ${s.answered} -> ${s.status} ${typeof s.body?.code === 'string' ? s.body.code : ''} in ${Math.round(s.ms)} ms${s.error ? ` (${s.error})` : ''}`;

/** Reasons a sample is not a 503 problem+json saying a dependency is unavailable, with a Retry-After. */
function notUnavailableProblem(s: Sample): string | undefined {
  if (s.status !== 503) return 'status is not 503';
  if (!/^application\/problem\+json/.test(s.contentType ?? '')) return `content-type ${s.contentType}`;
  if (!UNAVAILABLE_CODES.includes(String(s.body?.code))) return `code ${String(s.body?.code)}`;
  if (!/^[1-9]\d*$/.test(s.retryAfter ?? '')) return `Retry-After ${s.retryAfter}`;
  if (s.body?.retryAfter !== Number(s.retryAfter)) return 'retryAfter in the body differs from the header';
  if (s.body?.requestId !== s.id) return 'requestId is not the X-Request-Id sent';
  if (s.body?.status !== 503 || typeof s.body?.detail !== 'string' || typeof s.body?.type !== 'string') return 'not a problem body';
  return undefined;
}

t.test('no answer is a 500 or a transport error, and none outlives the request timeout', (t) => {
  t.same(samples.filter((s) => s.status === 0).map(show), [], 'every request got an HTTP answer');
  t.same(samples.filter((s) => s.status >= 500 && s.status !== 503).map(show), [], 'no 5xx other than 503');
  t.same(samples.filter((s) => s.ms >= REQUEST_TIMEOUT_MS).map(show), [], `every answer came within ${REQUEST_TIMEOUT_MS} ms`);
  const slowest = samples.reduce((m, s) => Math.max(m, s.ms), 0);
  t.comment(`slowest answer: ${Math.round(slowest)} ms`);
  t.end();
});

t.test('while MySQL is down, every answer is a 503 problem+json with Retry-After', (t) => {
  const down = samples.filter((s) => s.sent === 'down' && s.answered === 'down');
  t.ok(down.length >= 50, `${down.length} requests made while the server was down`);
  t.same(
    down.map((s) => [show(s), notUnavailableProblem(s)]).filter(([, why]) => why),
    [],
    'all are 503 problems',
  );
  const codes = (pick: (s: Sample) => boolean) => [...new Set(down.filter(pick).map((s) => String(s.body?.code)))];
  t.same(
    codes((s) => tenants.includes(s.tenant ?? '')),
    ['DATABASE_UNAVAILABLE'],
    'tenants already looked up (still cached): their database is unavailable',
  );
  t.same(
    codes((s) => s.tenant === COLD),
    ['CATALOG_UNAVAILABLE'],
    'a tenant not looked up yet: the catalog is unavailable',
  );
  t.same(
    codes((s) => s.path === '/ready'),
    ['CATALOG_UNAVAILABLE'],
    '/ready: the catalog is unavailable',
  );
  t.ok(
    down.some((s) => s.method === 'POST'),
    'writes were tried during the outage too',
  );
  t.end();
});

t.test('a write whose transaction the shutdown cuts is a 503 problem and leaves nothing behind', async (t) => {
  const cut = samples.filter((s) => s.path === '/api/v1/test-slow-write');
  t.equal(cut.length, tenants.length, 'one cut write per tenant');
  t.same(
    cut.map((s) => [show(s), notUnavailableProblem(s)]).filter(([, why]) => why),
    [],
    'each is a 503 problem',
  );
  t.same([...new Set(cut.map((s) => s.body?.code))], ['DATABASE_UNAVAILABLE'], 'the tenant database is named');
  for (const slug of tenants) {
    const left = await root.withSchema(records.get(slug)!.databaseName).from('companies').where('name', 'like', 'Slow %').pluck('name');
    t.same(left, [], `${slug}: the cut transaction was rolled back`);
  }
});

t.test('nothing is printed on stdout while the server goes down and comes back', (t) => {
  t.same(printed.slice(0, 5), [], `${printed.length} writes to stdout (stdout is for data, logs go to stderr)`);
  t.end();
});

t.test('before the outage everything succeeds; while it stops and starts, answers are successes or 503 problems', (t) => {
  t.same(samples.filter((s) => s.sent === 'before' && s.answered === 'before' && !ok(s)).map(show), [], 'all succeed before');
  const edges = samples.filter(
    (s) => !(s.sent === 'before' && s.answered === 'before') && !(s.sent === 'down' && s.answered === 'down') && !(s.sent === 'after'),
  );
  t.same(
    edges.filter((s) => !ok(s) && notUnavailableProblem(s)).map((s) => [show(s), notUnavailableProblem(s)]),
    [],
    `${edges.length} requests around the stop and the start`,
  );
  t.end();
});

t.test('after the restart the same API process serves every tenant again', (t) => {
  for (const slug of [...tenants, COLD, null]) {
    const after = samples.filter((s) => s.tenant === slug && s.sent === 'after');
    const first = after.find(ok);
    t.ok(first, `${slug ?? '/ready'}: succeeds after the restart`);
    if (first) t.comment(`${slug ?? '/ready'}: first success ${Math.round(first.at - restartedAt)} ms after the server accepted connections again`);
    const firstOk = first ? after.indexOf(first) : after.length;
    t.same(
      after
        .slice(firstOk)
        .filter((s) => !ok(s))
        .map(show),
      [],
      `${slug ?? '/ready'}: no failure after the first success`,
    );
    if (slug && tenants.includes(slug))
      t.ok(
        after.some((s) => s.method === 'POST' && s.status === 201),
        `${slug}: writes succeed again`,
      );
  }
  t.end();
});

t.test('the request history buffered during the outage is written once the catalog is back', async (t) => {
  const recorder = app.historyRecorder!;
  t.ok(recorder.stats.failedFlushes > 0, `flushes failed while the catalog was down (${recorder.stats.failedFlushes}) and rows waited`);
  const k = ctx.catalog.knex;
  const count = async () => Number((await k('request_history').where('request_id', 'like', 'outage-%').count({ n: '*' }))[0]!.n);
  const end = Date.now() + 60_000;
  let n = await count();
  while (n < recorded.length && Date.now() < end) {
    await sleep(250);
    n = await count();
  }
  t.equal(recorder.stats.dropped, 0, 'no row was dropped');
  const rows: Array<{ request_id: string; status: number; error_code: string | null }> = await k('request_history')
    .where('request_id', 'like', 'outage-%')
    .select('request_id', 'status', 'error_code');
  t.equal(rows.length, recorded.length, 'one row per request');
  const byId = new Map(rows.map((r) => [r.request_id, r]));
  t.same(recorded.filter((s) => !byId.has(s.id)).map(show), [], 'no request is missing');
  t.same(recorded.filter((s) => byId.get(s.id)?.status !== s.status).map(show), [], 'each row has the status the client got');
  const down = recorded.filter((s) => s.sent === 'down' && s.answered === 'down');
  t.same(down.filter((s) => byId.get(s.id)?.error_code !== s.body?.code).map(show), [], 'rows of the outage carry the problem code');
  t.ok(
    samples.filter((s) => s.path === '/ready').every((s) => !byId.has(s.id)),
    '/ready is not recorded',
  );
});
