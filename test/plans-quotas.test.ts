/**
 * Plans and quotas (issue 15): plans through the CLI and the platform API, bad input
 * refused with nothing changed, a tenant's plan (unknown plans refused before anything is
 * written), and the quotas the tenant API enforces under racing creates: 20 concurrent
 * contact creates against a limit of 5 make exactly 5 contacts and 15 answers 403
 * `QUOTA_EXCEEDED` with the limit and usage; the same for users and for attachment bytes
 * (whose refused uploads leave no object in S3); soft-deleted contacts and deactivated
 * users do not count, and restoring or reactivating one is checked. The usage endpoints
 * and `silo tenants usage` report the real counts.
 */
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import { login, makeTenant, PASSWORD, platformLogin, setupApp } from './fixtures/app.js';
import { rootKnex, runCli, runCliJson } from './fixtures/env.js';
import { isProblem } from './fixtures/problem.js';
import { setupS3 } from './fixtures/s3.js';

const s3 = await setupS3(t);
const { app, ctx, env, names } = await setupApp(t, s3.env);
const root = rootKnex();
t.teardown(() => root.destroy());
const operator = await platformLogin(app, ctx, 'operator');
const support = await platformLogin(app, ctx, 'support');

const platform = (method: 'GET' | 'POST' | 'PATCH' | 'PUT', url: string, payload?: object, token = operator) =>
  app.inject({ method, url: `/platform/v1${url}`, payload, headers: { authorization: `Bearer ${token}` } });

/** A request of a tenant's admin. */
const asTenant = (
  slug: string,
  token: string,
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  url: string,
  payload?: object,
  headers: Record<string, string> = {},
) => app.inject({ method, url: `/api/v1${url}`, payload, headers: { 'x-tenant': slug, authorization: `Bearer ${token}`, ...headers } });

const plansInCatalog = async () => (await ctx.catalog.plans.list()).map((p) => p.name);

t.test('the catalog migration made the plan standard, unlimited, for the tenants that existed', async (t) => {
  t.match(await ctx.catalog.plans.find('standard'), { maxUsers: null, maxContacts: null, maxAttachmentBytes: null, requestsPerMinute: null });
});

t.test('silo plans add|set|list: sizes with units, unlimited clears, bad input changes nothing', async (t) => {
  const { result, json } = await runCliJson<Record<string, unknown>>(
    ['plans', 'add', 'cli-free', '--max-users', '3', '--max-contacts', '100', '--max-attachment-bytes', '10MiB', '--requests-per-minute', '60'],
    env,
  );
  t.equal(result.code, 0, result.stderr);
  t.match(json, { name: 'cli-free', maxUsers: 3, maxContacts: 100, maxAttachmentBytes: 10 * 2 ** 20, requestsPerMinute: 60 });

  const before = await ctx.catalog.plans.find('cli-free');
  const refusals: Array<{ args: string[]; code: number; error: string }> = [
    { args: ['plans', 'add', 'cli-free'], code: 1, error: 'PLAN_EXISTS' },
    { args: ['plans', 'add', 'Bad_Name'], code: 2, error: 'VALIDATION_FAILED' },
    { args: ['plans', 'add', 'cli-bad', '--max-users', 'many'], code: 2, error: 'VALIDATION_FAILED' },
    { args: ['plans', 'add', 'cli-bad', '--max-users', '-1'], code: 2, error: 'VALIDATION_FAILED' },
    { args: ['plans', 'add', 'cli-bad', '--max-attachment-bytes', '1.5B'], code: 2, error: 'VALIDATION_FAILED' },
    { args: ['plans', 'add', 'cli-bad', '--max-attachment-bytes', '10XB'], code: 2, error: 'VALIDATION_FAILED' },
    { args: ['plans', 'add', 'cli-bad', '--requests-per-minute', '0'], code: 2, error: 'VALIDATION_FAILED' },
    { args: ['plans', 'set', 'cli-free'], code: 2, error: 'VALIDATION_FAILED' },
    { args: ['plans', 'set', 'cli-free', '--max-contacts', '1e3'], code: 2, error: 'VALIDATION_FAILED' },
    { args: ['plans', 'set', 'cli-nope', '--max-users', '1'], code: 1, error: 'PLAN_NOT_FOUND' },
  ];
  for (const r of refusals) {
    const { result: res, json: out } = await runCliJson<{ error: { code: string; message: string } }>(r.args, env);
    t.equal(res.code, r.code, `silo ${r.args.join(' ')} exits ${r.code}`);
    t.equal(out.error?.code, r.error, `silo ${r.args.join(' ')}: ${out.error?.message}`);
  }
  t.notOk(await ctx.catalog.plans.find('cli-bad'), 'no plan was added by a refused add');
  t.same(await ctx.catalog.plans.find('cli-free'), before, 'the plan is unchanged by the refused commands');

  const set = await runCliJson<Record<string, unknown>>(['plans', 'set', 'cli-free', '--max-users', 'unlimited', '--max-attachment-bytes', '1.5 GB'], env);
  t.equal(set.result.code, 0, set.result.stderr);
  t.match(set.json, { name: 'cli-free', maxUsers: null, maxContacts: 100, maxAttachmentBytes: 1_500_000_000, requestsPerMinute: 60 });

  const list = await runCliJson<Array<{ name: string; tenants: number }>>(['plans', 'list'], env);
  t.equal(list.result.code, 0);
  t.same(
    list.json.map((p) => p.name),
    await plansInCatalog(),
    'list shows every plan',
  );
  const table = await runCli(['plans', 'list'], env);
  t.match(table.stdout, /cli-free.*unlimited.*100.*1\.4 GiB/);
});

