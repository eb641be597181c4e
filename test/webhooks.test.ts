/**
 * Webhooks (issue 16 part 6): CRUD and validation, signed deliveries to a real receiver on
 * loopback (SILO_WEBHOOK_ALLOW_PRIVATE=1) that fails on purpose (500, a timeout, a
 * redirect) until the retry lands, the transactional outbox (a rolled-back change emits
 * nothing), exactly-once sending by two apps sharing one tenant, redelivery, the delivery
 * log, cross-tenant 404s, the address guard against private targets and DNS rebinding,
 * and the retry schedule. Short timeouts and backoff come from the configuration; the
 * test awaits the dispatcher instead of sleeping.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { buildApp } from '../src/http/app.js';
import { createCompaniesService } from '../src/crm/companies.js';
import { deliver } from '../src/webhooks/deliver.js';
import { nextAttemptAt } from '../src/webhooks/schedule.js';
import { isForbiddenAddress, targetProblem } from '../src/webhooks/url-guard.js';
import { WEBHOOK_EVENT_TYPES } from '../src/webhooks/event-types.js';
import { login, makeTenant, PASSWORD, setupApp } from './fixtures/app.js';
import { rootKnex } from './fixtures/env.js';

const TIMEOUT_MS = 300;
const BASE_MS = 40;
const { app, ctx, config } = await setupApp(t, {
  SILO_WEBHOOK_ALLOW_PRIVATE: '1',
  SILO_WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS),
  SILO_WEBHOOK_RETRY_BASE_MS: String(BASE_MS),
  SILO_WEBHOOK_RETRY_MAX_MS: '400',
  SILO_WEBHOOK_SWEEP_MS: '250',
});
const root = rootKnex();
t.teardown(() => root.destroy());
await makeTenant(ctx, 'wh-one');
await makeTenant(ctx, 'wh-two');
const tenantOne = (await ctx.catalog.tenants.findBySlug('wh-one'))!;
const tokens = { one: (await login(app, 'wh-one')).accessToken, two: (await login(app, 'wh-two')).accessToken };

type Slug = 'one' | 'two';
const as = (who: Slug, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object, headers: Record<string, string> = {}, on = app) =>
  on.inject({ method, url: `/api/v1${url}`, payload, headers: { 'x-tenant': `wh-${who}`, authorization: `Bearer ${tokens[who]}`, ...headers } });

/** A receiver on loopback: records every request, verifies its signature with the secret of its URL path, answers with `behave`. */
interface Received {
  path: string;
  eventId: string;
  body: { id: string; type: string; time: string; data: Record<string, unknown> };
  signatureOk: boolean;
}
const received: Received[] = [];
const secrets = new Map<string, string>();
let behave: (r: Received, res: ServerResponse) => void = (_r, res) => res.writeHead(200).end('ok');
const waiters: Array<() => void> = [];
const server = createServer((req: IncomingMessage, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks).toString('utf8');
    const secret = secrets.get(req.url ?? '') ?? '';
    const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(req.headers['silo-signature']));
    const expected = m ? createHmac('sha256', secret).update(`${m[1]}.${raw}`).digest() : Buffer.alloc(32);
    const fresh = m ? Math.abs(Date.now() / 1000 - Number(m[1])) < 300 : false;
    const r: Received = {
      path: req.url ?? '',
      eventId: String(req.headers['silo-event-id']),
      body: JSON.parse(raw) as Received['body'],
      signatureOk: Boolean(m) && fresh && timingSafeEqual(expected, Buffer.from(m![2]!, 'hex')),
    };
    received.push(r);
    behave(r, res);
    for (const w of waiters.splice(0)) w();
  });
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
server.unref();
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

/** Resolves once `cond` holds (checked after each received request), or fails after `ms`. */
function until(cond: () => boolean, ms = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error('condition not met in time')), ms);
    const check = () => {
      if (cond()) {
        clearTimeout(deadline);
        resolve();
      } else waiters.push(check);
    };
    check();
  });
}

