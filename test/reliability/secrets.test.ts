/**
 * Secrets never leak. A representative workload runs in-process: tenants created with a
 * chosen admin password and with a generated one, tenant and platform sign-ins right and
 * wrong, refresh-token rotation, reuse and logout, a password change, users added with
 * passwords, error answers (bad input next to a password, a tampered token, a body that
 * is not JSON, a bearer token in the query string as RFC 6750 §2.3 lets clients send it),
 * with the app's and the services' pino loggers at trace writing to memory; then `silo`
 * CLI runs with LOG_LEVEL=trace, with and without --admin-password / --password.
 *
 * Every log line, every column of every request_history and operations row, every
 * response body and header, and the stdout and stderr of every CLI run are searched for
 * every password used, every access and refresh token issued, the JWT secret,
 * SILO_SECRET_KEY (base64, base64url and hex) and every tenant database password
 * (decrypted from the catalog with decryptSecret) and its ciphertext. None may appear,
 * except where a secret is handed out on purpose, and only there: a sign-in or refresh
 * answer carries the tokens it issues, a create answer carries the admin password it
 * generated, and a CLI run that generated a password prints it exactly once, on its own
 * stdout.
 */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { pino } from 'pino';
import t from 'tap';
import { migrateCatalog } from '../../src/catalog/db.js';
import { DEFAULT_SERVER_NAME } from '../../src/catalog/servers.js';
import { loadConfig } from '../../src/config.js';
import { createContext } from '../../src/context.js';
import { buildApp } from '../../src/http/app.js';
import { loggerOptions } from '../../src/lib/logger.js';
import { decryptSecret } from '../../src/lib/secrets.js';
import { addPlatformUser } from '../../src/provisioning/users-service.js';
import { dropEverything, runCli, testEnv, uniqueNames, type CliResult } from '../fixtures/env.js';

const started = Date.now();
const rnd = (prefix: string) => `${prefix}-${randomBytes(15).toString('base64url')}`;
/** 11 random characters: one short of the minimum password length. */
const tooShort = () => randomBytes(9).toString('base64url').slice(0, 11);
const JWT_SECRET = `jwt-secret-${randomBytes(32).toString('base64url')}`;
const SECRET_KEY = randomBytes(32);

// A catalog of its own, with one pino logger (trace, Silo's redaction) for the app and the services.
const names = uniqueNames();
const env = testEnv(names, { SILO_JWT_SECRET: JWT_SECRET, SILO_SECRET_KEY: SECRET_KEY.toString('base64'), SILO_LOGIN_RATE_LIMIT: '1000', LOG_LEVEL: 'trace' });
const config = loadConfig(env);
await migrateCatalog(config);
const logLines: string[] = [];
const sink = new Writable({
  write(chunk, _enc, cb) {
    for (const l of String(chunk).split('\n').filter(Boolean)) logLines.push(l);
    cb();
  },
});
const ctx = createContext(config, pino(loggerOptions('trace', false), sink));
await ctx.catalog.servers.upsert(DEFAULT_SERVER_NAME, config.tenantDb);
const app = await buildApp({ ctx });
await app.ready();
t.teardown(async () => {
  await app.close();
  await ctx.close();
  await dropEverything(names);
});

/** Every secret, with a label and the places (haystack names) where it may appear on purpose. */
const secrets = new Map<string, { label: string; allowedIn: Set<string> }>();
function secret(label: string, value: string, allowedIn: string[] = []): string {
  if (value.length < 8) throw new Error(`secret ${label} is too short to search for`);
  secrets.set(value, { label, allowedIn: new Set(allowedIn) });
  return value;
}