t.test('platform API: operators add and change plans, support staff read, bad bodies are 400 with nothing changed', async (t) => {
  const created = await platform('POST', '/plans', { name: 'api-basic', maxContacts: 10 });
  t.equal(created.statusCode, 201, created.body);
  t.match(created.json(), { name: 'api-basic', maxUsers: null, maxContacts: 10, maxAttachmentBytes: null, requestsPerMinute: null });
  isProblem(t, await platform('POST', '/plans', { name: 'api-basic' }), 409, 'PLAN_EXISTS');
  isProblem(t, await platform('POST', '/plans', { name: 'api-bad', maxUsers: -2 }), 400, 'VALIDATION_FAILED');
  isProblem(t, await platform('POST', '/plans', { name: 'api-bad', maxUsers: 1.5 }), 400, 'VALIDATION_FAILED');
  isProblem(t, await platform('POST', '/plans', { name: 'API BAD' }), 400, 'VALIDATION_FAILED');
  isProblem(t, await platform('POST', '/plans', { name: 'api-support' }, support), 403, 'FORBIDDEN');
  isProblem(t, await platform('PATCH', '/plans/api-basic', {}), 400, 'VALIDATION_FAILED');
  isProblem(t, await platform('PATCH', '/plans/api-nope', { maxUsers: 1 }), 404, 'PLAN_NOT_FOUND');
  t.notOk(await ctx.catalog.plans.find('api-bad'));
  t.notOk(await ctx.catalog.plans.find('api-support'));
  t.match(await ctx.catalog.plans.find('api-basic'), { maxContacts: 10 }, 'unchanged by the refused changes');

  const patched = await platform('PATCH', '/plans/api-basic', { maxContacts: null, requestsPerMinute: 120 });
  t.equal(patched.statusCode, 200, patched.body);
  t.match(patched.json(), { maxContacts: null, requestsPerMinute: 120 });
  const list = await platform('GET', '/plans', undefined, support);
  t.equal(list.statusCode, 200);
  t.ok(
    list.json().data.some((p: { name: string }) => p.name === 'api-basic'),
    'support staff read the plans',
  );
});

