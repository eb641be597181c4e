/**
 * Self-service signup (issue 15): `POST /platform/v1/signup` over real MariaDB, with and
 * without pending tenants; every refusal and every failure leaves nothing behind (no
 * database, account or catalog row; a pending tenant that was tried stays pending); 20
 * concurrent signups over 5 pending tenants; the verification token; unverified tenants
 * deleted after their time; the per-IP rate limit.
 */
import t from 'tap';
import type { SiloContext } from '../src/context.js';
import { countPendingTenants, fillPendingTenants } from '../src/provisioning/pending-tenants.js';
import { purgeUnverifiedTenants, signup, verifySignup } from '../src/signup/signup-service.js';
import { makeTenant, setupApp } from './fixtures/app.js';
import { prefixedObjects } from './fixtures/mysql-state.js';
import { isProblem } from './fixtures/problem.js';
import { linkIn, startSmtpServer } from './fixtures/smtp.js';

const STRONG = 'violet-tractor-orbit-91';
const smtp = await startSmtpServer(t);
const { app, ctx, names } = await setupApp(t, { ...smtp.env, SILO_SIGNUP_ENABLED: '1', SILO_SIGNUP_RATE_LIMIT: '100000' });

const post = (payload: object) => app.inject({ method: 'POST', url: '/platform/v1/signup', payload });
const body = (slug: string, extra: object = {}) => ({ slug, name: `${slug} Inc`, email: `owner@${slug}.test`, password: STRONG, ...extra });

/** Everything a signup could leave: databases and accounts on the server, catalog rows. */
async function footprint(c: SiloContext) {
  const objects = await prefixedObjects(names.prefix);
  const tenants = await c.catalog.knex('tenants').orderBy('id').select('id', 'slug', 'status', 'database_name');
  return {
    databases: objects.databases.filter((d) => !d.startsWith(`${names.prefix}_schema_`)),
    users: objects.users,
    tenants,
  };
}

t.test('a signup with no pending tenant provisions one: 201, signed in at once, opaque database name, unverified', async (t) => {
  const res = await post(body('first-co', { fullName: 'Fay Owner' }));
  t.equal(res.statusCode, 201, res.body);
  const out = res.json();
  t.match(out, { tenant: { slug: 'first-co', name: 'first-co Inc', status: 'active', emailVerified: false }, tokenType: 'Bearer' });
  const me = await app.inject({ method: 'GET', url: '/api/v1/auth/me', headers: { 'x-tenant': 'first-co', authorization: `Bearer ${out.accessToken}` } });
  t.equal(me.statusCode, 200, me.body);
  t.match(me.json(), { email: 'owner@first-co.test', role: 'admin', fullName: 'Fay Owner' });
  const refreshed = await app.inject({
    method: 'POST',
    url: '/api/v1/auth/refresh',
    headers: { 'x-tenant': 'first-co' },
    payload: { refreshToken: out.refreshToken },
  });
  t.equal(refreshed.statusCode, 200, 'the refresh token works');
  const login = await app.inject({
    method: 'POST',
    url: '/api/v1/auth/login',
    headers: { 'x-tenant': 'first-co' },
    payload: { email: 'owner@first-co.test', password: STRONG },
  });
  t.equal(login.statusCode, 200, 'the password signs in');
  const row = (await ctx.catalog.tenants.findBySlug('first-co'))!;
  t.match(row.databaseName, new RegExp(`^${names.prefix}[a-z2-7]{10}$`));
  t.notMatch(row.databaseName, /first/);
  t.ok(row.unverifiedSince, 'unverified until the link is followed');
  t.equal(row.adminEmail, 'owner@first-co.test');
  const ops = await ctx.catalog.operations.list({ tenantId: row.id });
  t.same(ops.map((o) => `${o.kind}:${o.status}`).sort(), ['create:succeeded', 'signup:succeeded']);
});

t.test('with pending tenants, a signup claims one (no DDL) and the pool shrinks by one', async (t) => {
  const filled = await fillPendingTenants(ctx, 2, 'test');
  t.match(filled, { ran: true, created: 2, pending: 2 });
  const pendingIds = (await ctx.catalog.tenants.list({ statuses: ['pending'] })).map((x) => x.id);
  t.equal(pendingIds.length, 2);
  const res = await post(body('second-co'));
  t.equal(res.statusCode, 201, res.body);
  const row = (await ctx.catalog.tenants.findBySlug('second-co'))!;
  t.ok(pendingIds.includes(row.id), 'the claimed tenant is one that was pending');
  t.equal(row.status, 'active');
  t.same(await countPendingTenants(ctx), { pending: 1, provisioning: 0 });
  const admins = await ctx.admin.withTenantDatabase(row, (k) => k('users').select('email', 'role'));
  t.same(admins, [{ email: 'owner@second-co.test', role: 'admin' }], 'exactly the signup admin');
  const stages = await ctx.admin.withTenantDatabase(row, (k) => k('pipeline_stages').count({ n: '*' }).first());
  t.ok(Number(stages?.n) > 0, 'the pending tenant came with its default pipeline stages');
});