/** Every answer of the workload, named `#<n> <label>`. */
const responses: Array<{ name: string; res: LightMyRequestResponse }> = [];
async function call(label: string, opts: InjectOptions, status?: number): Promise<{ name: string; res: LightMyRequestResponse; body: any }> {
  const res = await app.inject(opts);
  const name = `#${responses.length + 1} ${label}`;
  responses.push({ name, res });
  if (status !== undefined && res.statusCode !== status) throw new Error(`${name}: expected ${status}, got ${res.statusCode} ${res.body}`);
  const body = String(res.headers['content-type'] ?? '').includes('json') && res.body ? res.json() : undefined;
  return { name, res, body };
}
/** A sign-in or refresh answer: its tokens are secrets that may appear in that answer's body only. */
function issued(r: { name: string; body: any }): { accessToken: string; refreshToken?: string } {
  for (const [kind, token] of [
    ['access', r.body.accessToken],
    ['refresh', r.body.refreshToken],
  ] as const) {
    if (!token) continue;
    // Access tokens carry no nonce: two sign-ins of one user in the same second get the same JWT,
    // which then may appear in both answers.
    const known = secrets.get(token);
    if (known) known.allowedIn.add(`response body ${r.name}`);
    else secret(`${kind} token from ${r.name}`, token, [`response body ${r.name}`]);
  }
  return r.body;
}
const json = (payload: unknown, headers: Record<string, string> = {}) => ({ payload: payload as object, headers });
const bearer = (token: string, slug?: string) => ({ authorization: `Bearer ${token}`, ...(slug ? { 'x-tenant': slug } : {}) });

const cliRuns: Array<{ name: string; r: CliResult }> = [];
async function cli(label: string, args: string[], code = 0): Promise<CliResult> {
  const r = await runCli(args, env);
  const name = `#${cliRuns.length + 1} silo ${label}`;
  cliRuns.push({ name, r });
  if (r.code !== code) throw new Error(`${name}: expected exit ${code}, got ${r.code}: ${r.stdout} ${r.stderr}`);
  return r;
}