t.test('a tenant on an unknown plan is refused before anything is written; set-plan changes the plan', async (t) => {
  const cli = await runCliJson<{ error: { code: string } }>(['tenants', 'create', 'plan-ghost', '--plan', 'no-such-plan', '--admin-password', PASSWORD], env);
  t.equal(cli.result.code, 2, 'silo tenants create --plan <unknown> exits 2');
  t.equal(cli.json.error.code, 'UNKNOWN_PLAN');
  const api = await platform('POST', '/tenants', { slug: 'plan-ghost', plan: 'no-such-plan', adminPassword: PASSWORD });
  isProblem(t, api, 400, 'UNKNOWN_PLAN');
  t.notOk(await ctx.catalog.tenants.findBySlug('plan-ghost'), 'no catalog row');
  const dbs: unknown[] = await root('information_schema.SCHEMATA').where('SCHEMA_NAME', 'like', `${names.prefix}plan_ghost%`);
  t.same(dbs, [], 'no database');
  t.same(await ctx.catalog.operations.list({}), [], 'no operation');

  const tenant = await makeTenant(ctx, 'plan-mover');
  t.equal(tenant.plan, 'standard');
  isProblem(t, await platform('PUT', '/tenants/plan-mover/plan', { plan: 'no-such-plan' }), 400, 'UNKNOWN_PLAN');
  isProblem(t, await platform('PUT', '/tenants/plan-mover/plan', { plan: 'api-basic' }, support), 403, 'FORBIDDEN');
  isProblem(t, await platform('PUT', '/tenants/plan-ghost/plan', { plan: 'api-basic' }), 404, 'TENANT_NOT_FOUND');
  const unknownCli = await runCliJson<{ error: { code: string } }>(['tenants', 'set-plan', 'plan-mover', 'no-such-plan'], env);
  t.equal(unknownCli.result.code, 2);
  t.equal(unknownCli.json.error.code, 'UNKNOWN_PLAN');
  t.equal((await ctx.catalog.tenants.findById(tenant.id))!.plan, 'standard', 'still on standard');

  const put = await platform('PUT', '/tenants/plan-mover/plan', { plan: 'api-basic' });
  t.equal(put.statusCode, 200, put.body);
  t.match(put.json(), { tenant: { slug: 'plan-mover', plan: 'api-basic' }, previousPlan: 'standard' });
  const { result, json } = await runCliJson<{ plan: string; previousPlan: string; operationId: number }>(
    ['tenants', 'set-plan', 'plan-mover', 'cli-free'],
    env,
  );
  t.equal(result.code, 0, result.stderr);
  t.match(json, { plan: 'cli-free', previousPlan: 'api-basic' });
  t.match(await ctx.catalog.operations.get(json.operationId), { kind: 'set-plan', status: 'succeeded', details: { from: 'api-basic', to: 'cli-free' } });
});

/** Counts answers by status; asserts every 403 is a QUOTA_EXCEEDED problem with these members. */
function tally(t: Test, answers: LightMyRequestResponse[], members: Record<string, unknown>) {
  const by = new Map<number, number>();
  for (const r of answers) by.set(r.statusCode, (by.get(r.statusCode) ?? 0) + 1);
  const refused = answers.filter((r) => r.statusCode === 403);
  t.ok(
    refused.every((r) => String(r.headers['content-type']).startsWith('application/problem+json')),
    'refusals are problem+json',
  );
  t.same(
    [...new Set(refused.map((r) => JSON.stringify({ ...r.json<Record<string, unknown>>(), detail: undefined, requestId: undefined })))].map(
      (s) => JSON.parse(s) as unknown,
    ),
    refused.length ? [{ type: 'urn:silo:problem:quota-exceeded', title: 'Forbidden', status: 403, code: 'QUOTA_EXCEEDED', ...members }] : [],
    'every refusal is 403 QUOTA_EXCEEDED with the quota, limit, usage and requested',
  );
  return Object.fromEntries(by);
}

