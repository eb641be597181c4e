/**
 * Tenant sign-in through the API: credentials, access tokens and their audiences,
 * refresh-token rotation with reuse detection, logout, tokens never crossing tenants,
 * the login rate limit, and logs that never carry a password or a token.
 */
import { createHmac } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t from 'tap';
import { buildApp } from '../src/http/app.js';
import { loggerOptions } from '../src/lib/logger.js';
import { PASSWORD, TEST_JWT_SECRET, login, makeTenant, platformLogin, setupApp } from './fixtures/app.js';
import { isProblem } from './fixtures/problem.js';

const { app, ctx } = await setupApp(t);
const ta = await makeTenant(ctx, 'auth-a');
await makeTenant(ctx, 'auth-b');

const post = (url: string, payload: object, headers: Record<string, string> = { 'x-tenant': 'auth-a' }) =>
  app.inject({ method: 'POST', url, payload, headers });
const refresh = (refreshToken: string, slug = 'auth-a') => post('/api/v1/auth/refresh', { refreshToken }, { 'x-tenant': slug });
const me = (headers: Record<string, string>, url = '/api/v1/auth/me') => app.inject({ url, headers });
const claimsOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;

/** An HS256 JWT over any claims, signed with `secret`. */
function signJwt(claims: object, secret: string, header: object = { alg: 'HS256', typ: 'JWT' }) {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const unsigned = `${enc(header)}.${enc(claims)}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}

t.test('login answers a Bearer access token for this tenant and a refresh token valid 7 days', async (t) => {
  const res = await post('/api/v1/auth/login', { email: 'admin@auth-a.test', password: PASSWORD });
  t.equal(res.statusCode, 200, res.body);
  const body = res.json();
  t.same(Object.keys(body).sort(), ['accessToken', 'expiresIn', 'refreshExpiresAt', 'refreshToken', 'tokenType']);
  t.equal(body.tokenType, 'Bearer');
  t.equal(body.expiresIn, 900);
  t.match(body.accessToken, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  t.match(claimsOf(body.accessToken), { aud: 'tenant', tid: ta.id, role: 'admin', sub: String(1) });
  t.type(body.refreshToken, 'string');
  t.ok(body.refreshToken.length >= 40, 'refresh token is long and random');
  const days = (Date.parse(body.refreshExpiresAt) - Date.now()) / 86_400_000;
  t.ok(days > 6.9 && days <= 7, `refresh token expires in 7 days (${days})`);
  t.equal((await post('/api/v1/auth/login', { email: '  ADMIN@Auth-A.test ', password: PASSWORD })).statusCode, 200, 'email is trimmed and case-insensitive');
});

t.test('wrong password and unknown email get the same 401 INVALID_CREDENTIALS answer', async (t) => {
  const wrong = await post('/api/v1/auth/login', { email: 'admin@auth-a.test', password: `${PASSWORD}!` });
  const unknown = await post('/api/v1/auth/login', { email: 'nobody@auth-a.test', password: PASSWORD });
  isProblem(t, wrong, 401, 'INVALID_CREDENTIALS');
  isProblem(t, unknown, 401, 'INVALID_CREDENTIALS');
  const { requestId: _a, ...w } = wrong.json();
  const { requestId: _b, ...u } = unknown.json();
  t.same(w, u, 'nothing tells an unknown email from a wrong password');
  const otherTenant = await post('/api/v1/auth/login', { email: 'admin@auth-a.test', password: PASSWORD }, { 'x-tenant': 'auth-b' });
  isProblem(t, otherTenant, 401, 'INVALID_CREDENTIALS');
});

t.test('/auth/me answers the signed-in user with a token and 401 without a valid one', async (t) => {
  const { accessToken } = await login(app, 'auth-a');
  const ok = await me({ 'x-tenant': 'auth-a', authorization: `Bearer ${accessToken}` });
  t.equal(ok.statusCode, 200, ok.body);
  t.match(ok.json(), { id: 1, email: 'admin@auth-a.test', role: 'admin', active: true });
  t.notOk('passwordHash' in ok.json() || 'password_hash' in ok.json(), 'never the hash');

  isProblem(t, await me({ 'x-tenant': 'auth-a' }), 401, 'UNAUTHORIZED');
  for (const authorization of ['Basic YWRtaW46cGFzcw==', 'Bearer', 'Bearer ', `bearer ${accessToken}`, `Bearer ${accessToken} extra`, accessToken]) {
    const res = await me({ 'x-tenant': 'auth-a', authorization });
    isProblem(t, res, 401, 'INVALID_TOKEN');
  }
  for (const [what, token] of [
    ['garbage', 'not.a.jwt'],
    ['a truncated token', accessToken.slice(0, -4)],
    ['a token signed with another secret', signJwt(claimsOf(accessToken), 'another-secret-0123456789-abcdefghijklmnop')],
    ['an unsigned token (alg none)', `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${accessToken.split('.')[1]}.`],
    ['a token claiming another algorithm', signJwt(claimsOf(accessToken), TEST_JWT_SECRET, { alg: 'HS512', typ: 'JWT' })],
    ['a token not valid yet (nbf)', signJwt({ ...claimsOf(accessToken), nbf: Math.floor(Date.now() / 1000) + 3600 }, TEST_JWT_SECRET)],
    [
      'a token with an unknown critical header',
      signJwt(claimsOf(accessToken), TEST_JWT_SECRET, { alg: 'HS256', typ: 'JWT', crit: ['x-unknown'], 'x-unknown': 1 }),
    ],
    ['a token whose payload is not an object', signJwt([1, 2], TEST_JWT_SECRET)],
  ] as const) {
    const res = await me({ 'x-tenant': 'auth-a', authorization: `Bearer ${token}` });
    t.equal(res.statusCode, 401, `${what}: ${res.body}`);
    t.equal(res.json().code, 'INVALID_TOKEN', what);
    t.match(res.headers['content-type'], /^application\/problem\+json/, what);
  }
  const now = Math.floor(Date.now() / 1000);
  const expired = signJwt({ ...claimsOf(accessToken), iat: now - 3600, exp: now - 60 }, TEST_JWT_SECRET);
  isProblem(t, await me({ 'x-tenant': 'auth-a', authorization: `Bearer ${expired}` }), 401, 'TOKEN_EXPIRED');
});

t.test('a token accepted while valid is refused once it expires, and the same payload under another signature never rides on it', async (t) => {
  const { accessToken } = await login(app, 'auth-a');
  const now = Math.floor(Date.now() / 1000);
  const short = signJwt({ ...claimsOf(accessToken), iat: now, exp: now + 2 }, TEST_JWT_SECRET);
  const first = await me({ 'x-tenant': 'auth-a', authorization: `Bearer ${short}` });
  t.equal(first.statusCode, 200, `accepted before it expires: ${first.body}`);
  // The same claims signed with another key: not the same text, so not the accepted token.
  const forged = signJwt({ ...claimsOf(accessToken), iat: now, exp: now + 2 }, 'another secret of at least 32 bytes, not ours');
  isProblem(t, await me({ 'x-tenant': 'auth-a', authorization: `Bearer ${forged}` }), 401, 'INVALID_TOKEN');
  await new Promise((r) => setTimeout(r, (now + 2) * 1000 - Date.now() + 50));
  isProblem(t, await me({ 'x-tenant': 'auth-a', authorization: `Bearer ${short}` }), 401, 'TOKEN_EXPIRED');
});

t.test('refresh rotates the token; reusing a rotated one revokes the whole family', async (t) => {
  const first = await login(app, 'auth-a');
  const other = await login(app, 'auth-a');

  const r2 = await refresh(first.refreshToken);
  t.equal(r2.statusCode, 200, r2.body);
  const second = r2.json();
  t.not(second.refreshToken, first.refreshToken, 'a new refresh token');
  t.match(claimsOf(second.accessToken), { aud: 'tenant', tid: ta.id, sub: '1' });
  t.equal((await me({ 'x-tenant': 'auth-a', authorization: `Bearer ${second.accessToken}` })).statusCode, 200, 'the new access token works');

  const r3 = await refresh(second.refreshToken);
  t.equal(r3.statusCode, 200, 'the new refresh token works');
  const newest = r3.json().refreshToken as string;

  isProblem(t, await refresh(first.refreshToken), 401, 'REFRESH_TOKEN_REUSED');
  const after = await refresh(newest);
  t.equal(after.statusCode, 401, 'the newest token of that family is revoked too');
  t.match(after.json().code, /^(REFRESH_TOKEN_REUSED|INVALID_REFRESH_TOKEN)$/);
  isProblem(t, await refresh(second.refreshToken), 401, 'REFRESH_TOKEN_REUSED');

  t.equal((await refresh(other.refreshToken)).statusCode, 200, 'another sign-in of the same user is not affected');
  isProblem(t, await refresh('never-issued-token'), 401, 'INVALID_REFRESH_TOKEN');
});

t.test('a refresh token only works at the tenant that issued it', async (t) => {
  const { refreshToken } = await login(app, 'auth-a');
  isProblem(t, await refresh(refreshToken, 'auth-b'), 401, 'INVALID_REFRESH_TOKEN');
  t.equal((await refresh(refreshToken, 'auth-a')).statusCode, 200, 'and still works at its own tenant');
});

t.test('logout revokes the refresh token and its family', async (t) => {
  const { refreshToken } = await login(app, 'auth-a');
  const out = await post('/api/v1/auth/logout', { refreshToken });
  t.equal(out.statusCode, 204);
  t.equal(out.body, '');
  const res = await refresh(refreshToken);
  t.equal(res.statusCode, 401, 'refresh after logout fails');

  const s = await login(app, 'auth-a');
  const rotated = (await refresh(s.refreshToken)).json().refreshToken as string;
  t.equal((await post('/api/v1/auth/logout', { refreshToken: s.refreshToken })).statusCode, 204, 'logout with an older token of the family');
  t.equal((await refresh(rotated)).statusCode, 401, 'revokes its newest token too');
  t.equal((await post('/api/v1/auth/logout', { refreshToken: 'unknown' })).statusCode, 204, 'unknown tokens are ignored');
});

t.test("tenant A's token sent to tenant B is 401 TOKEN_TENANT_MISMATCH by every identification source", async (t) => {
  const { accessToken } = await login(app, 'auth-a');
  const authorization = `Bearer ${accessToken}`;
  isProblem(t, await me({ authorization, 'x-tenant': 'auth-b' }), 401, 'TOKEN_TENANT_MISMATCH');
  isProblem(t, await me({ authorization }, '/api/v1/auth/me?tenant=auth-b'), 401, 'TOKEN_TENANT_MISMATCH');
  isProblem(t, await me({ authorization, host: 'auth-b.localhost' }), 401, 'TOKEN_TENANT_MISMATCH');
  t.equal((await me({ authorization, host: 'auth-a.localhost' })).statusCode, 200, 'its own subdomain works');
});

t.test('platform and tenant tokens never open the other audience', async (t) => {
  const platform = await platformLogin(app, ctx, 'operator');
  isProblem(t, await me({ 'x-tenant': 'auth-a', authorization: `Bearer ${platform}` }), 401, 'WRONG_AUDIENCE');
  const { accessToken } = await login(app, 'auth-a');
  isProblem(t, await me({ authorization: `Bearer ${accessToken}` }, '/platform/v1/tenants'), 401, 'WRONG_AUDIENCE');
  const forgedTid = signJwt({ ...claimsOf(platform), aud: 'tenant', tid: ta.id, role: 'admin' }, 'another-secret-0123456789-abcdefghijklmnop');
  t.equal((await me({ 'x-tenant': 'auth-a', authorization: `Bearer ${forgedTid}` })).statusCode, 401, 'claims cannot be rewritten without the secret');
});

t.test('login is rate limited per tenant and IP: 429 RATE_LIMITED with retry-after', async (t) => {
  const limited = await setupApp(t, { SILO_LOGIN_RATE_LIMIT: '3' });
  await makeTenant(limited.ctx, 'auth-rl');
  await makeTenant(limited.ctx, 'auth-rl2');
  const attempt = (slug: string, password: string) =>
    limited.app.inject({ method: 'POST', url: '/api/v1/auth/login', headers: { 'x-tenant': slug }, payload: { email: `admin@${slug}.test`, password } });
  for (let i = 0; i < 3; i++) t.equal((await attempt('auth-rl', 'wrong password!')).statusCode, 401, `attempt ${i + 1} is judged`);
  const res = await attempt('auth-rl', PASSWORD);
  isProblem(t, res, 429, 'RATE_LIMITED');
  t.match(res.headers['retry-after'], /^\d+$/);
  t.ok(Number(res.headers['retry-after']) > 0 && Number(res.headers['retry-after']) <= 60, 'retry within the minute');
  t.equal((await attempt('auth-rl2', PASSWORD)).statusCode, 200, 'another tenant has its own budget');
});

t.test('login, refresh and a failed login are logged without the password or any token', async (t) => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const logger = pino({ ...loggerOptions('trace', false) }, sink);
  const logged = await buildApp({ ctx, logger });
  t.teardown(() => logged.close());
  const secretPassword = 'a-secret-that-must-never-be-logged';
  const call = (url: string, payload: object, headers: Record<string, string> = {}) =>
    logged.inject({ method: 'POST', url, payload, headers: { 'x-tenant': 'auth-a', ...headers } });

  const failed = await call('/api/v1/auth/login', { email: 'admin@auth-a.test', password: secretPassword });
  t.equal(failed.statusCode, 401);
  const ok = await call('/api/v1/auth/login', { email: 'admin@auth-a.test', password: PASSWORD });
  t.equal(ok.statusCode, 200);
  const { accessToken, refreshToken } = ok.json();
  const rotated = await call('/api/v1/auth/refresh', { refreshToken });
  t.equal(rotated.statusCode, 200);
  await call('/api/v1/auth/refresh', { refreshToken }); // reuse: refused and logged
  await logged.inject({ url: '/api/v1/auth/me', headers: { 'x-tenant': 'auth-a', authorization: `Bearer ${accessToken}` } });
  await logged.inject({ url: '/api/v1/auth/me', headers: { 'x-tenant': 'auth-b', authorization: `Bearer ${accessToken}` } });
  await call('/api/v1/auth/logout', { refreshToken: rotated.json().refreshToken });
  logger.flush();

  t.ok(lines.length > 0, 'something was logged');
  const failure = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'failed login');
  t.match(failure, { email: 'admin@auth-a.test', tenant: 'auth-a' }, 'the failed login is logged with email and tenant');
  const all = lines.join('\n');
  for (const [what, secret] of [
    ['the wrong password', secretPassword],
    ['the password', PASSWORD],
    ['the access token', accessToken],
    ['the access token signature', accessToken.split('.')[2]],
    ['the refresh token', refreshToken],
    ['the rotated refresh token', rotated.json().refreshToken],
    ['the new access token', rotated.json().accessToken],
  ] as const) {
    t.notOk(all.includes(secret), `no log line contains ${what}`);
  }
});
