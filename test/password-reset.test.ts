/**
 * Password reset of tenant users, with the mail read from a real SMTP server
 * (test/fixtures/smtp.ts): forgot-password answers one 202 whether the email is a user's
 * or not, before any lookup or mail; the link's token sets a new password once, within
 * an hour, and the user's older refresh and access tokens are refused afterwards; a weak
 * password changes nothing; deactivated users and over-asked addresses get no mail.
 */
import t from 'tap';
import type { LightMyRequestResponse } from 'fastify';
import { MAX_RESETS_PER_HOUR } from '../src/crm/password-resets.js';
import { PASSWORD, login, makeTenant, setupApp } from './fixtures/app.js';
import { rootKnex } from './fixtures/env.js';
import { isProblem } from './fixtures/problem.js';
import { linkIn, startSmtpServer } from './fixtures/smtp.js';

const SLUG = 'reset-a';
const NEW_PASSWORD = 'a brand new passphrase 42';
const smtp = await startSmtpServer(t);
const { app, ctx } = await setupApp(t, smtp.env);
const tenant = await makeTenant(ctx, SLUG);
const root = rootKnex();
t.teardown(() => root.destroy());
const users = () => root(`${tenant.databaseName}.users`);
const admin = (await login(app, SLUG)).accessToken;

let ip = 0;
/** Each call from its own address unless told: the per-IP limit is tested where it is set low. */
const post = (url: string, payload: object, headers: Record<string, string> = {}, remoteAddress = `10.1.0.${++ip}`) =>
  app.inject({ method: 'POST', url, payload, remoteAddress, headers: { 'x-tenant': SLUG, ...headers } });
const forgot = (email: string, remoteAddress?: string) => post('/api/v1/auth/forgot-password', { email }, {}, remoteAddress);
const reset = (token: string, password = NEW_PASSWORD) => post('/api/v1/auth/reset-password', { token, password });
const me = (accessToken: string) =>
  app.inject({ method: 'GET', url: '/api/v1/auth/me', headers: { 'x-tenant': SLUG, authorization: `Bearer ${accessToken}` } });

async function addUser(email: string) {
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/users',
    payload: { email, role: 'staff', password: PASSWORD },
    headers: { 'x-tenant': SLUG, authorization: `Bearer ${admin}` },
  });
  if (res.statusCode !== 201) throw new Error(`create ${email}: ${res.statusCode} ${res.body}`);
  return res.json<{ id: number }>();
}

/** Asks for a reset of `email` and returns the token of the mail it got. */
async function resetToken(email: string): Promise<string> {
  const before = smtp.messages.length;
  const res = await forgot(email);
  if (res.statusCode !== 202) throw new Error(`forgot ${email}: ${res.statusCode} ${res.body}`);
  const mail = await smtp.waitForMail((m) => m.to.includes(email) && smtp.messages.indexOf(m) >= before);
  return linkIn(mail).searchParams.get('token')!;
}

/** What a client can compare of two answers: status, body, headers but the request id and the rate limit's reset second. */
function observable(res: LightMyRequestResponse) {
  const { 'x-request-id': _, 'x-ratelimit-reset': __, date: ___, ...headers } = res.headers;
  return { status: res.statusCode, body: res.body, headers };
}

t.test('forgot-password answers the same 202 for an unknown email as for a user, and mails only the user', async (t) => {
  await addUser('kim@reset-a.test');
  const known = await forgot('kim@reset-a.test');
  const unknown = await forgot('nobody@reset-a.test');
  t.equal(known.statusCode, 202, known.body);
  t.match(known.json(), { status: 'accepted', detail: String });
  t.same(observable(unknown), observable(known), 'status, body and headers are the same');
  await app.background.idle();
  const mail = await smtp.waitForMail((m) => m.to.includes('kim@reset-a.test'));
  t.match(mail.subject, /Reset/);
  t.equal(linkIn(mail).pathname, '/reset-password');
  t.equal(linkIn(mail).searchParams.get('tenant'), SLUG);
  t.notOk(
    smtp.messages.some((m) => m.to.includes('nobody@reset-a.test')),
    'nothing is sent to an unknown address',
  );
  isProblem(t, await forgot('not an email'), 400, 'VALIDATION_FAILED');
});