t.test('the workload runs', async (t) => {
  // Platform users and sign-in.
  const PLATFORM_PW = secret('platform password', rnd('platform-pw'));
  await addPlatformUser(ctx, { email: 'ops@silo.test', role: 'operator', password: PLATFORM_PW });
  const ops = issued(
    await call('platform login', { method: 'POST', url: '/platform/v1/auth/login', ...json({ email: 'ops@silo.test', password: PLATFORM_PW }) }, 200),
  );
  await call(
    'platform login, wrong password',
    { method: 'POST', url: '/platform/v1/auth/login', ...json({ email: 'ops@silo.test', password: secret('wrong platform password', rnd('wrong-platform')) }) },
    401,
  );
  const platform = bearer(ops.accessToken);

  // Tenants through the platform API: a chosen admin password, a generated one, a weak one, a conflict.
  const ADMIN_A = secret('admin password of sec-a', rnd('admin-a'));
  await call(
    'create sec-a',
    { method: 'POST', url: '/platform/v1/tenants', ...json({ slug: 'sec-a', adminEmail: 'admin@sec-a.test', adminPassword: ADMIN_A }, platform) },
    201,
  );
  const createB = await call(
    'create sec-b (generated admin password)',
    { method: 'POST', url: '/platform/v1/tenants', ...json({ slug: 'sec-b' }, platform) },
    201,
  );
  const GEN_B = secret('generated admin password of sec-b', createB.body.admin.password, [`response body ${createB.name}`]);
  await call(
    'create with a weak password',
    { method: 'POST', url: '/platform/v1/tenants', ...json({ slug: 'sec-x', adminPassword: secret('weak admin password', tooShort()) }, platform) },
    400,
  );
  await call(
    'create an existing slug',
    {
      method: 'POST',
      url: '/platform/v1/tenants',
      ...json({ slug: 'sec-a', adminPassword: secret('admin password of a conflicting create', rnd('conflict')) }, platform),
    },
    409,
  );

  // Tenant sign-in, refresh rotation and reuse, logout.
  const login = (label: string, slug: string, email: string, password: string, status = 200) =>
    call(label, { method: 'POST', url: '/api/v1/auth/login', ...json({ email, password }, { 'x-tenant': slug }) }, status);
  const a1 = issued(await login('login sec-a', 'sec-a', 'admin@sec-a.test', ADMIN_A));
  await login('login sec-a, wrong password', 'sec-a', 'admin@sec-a.test', secret('wrong admin password', rnd('wrong-admin')), 401);
  issued(await login('login sec-b with the generated password', 'sec-b', createB.body.admin.email, GEN_B));
  const refresh = (label: string, token: string, status = 200) =>
    call(label, { method: 'POST', url: '/api/v1/auth/refresh', ...json({ refreshToken: token }, { 'x-tenant': 'sec-a' }) }, status);
  const a2 = issued(await refresh('refresh', a1.refreshToken!));
  await refresh('refresh with a rotated token (reuse)', a1.refreshToken!, 401);
  await refresh('refresh with a token of the revoked family', a2.refreshToken!, 401);
  const a3 = issued(await login('login sec-a again', 'sec-a', 'admin@sec-a.test', ADMIN_A));
  await call('logout', { method: 'POST', url: '/api/v1/auth/logout', ...json({ refreshToken: a3.refreshToken }, { 'x-tenant': 'sec-a' }) }, 204);
  const admin = bearer(a3.accessToken, 'sec-a');

  // Users with passwords, a password change.
  const USER_PW = secret('password of m@sec-a.test', rnd('user-pw'));
  const created = await call(
    'add user m@sec-a.test',
    { method: 'POST', url: '/api/v1/users', ...json({ email: 'm@sec-a.test', role: 'manager', password: USER_PW }, admin) },
    201,
  );
  issued(await login('login m@sec-a.test', 'sec-a', 'm@sec-a.test', USER_PW));
  const USER_PW2 = secret('changed password of m@sec-a.test', rnd('user-pw2'));
  await call('change the password of m@sec-a.test', { method: 'PATCH', url: `/api/v1/users/${created.body.id}`, ...json({ password: USER_PW2 }, admin) }, 200);
  await login('login m@sec-a.test with the old password', 'sec-a', 'm@sec-a.test', USER_PW, 401);
  issued(await login('login m@sec-a.test with the new password', 'sec-a', 'm@sec-a.test', USER_PW2));

  // Error answers.
  await call(
    'add a user with a bad email',
    {
      method: 'POST',
      url: '/api/v1/users',
      ...json({ email: 'not-an-email', role: 'staff', password: secret('password next to a bad email', rnd('bad-email-pw')) }, admin),
    },
    400,
  );
  await call(
    'add a user with a short password',
    { method: 'POST', url: '/api/v1/users', ...json({ email: 's@sec-a.test', role: 'staff', password: secret('short user password', tooShort()) }, admin) },
    400,
  );
  await login('login with a password too long', 'sec-a', 'admin@sec-a.test', secret('over-long password', rnd('long').repeat(12)), 400);
  const tampered = secret('tampered access token', `${a3.accessToken.slice(0, -2)}${a3.accessToken.endsWith('AA') ? 'BB' : 'AA'}`);
  await call('a tampered token', { method: 'GET', url: '/api/v1/auth/me', headers: bearer(tampered, 'sec-a') }, 401);
  await call('a platform token on a tenant route', { method: 'GET', url: '/api/v1/auth/me', headers: bearer(ops.accessToken, 'sec-a') }, 401);
  await call('a tenant token on a platform route', { method: 'GET', url: '/platform/v1/tenants', headers: bearer(a3.accessToken) }, 401);
  await call(
    'a body that is not JSON',
    {
      method: 'POST',
      url: '/api/v1/auth/login',
      headers: { 'x-tenant': 'sec-a', 'content-type': 'application/json' },
      payload: `{"email":"admin@sec-a.test","password":"${ADMIN_A}"`,
    },
    400,
  );
  // RFC 6750 §2.3: a client may send the bearer token as the access_token query parameter.
  await call('a token in the query string', { method: 'GET', url: `/api/v1/auth/me?access_token=${a3.accessToken}`, headers: { 'x-tenant': 'sec-a' } }, 401);
  await call(
    'a password in the query string',
    { method: 'POST', url: `/platform/v1/auth/login?password=${PLATFORM_PW}`, ...json({ email: 'ops@silo.test' }) },
    400,
  );

  // CLI runs: chosen and generated passwords, errors, reads.
  const CLI_ADMIN_C = secret('admin password of sec-c (CLI)', rnd('cli-admin-c'));
  await cli('tenants create sec-c --admin-password', ['tenants', 'create', 'sec-c', '--admin-email', 'admin@sec-c.test', '--admin-password', CLI_ADMIN_C]);
  const createD = await cli('tenants create sec-d (generated)', ['tenants', 'create', 'sec-d']);
  const GEN_D = secret(
    'generated admin password of sec-d (CLI)',
    /Admin password \(shown once, store it now\): (\S+)/.exec(createD.stdout)?.[1] ?? '(none printed)',
    [`stdout ${cliRuns.at(-1)!.name}`],
  );
  const CLI_USER_PW = secret('password of u@sec-c.test (CLI)', rnd('cli-user'));
  await cli('users add --password', ['users', 'add', 'sec-c', 'u@sec-c.test', '--role', 'staff', '--password', CLI_USER_PW]);
  const genUser = await cli('users add (generated) --json', ['users', 'add', 'sec-c', 'gen@sec-c.test', '--role', 'staff', '--json']);
  const GEN_USER = secret('generated password of gen@sec-c.test (CLI)', JSON.parse(genUser.stdout).generatedPassword ?? '(none printed)', [
    `stdout ${cliRuns.at(-1)!.name}`,
  ]);
  const CLI_PLATFORM_PW = secret('password of cli-ops@silo.test (CLI)', rnd('cli-platform'));
  await cli('platform-users add --password', ['platform-users', 'add', 'cli-ops@silo.test', '--role', 'support', '--password', CLI_PLATFORM_PW]);
  const genOps = await cli('platform-users add (generated)', ['platform-users', 'add', 'gen-ops@silo.test', '--role', 'support']);
  const GEN_OPS = secret(
    'generated password of gen-ops@silo.test (CLI)',
    /Password \(shown once, store it now\): (\S+)/.exec(genOps.stdout)?.[1] ?? '(none printed)',
    [`stdout ${cliRuns.at(-1)!.name}`],
  );
  await cli(
    'users add with a bad email',
    ['users', 'add', 'sec-c', 'bad-email', '--role', 'staff', '--password', secret('password next to a bad email (CLI)', rnd('cli-bad'))],
    2,
  );
  await cli('tenants create with a short password', ['tenants', 'create', 'sec-e', '--admin-password', secret('short admin password (CLI)', tooShort())], 2);
  await cli('tenants show --json', ['tenants', 'show', 'sec-c', '--json']);
  await cli('tenants list --json', ['tenants', 'list', '--json']);
  await cli('operations list --json', ['operations', 'list', '--json']);
  await cli('tenants repair --json', ['tenants', 'repair', 'sec-c', '--json']);

  // The generated passwords are the real ones (and a sign-in answer does not repeat them).
  issued(await login('login sec-d with the CLI-generated password', 'sec-d', 'admin@sec-d.localhost', GEN_D));
  issued(await login('login gen@sec-c.test with the CLI-generated password', 'sec-c', 'gen@sec-c.test', GEN_USER));
  issued(await login('login u@sec-c.test', 'sec-c', 'u@sec-c.test', CLI_USER_PW));
  issued(await login('login sec-c admin', 'sec-c', 'admin@sec-c.test', CLI_ADMIN_C));
  issued(
    await call(
      'platform login with the CLI-generated password',
      { method: 'POST', url: '/platform/v1/auth/login', ...json({ email: 'gen-ops@silo.test', password: GEN_OPS }) },
      200,
    ),
  );
  issued(
    await call(
      'platform login cli-ops',
      { method: 'POST', url: '/platform/v1/auth/login', ...json({ email: 'cli-ops@silo.test', password: CLI_PLATFORM_PW }) },
      200,
    ),
  );

  // Reads of everything that could show a secret.
  await app.historyRecorder!.flush(true);
  for (const url of [
    '/platform/v1/tenants',
    '/platform/v1/tenants/sec-a',
    '/platform/v1/tenants/sec-c',
    '/platform/v1/operations',
    '/platform/v1/history?pageSize=100',
    '/platform/v1/history/stats',
  ]) {
    await call(`GET ${url}`, { method: 'GET', url, headers: platform }, 200);
  }
  const admin2 = bearer(issued(await login('login sec-a for the reads', 'sec-a', 'admin@sec-a.test', ADMIN_A)).accessToken, 'sec-a');
  for (const url of ['/api/v1/users', '/api/v1/activity', '/api/v1/history?pageSize=100', '/api/v1/auth/me'])
    await call(`GET ${url}`, { method: 'GET', url, headers: admin2 }, 200);
  for (const url of ['/health', '/ready', '/metrics', '/docs/json', '/platform/dashboard']) await call(`GET ${url}`, { method: 'GET', url }, 200);
  t.pass(`${responses.length} API requests, ${cliRuns.length} CLI runs`);
});