t.test('every refusal is a 4xx and leaves nothing behind; the pending tenant stays pending', async (t) => {
  await makeTenant(ctx, 'taken-co');
  const before = await footprint(ctx);
  const cases: Array<[object, number, string, string?]> = [
    [body('taken-co'), 409, 'TENANT_EXISTS'],
    [body('first-co'), 409, 'TENANT_EXISTS'],
    [body('Bad_Slug'), 400, 'VALIDATION_FAILED', 'slug'],
    [body('admin'), 400, 'VALIDATION_FAILED', 'slug'],
    [body('ok-slug-a', { email: 'not-an-email' }), 400, 'VALIDATION_FAILED', 'email'],
    [body('ok-slug-b', { password: 'password1234' }), 400, 'VALIDATION_FAILED', 'password'],
    [body('ok-slug-c', { password: 'ok-slug-c-2026' }), 400, 'VALIDATION_FAILED', 'password'],
    [body('ok-slug-d', { password: 'short' }), 400, 'VALIDATION_FAILED', 'password'],
    [{ slug: 'ok-slug-e', name: 'X' }, 400, 'VALIDATION_FAILED'],
    [{ ...body('ok-slug-f'), plan: 'pro' }, 400, 'VALIDATION_FAILED'],
  ];
  for (const [payload, status, code, field] of cases) {
    const p = isProblem(t, await post(payload), status, code);
    if (field) t.ok(JSON.stringify(p).includes(`"${field}`), `names the field ${field}: ${p.detail}`);
    t.notOk(JSON.stringify(p).includes(STRONG), 'the password is never echoed');
  }
  t.same(await footprint(ctx), before, 'no database, account or catalog row was added or changed');
});

t.test('a provisioning failure inside a signup leaves no database, account or catalog row', async (t) => {
  // No pending tenant: the signup provisions one, and its `migrations` step fails.
  while ((await countPendingTenants(ctx)).pending > 0) t.equal((await post(body(`drain-${(await countPendingTenants(ctx)).pending}-co`))).statusCode, 201);
  const before = await footprint(ctx);
  ctx.config.faultFailAfter = { operation: 'create', step: 'user' };
  try {
    const res = await post(body('doomed-co'));
    t.equal(res.statusCode, 500, res.body);
    t.equal(res.json().code, 'OPERATION_FAILED');
  } finally {
    ctx.config.faultFailAfter = undefined;
  }
  t.same(await footprint(ctx), before, 'the tenant made for the signup is gone: database, account and row');
  t.notOk(await ctx.catalog.tenants.findBySlug('doomed-co'));
  t.equal((await post(body('doomed-co'))).statusCode, 201, 'the slug is free for the next try');
});

t.test('20 concurrent signups over 5 pending tenants: 5 claimed, 15 provisioned, all distinct, no orphan', async (t) => {
  await fillPendingTenants(ctx, 5, 'test');
  const pendingIds = new Set((await ctx.catalog.tenants.list({ statuses: ['pending'] })).map((x) => x.id));
  t.equal(pendingIds.size, 5);
  const slugs = Array.from({ length: 20 }, (_, i) => `rush-${String(i).padStart(2, '0')}`);
  const answers = await Promise.all(slugs.map((s) => post(body(s))));
  t.same(
    answers.map((a) => a.statusCode),
    slugs.map(() => 201),
    answers.map((a) => a.body.slice(0, 200)).join('\n'),
  );
  const rows = await Promise.all(slugs.map(async (s) => (await ctx.catalog.tenants.findBySlug(s))!));
  t.equal(new Set(rows.map((r) => r.id)).size, 20, 'twenty distinct tenants');
  t.equal(new Set(rows.map((r) => r.databaseName)).size, 20, 'twenty distinct databases');
  t.equal(rows.filter((r) => pendingIds.has(r.id)).length, 5, 'the 5 pending tenants were claimed');
  t.same(await countPendingTenants(ctx), { pending: 0, provisioning: 0 });
  // No orphan: the server's databases and accounts are exactly the catalog's live tenants.
  const live = (await ctx.catalog.tenants.list()).filter((x) => x.status !== 'deleted');
  const fp = await footprint(ctx);
  t.same(fp.databases, live.map((x) => x.databaseName).sort());
  t.same(fp.users, live.map((x) => x.dbUser).sort());
  for (const [i, r] of rows.entries()) {
    const users = await ctx.admin.withTenantDatabase(r, (k) => k('users').pluck('email'));
    t.same(users, [`owner@${slugs[i]}.test`], `${slugs[i]} has its own admin only`);
  }
});