t.test('the answer is sent before the mail: it does not wait for the SMTP server', async (t) => {
  await addUser('lou@reset-a.test');
  const release = smtp.hold();
  t.teardown(release);
  const answer = forgot('lou@reset-a.test');
  const first = await Promise.race([answer.then(() => 'answer'), smtp.waitForMail((m) => m.to.includes('lou@reset-a.test')).then(() => 'mail')]);
  t.equal(first, 'answer', 'the 202 came while the mail had not even reached the server');
  t.equal((await answer).statusCode, 202);
  await smtp.waitForMail((m) => m.to.includes('lou@reset-a.test'));
  release();
  await app.background.idle();
});

t.test("a reset sets the password once and revokes the user's refresh and access tokens", async (t) => {
  const user = await addUser('max@reset-a.test');
  const session = await login(app, SLUG, 'max@reset-a.test');
  t.equal((await me(session.accessToken)).statusCode, 200);
  const before = await users().where({ id: user.id }).first();
  const token = await resetToken('max@reset-a.test');

  const res = await reset(token);
  t.equal(res.statusCode, 204, res.body);
  const after = await users().where({ id: user.id }).first();
  t.equal(after.token_version, before.token_version + 1, 'token_version moved');
  t.not(after.password_hash, before.password_hash);
  t.match(after.password_hash, /^\$argon2id\$/);
  t.ok((await ctx.catalog.tenants.findById(tenant.id))!.authVersion > tenant.authVersion, "the tenant's auth_version moved in the catalog");

  isProblem(t, await me(session.accessToken), 401, 'TOKEN_REVOKED');
  const refreshed = await post('/api/v1/auth/refresh', { refreshToken: session.refreshToken });
  t.equal(refreshed.statusCode, 401, 'the old refresh token is refused');
  await t.rejects(login(app, SLUG, 'max@reset-a.test'), 'the old password is refused');
  const fresh = await login(app, SLUG, 'max@reset-a.test', NEW_PASSWORD);
  t.equal((await me(fresh.accessToken)).statusCode, 200, 'the new password signs in');

  const again = await reset(token, 'yet another passphrase 43');
  isProblem(t, again, 400, 'RESET_TOKEN_INVALID');
  const { requestId: _, ...body } = again.json<Record<string, unknown>>();
  const { requestId: __, ...unknownBody } = (await reset('q'.repeat(43))).json<Record<string, unknown>>();
  t.same(body, unknownBody, 'a used token is answered as an unknown one');
  t.equal((await users().where({ id: user.id }).first()).password_hash, after.password_hash, 'and changes nothing');
});

t.test('a reset uses up the other links of the user', async (t) => {
  await addUser('ned@reset-a.test');
  const first = await resetToken('ned@reset-a.test');
  const second = await resetToken('ned@reset-a.test');
  t.equal((await reset(second)).statusCode, 204);
  isProblem(t, await reset(first, 'another fine passphrase'), 400, 'RESET_TOKEN_INVALID');
});

t.test('a weak password is refused and changes nothing: the link still works', async (t) => {
  const user = await addUser('oli@reset-a.test');
  const session = await login(app, SLUG, 'oli@reset-a.test');
  const token = await resetToken('oli@reset-a.test');
  const before = await users().where({ id: user.id }).first();
  const weak = await reset(token, 'short');
  t.equal(weak.statusCode, 400, weak.body);
  t.match(weak.json(), { code: 'VALIDATION_FAILED', errors: [{ path: 'body.password' }] });
  t.same(await users().where({ id: user.id }).first(), before, 'the user row is unchanged');
  t.equal((await me(session.accessToken)).statusCode, 200, 'its access token still works');
  t.equal((await post('/api/v1/auth/refresh', { refreshToken: session.refreshToken })).statusCode, 200, 'its refresh token too');
  t.equal((await reset(token)).statusCode, 204, 'the link still works');
});