t.test('no password, token, key or database password appears anywhere it is not handed out on purpose', async (t) => {
  // Keys and every tenant's database password (and its ciphertext).
  secret('JWT secret', JWT_SECRET);
  secret('SILO_SECRET_KEY (base64)', SECRET_KEY.toString('base64'));
  secret('SILO_SECRET_KEY (base64url)', SECRET_KEY.toString('base64url'));
  secret('SILO_SECRET_KEY (hex)', SECRET_KEY.toString('hex'));
  const tenants = await ctx.catalog.tenants.list();
  t.ok(tenants.length >= 4, `${tenants.length} tenants`);
  for (const tenant of tenants) {
    secret(`database password of ${tenant.slug}`, decryptSecret(tenant.dbPasswordEnc, SECRET_KEY));
    secret(`encrypted database password of ${tenant.slug}`, tenant.dbPasswordEnc);
  }

  await app.historyRecorder!.flush(true);
  const history: Array<Record<string, unknown>> = await ctx.catalog.knex('request_history').select('*');
  const operations: Array<Record<string, unknown>> = await ctx.catalog.knex('operations').select('*');
  const haystacks: Array<{ name: string; text: string }> = [
    ...logLines.map((text, i) => ({ name: `log line ${i + 1}`, text })),
    ...history.map((row) => ({ name: `request_history ${String(row.id)}`, text: JSON.stringify(row) })),
    ...operations.map((row) => ({ name: `operation ${String(row.id)}`, text: JSON.stringify(row) })),
    ...responses.flatMap(({ name, res }) => [
      { name: `response body ${name}`, text: res.body },
      { name: `response headers ${name}`, text: JSON.stringify(res.headers) },
    ]),
    ...cliRuns.flatMap(({ name, r }) => [
      { name: `stdout ${name}`, text: r.stdout },
      { name: `stderr ${name}`, text: r.stderr },
    ]),
  ];
  t.ok(logLines.length > 100, `${logLines.length} log lines at trace`);
  t.ok(cliRuns.filter(({ r }) => /^\{"level":\d+,/m.test(r.stderr)).length >= 2, 'the CLI runs that provision log their steps (LOG_LEVEL=trace)');
  t.ok(history.length >= 40, `${history.length} request_history rows`);

  const leaks: Array<{ secret: string; in: string; context: string }> = [];
  const wrongCounts: Array<{ secret: string; in: string; count: number }> = [];
  for (const [value, { label, allowedIn }] of secrets) {
    for (const h of haystacks) {
      const count = h.text.split(value).length - 1;
      if (!count) continue;
      if (!allowedIn.has(h.name)) {
        const at = h.text.indexOf(value);
        leaks.push({ secret: label, in: h.name, context: h.text.slice(Math.max(0, at - 80), at + value.length + 40).replace(value, '<SECRET>') });
      } else if (h.name.startsWith('stdout') && count !== 1) {
        wrongCounts.push({ secret: label, in: h.name, count });
      }
    }
    // Each on-purpose appearance really happens (so the search itself is sound).
    for (const place of allowedIn) {
      const h = haystacks.find((x) => x.name === place);
      if (!h?.text.includes(value)) wrongCounts.push({ secret: label, in: place, count: 0 });
    }
  }
  t.ok(secrets.size >= 40, `${secrets.size} secrets searched in ${haystacks.length} places`);
  t.same(leaks, [], 'no secret appears where it is not handed out on purpose');
  t.same(wrongCounts, [], 'a generated password appears exactly once on the stdout of the run that generated it; issued tokens are in their own answers');
  t.comment(
    `secrets: ${secrets.size} secrets, ${haystacks.length} places (${logLines.length} log lines, ${history.length} history rows, ${responses.length} responses, ${cliRuns.length} CLI runs); ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
});