async function createHook(who: Slug, path: string, events: string[], on = app) {
  const res = await as(who, 'POST', '/webhooks', { url: `${base}${path}`, events }, {}, on);
  if (res.statusCode !== 201) throw new Error(`create webhook: ${res.statusCode} ${res.body}`);
  const hook = res.json<{ id: number; secret: string; version: number }>();
  secrets.set(path, hook.secret);
  return hook;
}

t.test('CRUD: the secret is shown once, stored encrypted; versions, roles and validation', async (t) => {
  const created = await as('one', 'POST', '/webhooks', { url: 'https://203.0.113.7/hook', events: ['company.created', 'deal.won'] });
  t.equal(created.statusCode, 201, created.body);
  const hook = created.json();
  t.match(hook.secret, /^whsec_[A-Za-z0-9_-]{43}$/, 'the secret is in the create answer');
  t.same(hook.events, ['company.created', 'deal.won']);
  t.equal(hook.active, true);
  const got = await as('one', 'GET', `/webhooks/${hook.id}`);
  const list = await as('one', 'GET', '/webhooks');
  for (const [what, res] of [
    ['get', got],
    ['list', list],
  ] as const) {
    t.equal(res.statusCode, 200);
    t.notOk(res.body.includes(hook.secret) || res.body.includes('secret'), `${what} never shows the secret`);
  }
  const stored = await root(`${tenantOne.databaseName}.webhooks`).where({ id: hook.id }).first('secret_enc');
  t.match(stored.secret_enc, /^v2\./, 'stored encrypted under SILO_SECRET_KEY');
  t.notOk(String(stored.secret_enc).includes(hook.secret.slice(6)), 'not in clear');

  t.equal((await as('one', 'PATCH', `/webhooks/${hook.id}`, { active: false })).statusCode, 428, 'a PATCH needs the version');
  t.equal((await as('one', 'PATCH', `/webhooks/${hook.id}`, { active: false }, { 'if-match': '"7"' })).statusCode, 409, 'a stale version is 409');
  const patched = await as('one', 'PATCH', `/webhooks/${hook.id}`, { active: false, events: ['contact.deleted'] }, { 'if-match': `"${hook.version}"` });
  t.equal(patched.statusCode, 200, patched.body);
  t.match(patched.json(), { active: false, events: ['contact.deleted'], version: hook.version + 1 });
  t.notOk(patched.body.includes('secret'));

  const rotated = await as('one', 'POST', `/webhooks/${hook.id}/rotate-secret`);
  t.equal(rotated.statusCode, 200);
  t.not(rotated.json().secret, hook.secret, 'rotate-secret answers a new secret');

  for (const [events, why] of [
    [['company.exploded'], 'an unknown type'],
    [[], 'no type'],
    [['deal.won', 'deal.won'], 'a repeated type'],
  ] as const) {
    const res = await as('one', 'POST', '/webhooks', { url: 'https://203.0.113.7/', events });
    t.equal(res.statusCode, 400, `events with ${why}: 400`);
  }
  t.ok(WEBHOOK_EVENT_TYPES.includes('lead.converted') && WEBHOOK_EVENT_TYPES.includes('task.created'), 'reserved types are in the registry');
  const doc = (await app.inject('/docs/json')).json();
  t.ok(doc.components.schemas.WebhookEventType.enum.includes('deal.lost'), 'the OpenAPI document lists the event types');

  // A manager is not an admin.
  await as('one', 'POST', '/users', { email: 'manager@wh-one.test', fullName: 'M', role: 'manager', password: PASSWORD });
  const manager = (await login(app, 'wh-one', 'manager@wh-one.test')).accessToken;
  const asManager = await app.inject({ method: 'GET', url: '/api/v1/webhooks', headers: { 'x-tenant': 'wh-one', authorization: `Bearer ${manager}` } });
  t.equal(asManager.statusCode, 403, 'webhooks are for admins');

  t.equal((await as('one', 'DELETE', `/webhooks/${hook.id}`)).statusCode, 204);
  t.equal((await as('one', 'GET', `/webhooks/${hook.id}`)).statusCode, 404, 'gone after delete');
});