t.test('the admin gets the verification link by mail; following it verifies the tenant once; unverified tenants cannot invite', async (t) => {
  const res = await post(body('mail-co'));
  t.equal(res.statusCode, 201, res.body);
  const { accessToken } = res.json();
  const invite = () =>
    app.inject({
      method: 'POST',
      url: '/api/v1/invitations',
      headers: { 'x-tenant': 'mail-co', authorization: `Bearer ${accessToken}` },
      payload: { email: 'colleague@mail-co.test', role: 'staff' },
    });
  isProblem(t, await invite(), 403, 'EMAIL_NOT_VERIFIED');
  const mail = await smtp.waitForMail((m) => m.to.includes('owner@mail-co.test'));
  t.match(mail.subject, /Verify your email/);
  const link = linkIn(mail);
  t.equal(link.pathname, '/platform/v1/signup/verify');
  const verified = await app.inject({ method: 'GET', url: `${link.pathname}${link.search}` });
  t.equal(verified.statusCode, 200, verified.body);
  t.same(verified.json(), { tenant: { slug: 'mail-co', emailVerified: true } });
  t.equal((await ctx.catalog.tenants.findBySlug('mail-co'))!.unverifiedSince, null);
  isProblem(t, await app.inject({ method: 'GET', url: `${link.pathname}${link.search}` }), 404, 'VERIFICATION_NOT_FOUND');
  // Every API process re-reads the tenant row within one poll: then invitations are open.
  let invited = await invite();
  for (let i = 0; i < 40 && invited.statusCode === 403; i++) {
    await new Promise((r) => setTimeout(r, 100));
    invited = await invite();
  }
  t.equal(invited.statusCode, 201, invited.body);
});

t.test('the verification token verifies once; unverified tenants are deleted after their time and free their slug', async (t) => {
  const r = await signup(ctx, body('verify-co'), 'test');
  t.ok(r.tenant.unverifiedSince);
  await t.rejects(verifySignup(ctx, 'x'.repeat(43)), { code: 'VERIFICATION_NOT_FOUND' });
  const verified = await verifySignup(ctx, r.verifyToken);
  t.equal(verified.unverifiedSince, null);
  await t.rejects(verifySignup(ctx, r.verifyToken), { code: 'VERIFICATION_NOT_FOUND' }, 'one use');
  const res = await app.inject({ method: 'GET', url: `/platform/v1/signup/verify?token=${r.verifyToken}` });
  isProblem(t, res, 404, 'VERIFICATION_NOT_FOUND');

  const stale = await signup(ctx, body('stale-co'), 'test');
  const fresh = await signup(ctx, body('fresh-co'), 'test');
  await ctx.catalog
    .knex('tenants')
    .where({ id: stale.tenant.id })
    .update({ unverified_since: new Date(Date.now() - 73 * 3_600_000) });
  const deleted = await purgeUnverifiedTenants(ctx, 72, 'test');
  t.same(deleted, ['stale-co']);
  t.notOk(await ctx.catalog.tenants.findBySlug('stale-co'), 'its catalog row is gone');
  t.notOk((await footprint(ctx)).databases.includes(stale.tenant.databaseName), 'its database is gone');
  t.ok(await ctx.catalog.tenants.findBySlug('fresh-co'), 'a tenant inside its time stays');
  t.ok(await ctx.catalog.tenants.findBySlug('verify-co'), 'a verified tenant stays');
  t.equal((await post(body('stale-co'))).statusCode, 201, 'the slug can be signed up again');
  t.ok(fresh);
});

t.test('signup is refused when disabled (403 SIGNUP_DISABLED) and rate limited per IP (429)', async (t) => {
  ctx.config.signup.enabled = false;
  try {
    const before = await footprint(ctx);
    isProblem(t, await post(body('never-co')), 403, 'SIGNUP_DISABLED');
    t.same(await footprint(ctx), before);
  } finally {
    ctx.config.signup.enabled = true;
  }
  const limited = await setupApp(t, { SILO_SIGNUP_ENABLED: '1', SILO_SIGNUP_RATE_LIMIT: '2' });
  const send = (payload: object) => limited.app.inject({ method: 'POST', url: '/platform/v1/signup', payload });
  isProblem(t, await send({ slug: 'x' }), 400, 'VALIDATION_FAILED');
  t.equal((await send(body('limit-co'))).statusCode, 201, 'the second attempt of the hour');
  const third = await send(body('limit-two-co'));
  isProblem(t, third, 429, 'RATE_LIMITED');
  t.ok(third.headers['retry-after'], 'Retry-After says when');
  t.notOk(await limited.ctx.catalog.tenants.findBySlug('limit-two-co'), 'nothing made past the limit');
});