t.test('racing creates: quotas hold in the create transaction', async (t) => {
  t.equal((await platform('POST', '/plans', { name: 'tight', maxUsers: 3, maxContacts: 5, maxAttachmentBytes: 1000 })).statusCode, 201);
  await makeTenant(ctx, 'quota-race');
  t.equal((await platform('PUT', '/tenants/quota-race/plan', { plan: 'tight' })).statusCode, 200);
  const token = (await login(app, 'quota-race')).accessToken;
  const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object, headers?: Record<string, string>) =>
    asTenant('quota-race', token, method, url, payload, headers);
  const db = (await ctx.catalog.tenants.findBySlug('quota-race'))!.databaseName;

  await t.test('20 concurrent contact creates against a limit of 5: 5 created, 15 refused (a deleted contact does not count)', async (t) => {
    const gone = await call('POST', '/contacts', { fullName: 'Deleted Early' });
    t.equal(gone.statusCode, 201);
    t.equal((await call('DELETE', `/contacts/${gone.json().id}`)).statusCode, 204);
    // Half of them with an Idempotency-Key: the key's INSERT comes first in their transaction.
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => call('POST', '/contacts', { fullName: `Racer ${i}` }, i % 2 ? { 'idempotency-key': `race-${i}` } : {})),
    );
    t.same(tally(t, answers, { quota: 'contacts', limit: 5, usage: 5, requested: 1 }), { 201: 5, 403: 15 });
    const [rows] = (await root.raw('SELECT COUNT(*) AS n FROM ??.contacts WHERE deleted_at IS NULL', [db])) as [Array<{ n: number }>];
    t.equal(Number(rows[0]!.n), 5, 'the database holds 5 live contacts');
    isProblem(t, await call('POST', `/contacts/${gone.json().id}/restore`), 403, 'QUOTA_EXCEEDED');
    const live = (await call('GET', '/contacts')).json().data as Array<{ id: number }>;
    t.equal((await call('DELETE', `/contacts/${live[0]!.id}`)).statusCode, 204);
    t.equal((await call('POST', `/contacts/${gone.json().id}/restore`)).statusCode, 200, 'a restore fits once a place is free');
  });

  await t.test('10 concurrent user creates against a limit of 3 (the admin is one): 2 created; a deactivated user does not count', async (t) => {
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) => call('POST', '/users', { email: `racer${i}@quota-race.test`, role: 'staff', password: PASSWORD })),
    );
    t.same(tally(t, answers, { quota: 'users', limit: 3, usage: 3, requested: 1 }), { 201: 2, 403: 8 });
    const [rows] = (await root.raw('SELECT COUNT(*) AS n FROM ??.users WHERE active = 1', [db])) as [Array<{ n: number }>];
    t.equal(Number(rows[0]!.n), 3);
    const made = answers.filter((r) => r.statusCode === 201).map((r) => r.json<{ id: number }>().id);
    t.equal((await call('DELETE', `/users/${made[0]}`)).statusCode, 200, 'deactivate one');
    const another = await call('POST', '/users', { email: 'late@quota-race.test', role: 'staff', password: PASSWORD });
    t.equal(another.statusCode, 201, 'its place is free');
    isProblem(t, await call('PATCH', `/users/${made[0]}`, { active: true }), 403, 'QUOTA_EXCEEDED');
    const cli = await runCliJson<{ error: { code: string } }>(
      ['users', 'add', 'quota-race', 'cli@quota-race.test', '--role', 'staff', '--password', PASSWORD],
      env,
    );
    t.equal(cli.json.error?.code, 'QUOTA_EXCEEDED', 'silo users add obeys the plan too');
    t.equal(cli.result.code, 1);
  });

  await t.test('10 concurrent 300-byte uploads against 1000 attachment bytes: 3 recorded, 7 refused, no object left behind', async (t) => {
    const company = await call('POST', '/companies', { name: 'Uploads Inc' });
    t.equal(company.statusCode, 201);
    const before = await objectCount();
    const answers = await Promise.all(Array.from({ length: 10 }, () => upload(token, company.json().id, randomBytes(300))));
    t.same(tally(t, answers, { quota: 'attachmentBytes', limit: 1000, usage: 900, requested: 300 }), { 201: 3, 403: 7 });
    const [rows] = (await root.raw('SELECT COALESCE(SUM(size_bytes), 0) AS n FROM ??.attachments', [db])) as [Array<{ n: number }>];
    t.equal(Number(rows[0]!.n), 900);
    t.equal(await objectCount(), before + 3, 'only the recorded files are in S3');
    t.equal((await upload(token, company.json().id, randomBytes(100))).statusCode, 201, 'what still fits is taken');
  });

  await t.test('usage: the platform, the tenant admin and the CLI see the real counts', async (t) => {
    await app.historyRecorder?.flush(true);
    const [counts] = (await root.raw(
      `SELECT (SELECT COUNT(*) FROM ??.users WHERE active = 1) AS users, (SELECT COUNT(*) FROM ??.contacts WHERE deleted_at IS NULL) AS contacts,
              (SELECT COUNT(*) FROM ??.companies WHERE deleted_at IS NULL) AS companies, (SELECT COUNT(*) FROM ??.deals WHERE deleted_at IS NULL) AS deals,
              (SELECT SUM(size_bytes) FROM ??.attachments) AS bytes`,
      [db, db, db, db, db],
    )) as [Array<Record<string, number | string>>];
    const [size] = (await root.raw('SELECT SUM(DATA_LENGTH + INDEX_LENGTH) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?', [db])) as [
      Array<{ n: number | string }>,
    ];
    const tenantId = (await ctx.catalog.tenants.findBySlug('quota-race'))!.id;
    const [history] = (await ctx.catalog.knex.raw('SELECT COUNT(*) AS n FROM request_history WHERE tenant_id = ?', [tenantId])) as [Array<{ n: number }>];
    const expected = {
      tenant: 'quota-race',
      plan: 'tight',
      limits: { maxUsers: 3, maxContacts: 5, maxAttachmentBytes: 1000, requestsPerMinute: null },
      usage: {
        users: Number(counts[0]!.users),
        contacts: Number(counts[0]!.contacts),
        companies: Number(counts[0]!.companies),
        deals: Number(counts[0]!.deals),
        attachmentBytes: Number(counts[0]!.bytes),
        databaseBytes: Number(size[0]!.n),
        requestsLast24h: Number(history[0]!.n),
      },
    };
    t.same(expected.usage.users, 3);
    t.same(expected.usage.attachmentBytes, 1000);
    t.ok(expected.usage.requestsLast24h > 40, `requests were counted (${expected.usage.requestsLast24h})`);
    const fromPlatform = await platform('GET', '/tenants/quota-race/usage', undefined, support);
    t.equal(fromPlatform.statusCode, 200, fromPlatform.body);
    t.same({ ...fromPlatform.json(), at: undefined }, { ...expected, at: undefined }, 'GET /platform/v1/tenants/{slug}/usage');
    // The tenant admin's own request is recorded after it is answered: the count above holds.
    const own = await call('GET', '/usage');
    t.equal(own.statusCode, 200, own.body);
    t.same({ ...own.json(), at: undefined }, { ...expected, at: undefined }, 'GET /api/v1/usage');
    const { result, json } = await runCliJson<Record<string, unknown>>(['tenants', 'usage', 'quota-race'], env);
    t.equal(result.code, 0, result.stderr);
    t.same(
      { ...json, at: undefined },
      { ...expected, usage: { ...expected.usage, requestsLast24h: (json.usage as { requestsLast24h: number }).requestsLast24h }, at: undefined },
    );
    const staff = await call('POST', '/users', { email: 'staff@quota-race.test', role: 'staff', password: PASSWORD });
    t.equal(staff.statusCode, 403, 'full: no more users');
    isProblem(t, await asTenant('quota-race', (await loginStaff()).accessToken, 'GET', '/usage'), 403, 'FORBIDDEN');
  });

  /** Signs in a staff user of quota-race, made after raising the plan's user limit by one. */
  async function loginStaff() {
    t.equal((await platform('PATCH', '/plans/tight', { maxUsers: 4 })).statusCode, 200);
    t.equal((await call('POST', '/users', { email: 'reader@quota-race.test', role: 'staff', password: PASSWORD })).statusCode, 201);
    return login(app, 'quota-race', 'reader@quota-race.test');
  }

  /** Uploads a text file to a company. */
  function upload(tok: string, companyId: number, data: Buffer) {
    const boundary = `----quota-${randomBytes(6).toString('hex')}`;
    const payload = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.txt"\r\nContent-Type: text/plain\r\n\r\n`),
      data,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    return asTenant('quota-race', tok, 'POST', `/companies/${companyId}/attachments`, payload, {
      'content-type': `multipart/form-data; boundary=${boundary}`,
    });
  }
});