t.test('without SILO_WEBHOOK_ALLOW_PRIVATE, private, loopback, link-local and unspecified targets are refused (400)', async (t) => {
  const strict = await buildApp({ ctx: { ...ctx, config: { ...config, webhooks: { ...config.webhooks, allowPrivate: false, sweepMs: 0 } } } });
  t.teardown(() => strict.close());
  for (const url of [
    'http://127.0.0.1:8080/',
    'http://10.1.2.3/',
    'http://172.16.5.4/',
    'http://192.168.0.10/',
    'http://169.254.169.254/latest/meta-data',
    'http://0.0.0.0/',
    'http://[::1]/',
    'http://[::]/',
    'http://[fe80::1]/',
    'http://[fd12:3456::1]/',
    'http://[::ffff:127.0.0.1]/',
    'http://localhost:3000/',
    'ftp://203.0.113.7/',
    'https://user:pw@203.0.113.7/',
    'not a url',
  ]) {
    const res = await as('one', 'POST', '/webhooks', { url, events: ['company.created'] }, {}, strict);
    t.equal(res.statusCode, 400, `${url}: 400 ${res.json().code}`);
    t.notOk(res.body.includes('pw@'), 'the answer does not repeat credentials');
  }
  const ok = await as('one', 'POST', '/webhooks', { url: 'https://203.0.113.7/hook', events: ['company.created'], active: false }, {}, strict);
  t.equal(ok.statusCode, 201, 'a public address is accepted');
  const patch = await as('one', 'PATCH', `/webhooks/${ok.json().id}`, { url: 'http://10.0.0.1/' }, { 'if-match': '"1"' }, strict);
  t.equal(patch.statusCode, 400, 'also refused by an update');
  await as('one', 'DELETE', `/webhooks/${ok.json().id}`);
});

t.test('end to end: signed, retried with backoff after a 500, a timeout and a redirect, then delivered', async (t) => {
  const hook = await createHook('one', '/e2e', ['company.created', 'company.updated']);
  let n = 0;
  behave = (r, res) => {
    if (r.path !== '/e2e') return void res.writeHead(200).end();
    n++;
    if (n === 1) res.writeHead(500).end('boom');
    else if (n === 2) setTimeout(() => res.writeHead(200).end('too late'), TIMEOUT_MS * 3).unref();
    else if (n === 3) res.writeHead(302, { location: `${base}/elsewhere` }).end();
    else res.writeHead(204).end();
  };
  const company = (await as('one', 'POST', '/companies', { name: 'Hooked Co', country: 'de' })).json();
  await until(() => n >= 4);
  await app.webhookDispatcher.idle();
  const mine = received.filter((r) => r.path === '/e2e');
  t.equal(mine.length, 4, 'four attempts reached the receiver (no request to the redirect target)');
  t.notOk(
    received.some((r) => r.path === '/elsewhere'),
    'the redirect was not followed',
  );
  t.ok(
    mine.every((r) => r.signatureOk),
    'every attempt carries a valid Silo-Signature',
  );
  t.equal(new Set(mine.map((r) => r.eventId)).size, 1, 'the same event each time');
  const body = mine[3]!.body;
  t.equal(body.id, mine[3]!.eventId, 'Silo-Event-Id is the body id');
  t.equal(body.type, 'company.created');
  t.ok(!Number.isNaN(Date.parse(body.time)), 'time is ISO 8601');
  const shown = (await as('one', 'GET', `/companies/${company.id}`)).json();
  delete shown.logoUrl;
  t.same(body.data, shown, 'data is the company as the API shows it (without the short-lived logoUrl)');

  const log = (await as('one', 'GET', `/webhooks/${hook.id}/deliveries`)).json();
  const attempts = [...log.data].reverse();
  t.same(
    attempts.map((d: { attempt: number; status: string; statusCode: number | null }) => [d.attempt, d.status, d.statusCode]),
    [
      [1, 'retrying', 500],
      [2, 'retrying', null],
      [3, 'retrying', 302],
      [4, 'succeeded', 204],
    ],
  );
  t.match(attempts[1].error, /no answer within 300 ms/);
  t.match(attempts[2].error, /redirects are not followed/);
  t.notOk(JSON.stringify(log).includes(hook.secret), 'the log shows no secret');
  for (let k = 1; k < attempts.length; k++) {
    // From the end of the failed attempt (its start plus its latency) to the next one's due time.
    const gap = Date.parse(attempts[k].scheduledAt) - (Date.parse(attempts[k - 1].attemptedAt) + attempts[k - 1].latencyMs);
    const min = (Math.min(400, BASE_MS * 2 ** (k - 1)) / 2) * 0.9;
    t.ok(gap >= min, `attempt ${k + 1} was scheduled ${gap} ms after attempt ${k} (backoff at least ${min} ms)`);
  }
  t.ok(
    attempts.every((d: { latencyMs: number | null }) => typeof d.latencyMs === 'number'),
    'latency is recorded',
  );
  behave = (_r, res) => res.writeHead(200).end();
});

