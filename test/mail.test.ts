/**
 * The mail plumbing (src/mail): configuration (an SMTP URL's password never appears in a
 * configuration error nor in the redacted URL), links under SILO_PUBLIC_URL, the log
 * fallback without SILO_SMTP_URL (the message, link included, at info: the documented
 * departure), and, with SMTP configured, no one-time token, session token nor SMTP
 * password in the server's log lines (at trace) or answers, whether the SMTP login works
 * or is refused.
 */
import t, { type Test } from 'tap';
import { pino } from 'pino';
import { migrateCatalog } from '../src/catalog/db.js';
import { DEFAULT_SERVER_NAME } from '../src/catalog/servers.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { createContext } from '../src/context.js';
import { buildApp } from '../src/http/app.js';
import { loggerOptions } from '../src/lib/logger.js';
import { publicLink } from '../src/mail/links.js';
import { createMailer, credentialScrubber } from '../src/mail/mailer.js';
import { PASSWORD, TEST_JWT_SECRET, makeTenant } from './fixtures/app.js';
import { dropEverything, testEnv, uniqueNames } from './fixtures/env.js';
import { isProblem } from './fixtures/problem.js';
import { linkIn, startSmtpServer } from './fixtures/smtp.js';

const SMTP_USER = 'silo-mailer';
const SMTP_PASS = 'Smtp:p@ss/w0rd%secret-42';

/** An app over its own catalog whose every log line (trace and up) is kept in `lines`. */
async function loggedApp(t: Test, extra: Record<string, string>) {
  const names = uniqueNames();
  const config = loadConfig(testEnv(names, { SILO_JWT_SECRET: TEST_JWT_SECRET, SILO_LOGIN_RATE_LIMIT: '1000', ...extra }));
  await migrateCatalog(config);
  const lines: string[] = [];
  const log = pino(loggerOptions('trace', false), { write: (s: string) => void lines.push(s) });
  const ctx = createContext(config, log);
  await ctx.catalog.servers.upsert(DEFAULT_SERVER_NAME, config.tenantDb);
  const app = await buildApp({ ctx, logger: log });
  await app.ready();
  t.teardown(async () => {
    await app.close();
    await ctx.close();
    await dropEverything(names);
  });
  return { app, ctx, lines };
}

t.test('configuration: SMTP and public URLs are checked; the SMTP password is never repeated', (t) => {
  const env = (extra: Record<string, string>) => ({ NODE_ENV: 'test', ...extra });
  const config = loadConfig(env({ SILO_SMTP_URL: `smtps://${SMTP_USER}:${encodeURIComponent(SMTP_PASS)}@mail.example.test:465` }));
  t.equal(config.mail.smtpUrlRedacted, `smtps://${SMTP_USER}:%5Bredacted%5D@mail.example.test:465`);
  t.equal(config.mail.from, 'Silo <no-reply@localhost>');
  t.equal(config.publicUrl, 'http://localhost:3000');
  for (const bad of [
    `ftp://u:${encodeURIComponent(SMTP_PASS)}@mail.example.test`,
    `smtp//u:${encodeURIComponent(SMTP_PASS)}@x`,
    `smtp://u:${encodeURIComponent(SMTP_PASS)}@`,
  ]) {
    const err = t.throws(() => loadConfig(env({ SILO_SMTP_URL: bad })), ConfigError) as ConfigError;
    t.equal(err.variable, 'SILO_SMTP_URL');
    t.notOk(err.message.includes('p@ss') || err.message.includes(encodeURIComponent(SMTP_PASS)), `no password in "${err.message}"`);
  }
  const refused = (extra: Record<string, string>) => (t.throws(() => loadConfig(env(extra)), ConfigError) as ConfigError | undefined)?.variable;
  t.equal(refused({ SILO_PUBLIC_URL: 'ftp://example.test' }), 'SILO_PUBLIC_URL');
  t.equal(refused({ SILO_PUBLIC_URL: 'https://example.test/?a=1' }), 'SILO_PUBLIC_URL');
  t.equal(refused({ SILO_MAIL_FROM: 'Silo\r\nBcc: x@example.test <a@b.c>' }), 'SILO_MAIL_FROM');
  t.equal(loadConfig(env({ SILO_MAIL_FROM: 'ops@example.test' })).mail.from, 'ops@example.test');
  t.equal(loadConfig(env({ PORT: '4100' })).publicUrl, 'http://localhost:4100', 'unset, links point at the port the API listens on');
  t.equal(loadConfig(env({ PORT: '4100', SILO_PUBLIC_URL: 'https://crm.example.test/' })).publicUrl, 'https://crm.example.test', 'set, it wins');
  t.end();
});