t.test('an expired link is refused', async (t) => {
  const user = await addUser('pat@reset-a.test');
  const token = await resetToken('pat@reset-a.test');
  await root(`${tenant.databaseName}.password_resets`)
    .where({ user_id: user.id })
    .update({ expires_at: new Date(Date.now() - 1000) });
  isProblem(t, await reset(token), 400, 'RESET_TOKEN_INVALID');
});

t.test('a deactivated user gets no mail, and its open link stops working', async (t) => {
  const user = await addUser('quy@reset-a.test');
  const token = await resetToken('quy@reset-a.test');
  const off = await app.inject({ method: 'DELETE', url: `/api/v1/users/${user.id}`, headers: { 'x-tenant': SLUG, authorization: `Bearer ${admin}` } });
  t.equal(off.statusCode, 200, off.body);
  const before = smtp.messages.length;
  t.equal((await forgot('quy@reset-a.test')).statusCode, 202);
  await app.background.idle();
  t.equal(smtp.messages.length, before, 'no mail');
  isProblem(t, await reset(token), 400, 'RESET_TOKEN_INVALID');
});

t.test(`a user gets at most ${MAX_RESETS_PER_HOUR} reset mails an hour; the answer stays 202`, async (t) => {
  await addUser('ray@reset-a.test');
  for (let i = 0; i < MAX_RESETS_PER_HOUR; i++) await resetToken('ray@reset-a.test');
  const res = await forgot('ray@reset-a.test');
  t.equal(res.statusCode, 202);
  await app.background.idle();
  t.equal(smtp.messages.filter((m) => m.to.includes('ray@reset-a.test')).length, MAX_RESETS_PER_HOUR);
});

t.test(`the hourly cap holds under concurrent requests: 10 at once make at most ${MAX_RESETS_PER_HOUR} links and mails`, async (t) => {
  await addUser('rush@reset-a.test');
  const answers = await Promise.all(Array.from({ length: 10 }, () => forgot('rush@reset-a.test')));
  t.same(
    answers.map((a) => a.statusCode),
    answers.map(() => 202),
  );
  await app.background.idle();
  const userId = (await users().where({ email: 'rush@reset-a.test' }).first('id')).id;
  const rows = await root(`${tenant.databaseName}.password_resets`).where({ user_id: userId }).count({ n: '*' }).first();
  t.equal(Number(rows?.n), MAX_RESETS_PER_HOUR, 'reset links made');
  t.equal(smtp.messages.filter((m) => m.to.includes('rush@reset-a.test')).length, MAX_RESETS_PER_HOUR, 'mails sent');
});

t.test('forgot-password is limited per tenant and client IP (SILO_LOGIN_RATE_LIMIT)', async (t) => {
  const limited = await setupApp(t, { ...smtp.env, SILO_LOGIN_RATE_LIMIT: '2' });
  await makeTenant(limited.ctx, 'reset-b');
  const ask = (remoteAddress: string) =>
    limited.app.inject({
      method: 'POST',
      url: '/api/v1/auth/forgot-password',
      remoteAddress,
      headers: { 'x-tenant': 'reset-b' },
      payload: { email: 'x@reset-b.test' },
    });
  t.equal((await ask('10.9.0.1')).statusCode, 202);
  t.equal((await ask('10.9.0.1')).statusCode, 202);
  isProblem(t, await ask('10.9.0.1'), 429, 'RATE_LIMITED');
  t.equal((await ask('10.9.0.2')).statusCode, 202, 'another address keeps its budget');
});