t.test('a change that rolls back emits nothing; the same change committed emits one event', async (t) => {
  await createHook('one', '/rollback', ['company.created']);
  const events = () => root(`${tenantOne.databaseName}.webhook_events`).count({ n: '*' }).first();
  const before = Number((await events())!.n);
  const lease = await app.tenantConnections.acquire(tenantOne);
  try {
    const svc = createCompaniesService(lease.knex, { userId: 1, role: 'admin' });
    await t.rejects(
      lease.knex.transaction(async (trx) => {
        await svc.create({ name: 'Never Co' }, trx);
        throw new Error('roll back');
      }),
      /roll back/,
    );
    t.equal(Number((await events())!.n), before, 'no event row after the rollback');
    await lease.knex.transaction(async (trx) => void (await svc.create({ name: 'Committed Co' }, trx)));
    t.equal(Number((await events())!.n), before + 1, 'one event row after the commit');
  } finally {
    lease.release();
  }
  await until(() => received.some((r) => r.path === '/rollback' && r.body.data.name === 'Committed Co'));
  await app.webhookDispatcher.sweep();
  t.notOk(
    received.some((r) => r.body.data?.name === 'Never Co'),
    'the receiver never heard of the rolled-back company',
  );
});

t.test('two apps sharing one tenant send each of 50 events exactly once', async (t) => {
  const other = await buildApp({ ctx });
  t.teardown(() => other.close());
  const hook = await createHook('one', '/once', ['deal.created']);
  const stage = (await as('one', 'GET', '/pipeline-stages')).json().data[0].id;
  await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      as('one', 'POST', '/deals', { title: `Deal ${i}`, amount: '10.00', currency: 'EUR', stageId: stage }, {}, i % 2 ? app : other),
    ),
  );
  await Promise.all([app.webhookDispatcher.sweep(), other.webhookDispatcher.sweep()]);
  await until(() => received.filter((r) => r.path === '/once').length >= 50);
  await Promise.all([app.webhookDispatcher.sweep(), other.webhookDispatcher.sweep()]);
  const ids = received.filter((r) => r.path === '/once').map((r) => r.eventId);
  t.equal(ids.length, 50, '50 requests');
  t.equal(new Set(ids).size, 50, '50 different events: none twice');
  const rows = await root(`${tenantOne.databaseName}.webhook_deliveries`).where({ webhook_id: hook.id }).select('status', 'attempt');
  t.same(
    [...new Set(rows.map((r: { status: string; attempt: number }) => `${r.status}/${r.attempt}`))],
    ['succeeded/1'],
    'every delivery succeeded at its first attempt',
  );
});