t.test('a plan changed by another process (the CLI) reaches the API within a poll interval', async (t) => {
  await makeTenant(ctx, 'plan-remote');
  const token = (await login(app, 'plan-remote')).accessToken;
  t.equal((await runCli(['plans', 'add', 'remote', '--max-contacts', '1'], env)).code, 0);
  t.equal((await runCli(['tenants', 'set-plan', 'plan-remote', 'remote'], env)).code, 0);
  t.equal((await asTenant('plan-remote', token, 'POST', '/contacts', { fullName: 'First' })).statusCode, 201);
  // The tenant row and the plans are read again at the next poll (1 s here): wait for the refusal.
  const deadline = Date.now() + 10_000;
  let last: LightMyRequestResponse | undefined;
  while (Date.now() < deadline) {
    last = await asTenant('plan-remote', token, 'POST', '/contacts', { fullName: 'Next' });
    if (last.statusCode === 403) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(last?.statusCode, 403, 'refused within the poll interval');
  t.match(last?.json(), { code: 'QUOTA_EXCEEDED', quota: 'contacts', limit: 1 });
});

/** Objects s3rver holds in the test bucket. */
async function objectCount(): Promise<number> {
  const files = await readdir(join(s3.directory, s3.bucket), { recursive: true }).catch((): string[] => []);
  return files.filter((f) => f.endsWith('._S3rver_object')).length;
}
