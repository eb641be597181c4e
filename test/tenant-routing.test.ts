/**
 * Tenant identification on `/api/v1`: every source (subdomain, custom domain, X-Tenant,
 * ?tenant=) routes to its tenant; two sources naming different tenants are a 400
 * conflict; unknown, missing, suspended and unavailable tenants get their own problem
 * codes; and a flood of requests for an unknown name barely reaches the catalog.
 */
import t from 'tap';
import type { TenantStatus } from '../src/catalog/index.js';
import { addDomain, suspendTenant } from '../src/provisioning/tenants-service.js';
import { login, makeTenant, PASSWORD, setupApp } from './fixtures/app.js';
import { isProblem } from './fixtures/problem.js';

const { app, ctx } = await setupApp(t, { SILO_TENANT_CHANGE_POLL_MS: '0' });
await makeTenant(ctx, 'acme');
await makeTenant(ctx, 'globex');
const moody = await makeTenant(ctx, 'moody');
await makeTenant(ctx, 'sleepy');
await addDomain(ctx, 'acme', 'crm.acme-corp.example', 'test');
const acme = (await login(app, 'acme')).accessToken;
const moodyToken = (await login(app, 'moody')).accessToken;

/** GET /api/v1/auth/me with a token and routing headers. */
const me = (headers: Record<string, string>, query = '', token = acme) =>
  app.inject({ url: `/api/v1/auth/me${query}`, headers: { authorization: `Bearer ${token}`, ...headers } });

t.test('each identification source routes to its tenant', async (t) => {
  const ways: Array<[string, Record<string, string>, string]> = [
    ['subdomain', { host: 'acme.localhost' }, ''],
    ['subdomain with a port', { host: 'acme.localhost:3000' }, ''],
    ['custom domain', { host: 'crm.acme-corp.example' }, ''],
    ['custom domain, any case', { host: 'CRM.Acme-Corp.example:8443' }, ''],
    ['X-Tenant header', { 'x-tenant': 'acme' }, ''],
    ['?tenant= query', {}, '?tenant=acme'],
  ];
  for (const [name, headers, query] of ways) {
    const res = await me(headers, query);
    t.equal(res.statusCode, 200, `${name}: ${res.body}`);
    t.equal(res.json().email, 'admin@acme.test', name);
  }
});

t.test('sign-in works through every source', async (t) => {
  const ways: Array<[string, Record<string, string>, string]> = [
    ['subdomain', { host: 'globex.localhost' }, ''],
    ['header', { 'x-tenant': 'globex' }, ''],
    ['query', {}, '?tenant=globex'],
  ];
  for (const [name, headers, query] of ways) {
    const res = await app.inject({ method: 'POST', url: `/api/v1/auth/login${query}`, headers, payload: { email: 'admin@globex.test', password: PASSWORD } });
    t.equal(res.statusCode, 200, `${name}: ${res.body}`);
    t.type(res.json().accessToken, 'string');
  }
  const viaDomain = await app.inject({
    method: 'POST',
    url: '/api/v1/auth/login',
    headers: { host: 'crm.acme-corp.example' },
    payload: { email: 'admin@acme.test', password: PASSWORD },
  });
  t.equal(viaDomain.statusCode, 200, 'custom domain');
  const wrongTenant = await app.inject({
    method: 'POST',
    url: '/api/v1/auth/login',
    headers: { 'x-tenant': 'globex' },
    payload: { email: 'admin@acme.test', password: PASSWORD },
  });
  t.equal(wrongTenant.statusCode, 401, "acme's admin does not exist in globex");
});

t.test('the same tenant named by two sources is served', async (t) => {
  for (const [headers, query] of [
    [{ host: 'acme.localhost', 'x-tenant': 'acme' }, ''],
    [{ 'x-tenant': 'ACME' }, '?tenant=acme'],
    [{ host: 'crm.acme-corp.example' }, '?tenant=acme'],
    [{ host: 'acme.localhost', 'x-tenant': 'acme' }, '?tenant=acme'],
  ] as Array<[Record<string, string>, string]>) {
    t.equal((await me(headers, query)).statusCode, 200, JSON.stringify({ headers, query }));
  }
});

t.test('two sources naming different tenants are a 400 TENANT_CONFLICT', async (t) => {
  for (const [name, headers, query] of [
    ['header vs query', { 'x-tenant': 'acme' }, '?tenant=globex'],
    ['subdomain vs header', { host: 'acme.localhost', 'x-tenant': 'globex' }, ''],
    ['subdomain vs query', { host: 'globex.localhost' }, '?tenant=acme'],
    ['custom domain vs header', { host: 'crm.acme-corp.example', 'x-tenant': 'globex' }, ''],
    ['query given twice', {}, '?tenant=acme&tenant=globex'],
    ['conflict with an unknown name', { 'x-tenant': 'acme' }, '?tenant=nobody'],
  ] as Array<[string, Record<string, string>, string]>) {
    const res = await me(headers, query);
    isProblem(t, res, 400, 'TENANT_CONFLICT');
    t.comment(`${name}: ${res.json().detail}`);
  }
  // The login route answers the same, before reading any credentials.
  const login = await app.inject({
    method: 'POST',
    url: '/api/v1/auth/login?tenant=globex',
    headers: { 'x-tenant': 'acme' },
    payload: { email: 'admin@acme.test', password: PASSWORD },
  });
  isProblem(t, login, 400, 'TENANT_CONFLICT');
});

