/**
 * Renaming a tenant (issue 15): only the catalog changes (same database, same data);
 * under load in two API processes the old slug turns 404 and the new one 200 (at once in
 * the process that renamed, within one poll interval in the other), and no request of the
 * tenant's existing token fails under the new slug; the old slug stays reserved (create,
 * signup and other renames are refused) except for the tenant itself, until it runs out.
 */
import pino from 'pino';
import t from 'tap';
import { createContext } from '../src/context.js';
import { buildApp } from '../src/http/app.js';
import { renameTenant } from '../src/provisioning/tenant-rename.js';
import { login, makeTenant, platformLogin, setupApp } from './fixtures/app.js';
import { runCli, runCliJson } from './fixtures/env.js';
import { isProblem } from './fixtures/problem.js';

const POLL_MS = 200;
const { app, ctx, config, env } = await setupApp(t, { SILO_TENANT_CHANGE_POLL_MS: String(POLL_MS), SILO_SIGNUP_ENABLED: '1' });
// A second API process over the same catalog: it learns of changes only from its poll.
const ctx2 = createContext(config, pino({ level: 'silent' }));
const app2 = await buildApp({ ctx: ctx2 });
await app2.ready();
t.teardown(async () => {
  await app2.close();
  await ctx2.close();
});

const me = (a: typeof app, slug: string, token: string) =>
  a.inject({ method: 'GET', url: '/api/v1/contacts', headers: { 'x-tenant': slug, authorization: `Bearer ${token}` } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('rename under load: old slug 404, new slug 200, the same token and data, in both processes', async (t) => {
  const before = await makeTenant(ctx, 'load-old');
  const { accessToken } = await login(app, 'load-old');
  const created = await app.inject({
    method: 'POST',
    url: '/api/v1/contacts',
    headers: { 'x-tenant': 'load-old', authorization: `Bearer ${accessToken}` },
    payload: { fullName: 'Ada Lovelace', email: 'ada@example.test' },
  });
  t.equal(created.statusCode, 201, created.body);
  // The second process learns of the new tenant at its next poll.
  for (let i = 0; i < 50 && (await me(app2, 'load-old', accessToken)).statusCode !== 200; i++) await sleep(50);
  for (const a of [app, app2]) {
    const res = await me(a, 'load-old', accessToken);
    t.equal(res.statusCode, 200, res.body);
  }

  // Load: each client asks under the slug it was last told; `renamed` flips it for every client.
  let renamed = false;
  let stop = false;
  const outcomes: Array<{ proc: 1 | 2; slug: string; status: number; afterRename: boolean }> = [];
  const client = async (proc: 1 | 2) => {
    while (!stop) {
      const slug = renamed ? 'load-new' : 'load-old';
      const afterRename = renamed;
      const res = await me(proc === 1 ? app : app2, slug, accessToken);
      outcomes.push({ proc, slug, status: res.statusCode, afterRename });
      // A 404 from the in-memory names needs no I/O: yield, or the timers (polls) starve.
      await new Promise((r) => setImmediate(r));
    }
  };
  const clients = [client(1), client(1), client(2), client(2)];
  t.teardown(() => {
    stop = true;
  });
  await sleep(100);
  const r = await renameTenant(ctx, 'load-old', 'load-new', 'test');
  renamed = true;
  t.equal(r.tenant.id, before.id);
  t.equal(r.tenant.databaseName, before.databaseName, 'the data did not move');
  t.ok(r.reservedUntil && r.reservedUntil.getTime() > Date.now() + 29 * 86_400_000, 'the old slug is reserved for 30 days');
  // At once in the process that renamed.
  isProblem(t, await me(app, 'load-old', accessToken), 404, 'TENANT_NOT_FOUND');
  t.equal((await me(app, 'load-new', accessToken)).statusCode, 200, 'the old token works under the new slug at once');
  // Within one poll interval in the other process.
  await sleep(POLL_MS * 3 + 200);
  isProblem(t, await me(app2, 'load-old', accessToken), 404, 'TENANT_NOT_FOUND');
  t.equal((await me(app2, 'load-new', accessToken)).statusCode, 200);
  stop = true;
  await Promise.all(clients);

  const p1 = outcomes.filter((o) => o.proc === 1);
  t.ok(
    outcomes.filter((o) => !o.afterRename).length > 10 && outcomes.filter((o) => o.afterRename).length > 10,
    `load on both sides of the rename (${outcomes.length} requests)`,
  );
  t.same(
    p1.filter((o) => o.slug === 'load-old' && o.status !== 200 && o.status !== 404),
    [],
    'process 1: under the old slug only 200 (before) or 404 (after)',
  );
  t.same(
    p1.filter((o) => o.slug === 'load-new' && o.status !== 200),
    [],
    'process 1 (renamed it): no request under the new slug failed',
  );
  const p2 = outcomes.filter((o) => o.proc === 2);
  t.same(
    p2.filter((o) => ![200, 404].includes(o.status)),
    [],
    'process 2: nothing but 200, or 404 while its poll has not seen the rename',
  );
  const lastOld2 = p2.filter((o) => o.slug === 'load-old').at(-1);
  t.ok(lastOld2, 'process 2 served the old slug during the load');

  const list = await me(app2, 'load-new', accessToken);
  t.equal(list.json().data[0].email, 'ada@example.test', 'the same data under the new slug');
  const ops = await ctx.catalog.operations.list({ tenantId: before.id, kind: 'rename' });
  t.match(ops[0], { status: 'succeeded', details: { slug: 'load-old', newSlug: 'load-new' } });
});

t.test('the old slug stays reserved for others, not for the tenant itself; it frees up when the reservation runs out', async (t) => {
  const operator = await platformLogin(app, ctx, 'operator');
  const platform = (method: 'POST' | 'PATCH', url: string, payload: object) =>
    app.inject({ method, url: `/platform/v1${url}`, payload, headers: { authorization: `Bearer ${operator}` } });
  await makeTenant(ctx, 'res-a');
  await makeTenant(ctx, 'res-other');
  const renamed = await platform('PATCH', '/tenants/res-a', { slug: 'res-b', name: 'Res B' });
  t.equal(renamed.statusCode, 200, renamed.body);
  t.match(renamed.json(), { slug: 'res-b', name: 'Res B' });

  isProblem(t, await platform('POST', '/tenants', { slug: 'res-a' }), 409, 'TENANT_EXISTS');
  isProblem(
    t,
    await app.inject({
      method: 'POST',
      url: '/platform/v1/signup',
      payload: { slug: 'res-a', name: 'X', email: 'x@res.test', password: 'violet-tractor-orbit-91' },
    }),
    409,
    'TENANT_EXISTS',
  );
  isProblem(t, await platform('PATCH', '/tenants/res-other', { slug: 'res-a' }), 409, 'TENANT_EXISTS');
  isProblem(t, await platform('PATCH', '/tenants/res-other', { slug: 'res-b' }), 409, 'TENANT_EXISTS');
  t.ok(await ctx.catalog.tenants.findBySlug('res-other'), 'the refused renames changed nothing');
  t.notOk(await ctx.catalog.tenants.findBySlug('res-a'));

  // The tenant may take its old slug back.
  const back = await platform('PATCH', '/tenants/res-b', { slug: 'res-a' });
  t.equal(back.statusCode, 200, back.body);
  t.same(
    (await ctx.catalog.tenants.reservedSlugs(back.json().id ?? (await ctx.catalog.tenants.findBySlug('res-a'))!.id)).map((r) => r.slug),
    ['res-b'],
    'now res-b is the reserved one',
  );
  // Once the reservation runs out, the slug is anybody's.
  await ctx.catalog
    .knex('slug_reservations')
    .where({ slug: 'res-b' })
    .update({ reserved_until: new Date(Date.now() - 1000) });
  t.equal((await platform('POST', '/tenants', { slug: 'res-b' })).statusCode, 201, 'an expired reservation does not hold the slug');
  t.notOk(await ctx.catalog.knex('slug_reservations').where({ slug: 'res-b' }).first(), 'and is removed');
});

t.test('silo tenants rename: JSON output, and bad input exits non-zero changing nothing', async (t) => {
  await makeTenant(ctx, 'cli-one');
  await makeTenant(ctx, 'cli-two');
  const { result, json } = await runCliJson<any>(['tenants', 'rename', 'cli-one', 'cli-uno', '--json'], env);
  t.equal(result.code, 0, result.stderr);
  t.match(json, { tenant: { slug: 'cli-uno' }, previousSlug: 'cli-one' });
  t.ok(json.reservedUntil);
  const bad = await runCli(['tenants', 'rename', 'cli-uno', 'Not_A_Slug'], env);
  t.equal(bad.code, 2, bad.stderr);
  t.match(bad.stderr, /INVALID_SLUG|invalid tenant slug/);
  const taken = await runCli(['tenants', 'rename', 'cli-uno', 'cli-two'], env);
  t.equal(taken.code, 1);
  t.match(taken.stderr, /TENANT_EXISTS/);
  const same = await runCli(['tenants', 'rename', 'cli-uno', 'cli-uno'], env);
  t.equal(same.code, 2);
  const unknown = await runCli(['tenants', 'rename', 'no-such-co', 'cli-three'], env);
  t.not(unknown.code, 0);
  t.match(unknown.stderr, /TENANT_NOT_FOUND|not found/);
  t.same(
    (await ctx.catalog.tenants.list({ slugs: ['cli-uno', 'cli-two', 'cli-three', 'cli-one'] })).map((x) => x.slug),
    ['cli-two', 'cli-uno'],
    'only the one rename happened',
  );
});