t.test('redeliver makes a new attempt; the delivery log is paginated; other tenants get 404', async (t) => {
  const hook = await createHook('one', '/redeliver', ['contact.created']);
  await as('one', 'POST', '/contacts', { fullName: 'Re Delivered' });
  await until(() => received.some((r) => r.path === '/redeliver'));
  await app.webhookDispatcher.idle();
  const first = (await as('one', 'GET', `/webhooks/${hook.id}/deliveries`)).json().data[0];
  t.equal(first.status, 'succeeded');
  const again = await as('one', 'POST', `/webhooks/${hook.id}/deliveries/${first.id}/redeliver`);
  t.equal(again.statusCode, 202, again.body);
  t.match(again.json(), { attempt: 2, status: 'pending', eventId: first.eventId });
  await until(() => received.filter((r) => r.path === '/redeliver').length === 2);
  await app.webhookDispatcher.idle();
  const log = (await as('one', 'GET', `/webhooks/${hook.id}/deliveries?pageSize=1`)).json();
  t.match(log, { page: 1, pageSize: 1, total: 2 });
  t.match(log.data[0], { attempt: 2, status: 'succeeded', eventId: first.eventId, eventType: 'contact.created' });
  t.same(
    received.filter((r) => r.path === '/redeliver').map((r) => r.eventId),
    [first.eventId, first.eventId],
    'the same event id again',
  );

  for (const [method, url] of [
    ['GET', `/webhooks/${hook.id}`],
    ['PATCH', `/webhooks/${hook.id}`],
    ['DELETE', `/webhooks/${hook.id}`],
    ['GET', `/webhooks/${hook.id}/deliveries`],
    ['POST', `/webhooks/${hook.id}/rotate-secret`],
    ['POST', `/webhooks/${hook.id}/deliveries/${first.id}/redeliver`],
  ] as const) {
    const res = await as('two', method, url, method === 'PATCH' ? { active: false, version: 1 } : undefined);
    t.equal(res.statusCode, 404, `${method} ${url} from another tenant: 404`);
  }
  t.equal((await as('one', 'GET', `/webhooks/${hook.id}`)).statusCode, 200, 'still there for its tenant');
});

t.test('the address guard: every resolved address is checked and the connection goes to the checked one', async (t) => {
  for (const a of [
    '127.0.0.1',
    '10.0.0.5',
    '172.31.255.255',
    '192.168.1.1',
    '169.254.1.1',
    '0.0.0.0',
    '::1',
    '::',
    'fe80::1',
    'fc00::1',
    'fdff::1',
    '::ffff:10.0.0.1',
  ])
    t.ok(isForbiddenAddress(a), `${a} is refused`);
  for (const a of ['203.0.113.7', '8.8.8.8', '2001:db8::1', '172.32.0.1']) t.notOk(isForbiddenAddress(a), `${a} is allowed`);
  const port = (server.address() as AddressInfo).port;
  const body = JSON.stringify({ id: 'x' });
  const before = received.length;
  const common = { secret: 'whsec_test', eventId: 'evt', body, timeoutMs: 1000 };
  // DNS rebinding: the name resolves to a private address when the delivery is made.
  const rebound = await deliver({
    ...common,
    url: `http://rebind.example:${port}/dns`,
    allowPrivate: false,
    resolver: () => Promise.resolve([{ address: '10.0.0.5', family: 4 }]),
  });
  t.match(rebound, { ok: false, statusCode: null, error: /refused: .*10\.0\.0\.5/ }, 'a name resolving to a private address is refused');
  const mixed = await deliver({
    ...common,
    url: `http://rebind.example:${port}/dns`,
    allowPrivate: false,
    resolver: () =>
      Promise.resolve([
        { address: '203.0.113.9', family: 4 },
        { address: '127.0.0.1', family: 4 },
      ]),
  });
  t.match(mixed, { ok: false, error: /127\.0\.0\.1/ }, 'one private address among public ones is refused');
  t.equal(received.length, before, 'nothing reached the receiver');
  // With private targets allowed, the request goes to the resolved address (the name itself resolves nowhere).
  const pinned = await deliver({
    ...common,
    url: `http://rebind.example:${port}/dns`,
    allowPrivate: true,
    resolver: () => Promise.resolve([{ address: '127.0.0.1', family: 4 }]),
  });
  t.match(pinned, { ok: true, statusCode: 200 }, 'connected to the checked address');
  t.equal(received.length, before + 1);
  t.equal(
    await targetProblem('http://db.internal.example/', { allowPrivate: false, resolver: () => Promise.resolve([{ address: '192.168.3.3', family: 4 }]) }),
    'must not point at a private address: the host resolves to 192.168.3.3, a loopback, private, link-local or unspecified address',
    'a name resolving to a private address is refused at create',
  );
});