t.test('publicLink: the base path is kept, the query encoded', (t) => {
  t.equal(
    publicLink({ publicUrl: 'https://example.test/crm' }, '/reset-password', { tenant: 'acme', token: 'a+b/c=' }),
    'https://example.test/crm/reset-password?tenant=acme&token=a%2Bb%2Fc%3D',
  );
  t.equal(publicLink({ publicUrl: 'http://localhost:3000' }, '/accept-invitation', { tenant: 'x' }), 'http://localhost:3000/accept-invitation?tenant=x');
  t.end();
});

t.test('credentialScrubber cuts the password in each form SMTP and URLs carry it', (t) => {
  const url = `smtp://${SMTP_USER}:${encodeURIComponent(SMTP_PASS)}@h:25`;
  const scrub = credentialScrubber(url);
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const text = [SMTP_PASS, encodeURIComponent(SMTP_PASS), b64(SMTP_PASS), b64(`\0${SMTP_USER}\0${SMTP_PASS}`)].join(' | ');
  t.equal(scrub(text), '[redacted] | [redacted] | [redacted] | [redacted]');
  t.equal(credentialScrubber(undefined)('same'), 'same');
  t.end();
});

t.test('without SILO_SMTP_URL a message is logged at info, link included, and not sent', async (t) => {
  const lines: string[] = [];
  const mailer = createMailer(
    { smtpUrl: undefined, smtpUrlRedacted: undefined, from: 'x@example.test' },
    pino({ level: 'info' }, { write: (s: string) => void lines.push(s) }),
  );
  await mailer.send({ to: 'ann@example.test', subject: 'Hi', text: 'open https://example.test/accept-invitation?token=abc' });
  await mailer.close();
  t.equal(lines.length, 1);
  const line = JSON.parse(lines[0]!);
  t.match(line, { level: 30, msg: 'mail not sent (SILO_SMTP_URL unset)', mail: { to: 'ann@example.test', subject: 'Hi', text: /token=abc/ } });
});