t.test('an unknown tenant is a 404 TENANT_NOT_FOUND', async (t) => {
  for (const [headers, query] of [
    [{ 'x-tenant': 'nobody' }, ''],
    [{}, '?tenant=nobody'],
    [{ host: 'nobody.localhost' }, ''],
    [{ 'x-tenant': 'Not a slug!' }, ''],
    [{ 'x-tenant': 'x'.repeat(200) }, ''],
  ] as Array<[Record<string, string>, string]>) {
    isProblem(t, await me(headers, query), 404, 'TENANT_NOT_FOUND');
  }
  const unknownDomain = await me({ host: 'crm.nobody.example' });
  t.equal(unknownDomain.statusCode, 404, 'an unknown custom domain names no tenant');
});

t.test('a request that names no tenant is a 404 TENANT_REQUIRED', async (t) => {
  const none: Array<Record<string, string>> = [{}, { host: 'localhost' }, { host: '127.0.0.1:3000' }, { 'x-tenant': '' }, { host: 'a.b.localhost' }];
  for (const headers of none) {
    isProblem(t, await me(headers), 404, 'TENANT_REQUIRED');
  }
  isProblem(t, await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: 'a@b.test', password: PASSWORD } }), 404, 'TENANT_REQUIRED');
  t.equal((await app.inject({ url: '/health' })).statusCode, 200, 'routes outside /api/v1 need no tenant');
});

t.test('a suspended tenant is a 403 TENANT_SUSPENDED, even with a valid token', async (t) => {
  t.equal((await me({ 'x-tenant': 'moody' }, '', moodyToken)).statusCode, 200);
  await suspendTenant(ctx, 'moody', 'test', 'unpaid');
  isProblem(t, await me({ 'x-tenant': 'moody' }, '', moodyToken), 403, 'TENANT_SUSPENDED');
  isProblem(t, await me({ host: 'moody.localhost' }, '', moodyToken), 403, 'TENANT_SUSPENDED');
  const signIn = await app.inject({
    method: 'POST',
    url: '/api/v1/auth/login',
    headers: { 'x-tenant': 'moody' },
    payload: { email: 'admin@moody.test', password: PASSWORD },
  });
  isProblem(t, signIn, 403, 'TENANT_SUSPENDED');
  await ctx.catalog.tenants.update(moody.id, { status: 'active', statusReason: null, suspendedAt: null });
  app.tenantResolver.invalidate('moody');
  t.equal((await me({ 'x-tenant': 'moody' }, '', moodyToken)).statusCode, 200, 'serves again once active');
});

t.test('a tenant in maintenance, provisioning or failed is a 503 TENANT_UNAVAILABLE with Retry-After', async (t) => {
  const sleepy = (await ctx.catalog.tenants.findBySlug('sleepy'))!;
  const token = (await login(app, 'sleepy')).accessToken;
  for (const status of ['maintenance', 'provisioning', 'failed'] as TenantStatus[]) {
    await ctx.catalog.tenants.update(sleepy.id, { status });
    app.tenantResolver.invalidate('sleepy');
    const res = await me({ 'x-tenant': 'sleepy' }, '', token);
    isProblem(t, res, 503, 'TENANT_UNAVAILABLE');
    const retryAfter = Number(res.headers['retry-after']);
    t.ok(Number.isInteger(retryAfter) && retryAfter > 0, `${status}: Retry-After is a positive number of seconds (${res.headers['retry-after']})`);
    t.equal(res.json().retryAfter, retryAfter, `${status}: the body repeats it`);
    t.match(res.json().detail, status === 'maintenance' ? /maintenance/ : new RegExp(status));
  }
  await ctx.catalog.tenants.update(sleepy.id, { status: 'deleted' });
  app.tenantResolver.invalidate('sleepy');
  isProblem(t, await me({ 'x-tenant': 'sleepy' }, '', token), 404, 'TENANT_NOT_FOUND');
  await ctx.catalog.tenants.update(sleepy.id, { status: 'active' });
  app.tenantResolver.invalidate('sleepy');
  t.equal((await me({ 'x-tenant': 'sleepy' }, '', token)).statusCode, 200, 'serves again once active');
});

t.test('a flood of requests for an unknown tenant reaches the catalog only a few times', async (t) => {
  const repo = ctx.catalog.tenants;
  const original = repo.findBySlug.bind(repo);
  const originalDomain = repo.slugByDomain.bind(repo);
  const lookups = { slug: 0, domain: 0 };
  repo.findBySlug = (slug, trx) => {
    if (slug === 'phantom') lookups.slug++;
    return original(slug, trx);
  };
  repo.slugByDomain = (domain, ...rest) => {
    if (domain === 'crm.phantom.example') lookups.domain++;
    return originalDomain(domain, ...rest);
  };
  t.teardown(() => {
    repo.findBySlug = original;
    repo.slugByDomain = originalDomain;
  });

  // All at once (the worst case: every request misses the cache before the first lookup ends), then one by one.
  const burst = await Promise.all(Array.from({ length: 250 }, (_, i) => me(i % 2 ? { 'x-tenant': 'phantom' } : { host: 'phantom.localhost' })));
  for (let i = 0; i < 250; i++) burst.push(await me({}, '?tenant=phantom'));
  t.equal(burst.length, 500);
  t.ok(
    burst.every((r) => r.statusCode === 404 && r.json().code === 'TENANT_NOT_FOUND'),
    'all 500 are 404 TENANT_NOT_FOUND',
  );
  t.ok(lookups.slug >= 1 && lookups.slug <= 3, `500 requests made ${lookups.slug} catalog lookup(s) by slug`);

  const domains = await Promise.all(Array.from({ length: 200 }, () => me({ host: 'crm.phantom.example' })));
  t.ok(
    domains.every((r) => r.statusCode === 404),
    'all unknown-domain requests are 404',
  );
  t.ok(lookups.domain >= 1 && lookups.domain <= 3, `200 requests made ${lookups.domain} catalog lookup(s) by domain`);
});