t.test('the retry schedule grows exponentially with jitter and gives up past the window', (t) => {
  const policy = { retryBaseMs: 10_000, retryMaxMs: 3_600_000, retryWindowMs: 24 * 3_600_000 };
  const now = 1_000_000_000;
  const deadline = now + policy.retryWindowMs;
  t.equal(
    nextAttemptAt(policy, 1, now, deadline, () => 0),
    now + 5_000,
    'attempt 2 after 5-10 s',
  );
  t.equal(
    nextAttemptAt(policy, 1, now, deadline, () => 0.999_999),
    now + 10_000,
  );
  t.equal(
    nextAttemptAt(policy, 4, now, deadline, () => 0),
    now + 40_000,
    'doubling',
  );
  t.equal(
    nextAttemptAt(policy, 30, now, deadline, () => 0),
    now + 1_800_000,
    'capped at the maximum',
  );
  t.equal(
    nextAttemptAt(policy, 30, deadline - 1_000, deadline, () => 0),
    null,
    'none past the 24 h window: failed',
  );
  t.end();
});

t.test('leads, tasks, notes and bulk actions emit their events: a conversion sends lead.converted and the created contact', async (t) => {
  await createHook('one', '/crm-events', ['lead.created', 'lead.converted', 'contact.created', 'task.created', 'note.created', 'company.deleted']);
  const mine = () => received.filter((r) => r.path === '/crm-events');
  const lead = (await as('one', 'POST', '/leads', { fullName: 'Hook Lead', email: 'hook.lead@wh.test' })).json<{ id: number }>();
  const converted = await as('one', 'POST', `/leads/${lead.id}/convert`, {});
  t.equal(converted.statusCode, 200, converted.body);
  const contactId = converted.json<{ contactId: number }>().contactId;
  const task = await as('one', 'POST', '/tasks', { title: 'Call back', relatedType: 'contact', relatedId: contactId });
  t.equal(task.statusCode, 201, task.body);
  const note = await as('one', 'POST', '/notes', { relatedType: 'contact', relatedId: contactId, text: 'Met at the fair' });
  t.equal(note.statusCode, 201, note.body);
  const companies = await Promise.all(
    ['Bulk Hook A', 'Bulk Hook B'].map(async (name) => (await as('one', 'POST', '/companies', { name })).json<{ id: number }>().id),
  );
  const bulk = await as('one', 'POST', '/companies/bulk', { action: 'delete', ids: companies });
  t.equal(bulk.statusCode, 200, bulk.body);
  await until(() => mine().length >= 7);
  const types = mine().map((r) => `${r.body.type}:${String(r.body.data.id)}`);
  t.same(
    types.sort(),
    [
      `company.deleted:${companies[0]}`,
      `company.deleted:${companies[1]}`,
      `contact.created:${contactId}`,
      `lead.converted:${lead.id}`,
      `lead.created:${lead.id}`,
      `note.created:${note.json<{ id: number }>().id}`,
      `task.created:${task.json<{ id: number }>().id}`,
    ].sort(),
    'one event per change, bulk rows included',
  );
  t.ok(
    mine().every((r) => r.signatureOk),
    'all signed',
  );
  t.equal(mine().find((r) => r.body.type === 'lead.converted')?.body.data.status, 'converted', 'the lead as the API shows it');
});