t.test('with SMTP: invite, accept, forgot and reset leave no token and no SMTP password in logs or answers', async (t) => {
  const smtp = await startSmtpServer(t, { auth: { user: SMTP_USER, pass: SMTP_PASS } });
  const { app, ctx, lines } = await loggedApp(t, smtp.env);
  await makeTenant(ctx, 'mail-a');
  const answers: string[] = [];
  const call = async (method: 'GET' | 'POST', url: string, payload?: object, token?: string) => {
    const res = await app.inject({
      method,
      url,
      ...(payload ? { payload } : {}),
      headers: { 'x-tenant': 'mail-a', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    });
    answers.push(res.body);
    return res;
  };
  const signIn = await call('POST', '/api/v1/auth/login', { email: 'admin@mail-a.test', password: PASSWORD });
  const admin = signIn.json().accessToken as string;
  t.equal((await call('POST', '/api/v1/invitations', { email: 'zoe@example.test', role: 'staff' }, admin)).statusCode, 201);
  const invitation = await smtp.waitForMail((m) => m.to.includes('zoe@example.test'));
  t.equal(invitation.user, SMTP_USER, 'the mailer signed in to the SMTP server');
  const inviteToken = linkIn(invitation).searchParams.get('token')!;
  const accepted = await call('POST', '/api/v1/invitations/accept', { token: inviteToken, password: PASSWORD, fullName: 'Zoe' });
  t.equal(accepted.statusCode, 201, accepted.body);
  t.equal((await call('POST', '/api/v1/auth/forgot-password', { email: 'zoe@example.test' })).statusCode, 202);
  const resetMail = await smtp.waitForMail((m) => m.to.includes('zoe@example.test') && m !== invitation);
  const resetToken = linkIn(resetMail).searchParams.get('token')!;
  t.equal((await call('POST', '/api/v1/auth/reset-password', { token: resetToken, password: 'the new zoe passphrase' })).statusCode, 204);
  await app.background.idle();

  const logs = lines.join('');
  t.ok(lines.length > 10, `${lines.length} log lines`);
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const secrets = {
    'invitation token': inviteToken,
    'reset token': resetToken,
    'access token': accepted.json().accessToken as string,
    'refresh token': accepted.json().refreshToken as string,
    'SMTP password': SMTP_PASS,
    'SMTP password (URL)': encodeURIComponent(SMTP_PASS),
    'SMTP AUTH PLAIN': b64(`\0${SMTP_USER}\0${SMTP_PASS}`),
    'SMTP AUTH LOGIN': b64(SMTP_PASS),
  };
  for (const [name, secret] of Object.entries(secrets)) {
    t.notOk(logs.includes(secret), `no ${name} in the log`);
    if (!name.endsWith('token') || name.startsWith('invitation') || name.startsWith('reset')) {
      t.notOk(answers.join('\n').includes(secret), `no ${name} in an answer`);
    }
  }
});

t.test('a refused SMTP login: 503 MAIL_UNAVAILABLE; the log says why, without the password', async (t) => {
  const smtp = await startSmtpServer(t, { auth: { user: SMTP_USER, pass: 'the-right-one' } });
  const { app, ctx, lines } = await loggedApp(t, { SILO_SMTP_URL: smtp.url.replace('the-right-one', encodeURIComponent(SMTP_PASS)) });
  await makeTenant(ctx, 'mail-b');
  const signIn = await app.inject({
    method: 'POST',
    url: '/api/v1/auth/login',
    headers: { 'x-tenant': 'mail-b' },
    payload: { email: 'admin@mail-b.test', password: PASSWORD },
  });
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/invitations',
    headers: { 'x-tenant': 'mail-b', authorization: `Bearer ${signIn.json().accessToken}` },
    payload: { email: 'yan@example.test', role: 'staff' },
  });
  isProblem(t, res, 503, 'MAIL_UNAVAILABLE');
  const logs = lines.join('');
  t.match(logs, /EAUTH, SMTP 535/, 'the log has the SMTP error');
  for (const secret of [SMTP_PASS, encodeURIComponent(SMTP_PASS), Buffer.from(`\0${SMTP_USER}\0${SMTP_PASS}`).toString('base64')]) {
    t.notOk(logs.includes(secret), 'no password in the log');
    t.notOk(res.body.includes(secret), 'nor in the answer');
  }
  t.equal(smtp.messages.length, 0);
});

t.test('an SMTP server that is not there: 503 MAIL_UNAVAILABLE', async (t) => {
  const smtp = await startSmtpServer(t);
  await smtp.close();
  const { app, ctx } = await loggedApp(t, smtp.env);
  await makeTenant(ctx, 'mail-c');
  const signIn = await app.inject({
    method: 'POST',
    url: '/api/v1/auth/login',
    headers: { 'x-tenant': 'mail-c' },
    payload: { email: 'admin@mail-c.test', password: PASSWORD },
  });
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/invitations',
    headers: { 'x-tenant': 'mail-c', authorization: `Bearer ${signIn.json().accessToken}` },
    payload: { email: 'yan@example.test', role: 'staff' },
  });
  isProblem(t, res, 503, 'MAIL_UNAVAILABLE');
});
