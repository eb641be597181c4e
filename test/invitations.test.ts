/**
 * Invitations through the API, with the mail read from a real SMTP server
 * (test/fixtures/smtp.ts): an admin invites, the mail's link signs the invitee in with the
 * invited role, once; revoked, expired, replaced and reused links are refused with one
 * answer; two concurrent accepts make one user; only admins invite, and only once the
 * tenant's signup email is verified; a mail that cannot be sent leaves no invitation.
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import { PASSWORD, login, makeTenant, setupApp } from './fixtures/app.js';
import { rootKnex } from './fixtures/env.js';
import { isProblem } from './fixtures/problem.js';
import { linkIn, startSmtpServer } from './fixtures/smtp.js';

const SLUG = 'invite-a';
const smtp = await startSmtpServer(t);
const { app, ctx } = await setupApp(t, { ...smtp.env, SILO_PUBLIC_URL: 'https://crm.example.test/app/' });
const tenant = await makeTenant(ctx, SLUG);
const root = rootKnex();
t.teardown(() => root.destroy());
const db = () => root(`${tenant.databaseName}.invitations`);
const admin = (await login(app, SLUG)).accessToken;

type Method = 'GET' | 'POST' | 'DELETE';
const call = (method: Method, url: string, payload?: object, token?: string) =>
  app.inject({
    method,
    url,
    ...(payload ? { payload } : {}),
    headers: { 'x-tenant': SLUG, ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
const invite = (email: string, role = 'staff', token = admin) => call('POST', '/api/v1/invitations', { email, role }, token);
const accept = (token: string, password = PASSWORD, fullName = 'Invited Person') => call('POST', '/api/v1/invitations/accept', { token, password, fullName });

/** Invites `email` and returns the invitation and the token of the link its mail carries. */
async function invited(email: string, role = 'staff') {
  const before = smtp.messages.length;
  const res = await invite(email, role);
  if (res.statusCode !== 201) throw new Error(`invite ${email}: ${res.statusCode} ${res.body}`);
  const mail = await smtp.waitForMail((m) => m.to.includes(email) && smtp.messages.indexOf(m) >= before);
  return { invitation: res.json<{ id: number }>(), token: linkIn(mail).searchParams.get('token')!, mail };
}

/** The answer to a token that cannot be accepted, without its request id. */
const refusal = (res: Awaited<ReturnType<typeof accept>>) => {
  const { requestId: _, ...rest } = res.json<Record<string, unknown>>();
  return { status: res.statusCode, body: rest };
};

t.test("an admin invites; the mail's link signs the invitee in with the invited role, once", async (t) => {
  const res = await invite('  Ann@Example.TEST ', 'manager');
  t.equal(res.statusCode, 201, res.body);
  const inv = res.json();
  t.match(inv, { email: 'ann@example.test', role: 'manager', invitedBy: Number });
  t.same(Object.keys(inv).sort(), ['createdAt', 'email', 'expiresAt', 'id', 'invitedBy', 'role'], 'no token in the answer');
  const days = (Date.parse(inv.expiresAt) - Date.now()) / 86_400_000;
  t.ok(days > 6.99 && days <= 7, 'valid 7 days');

  const mail = await smtp.waitForMail((m) => m.to.includes('ann@example.test'));
  t.match(mail.from, /^"?Silo"? <no-reply@localhost>$/, 'from SILO_MAIL_FROM');
  t.match(mail.subject, /invited/);
  const link = linkIn(mail);
  t.equal(`${link.origin}${link.pathname}`, 'https://crm.example.test/app/accept-invitation', 'under SILO_PUBLIC_URL, its path kept');
  t.equal(link.searchParams.get('tenant'), SLUG);
  const token = link.searchParams.get('token')!;
  t.match(token, /^[A-Za-z0-9_-]{43}$/);
  t.ok(mail.html?.includes(link.toString().replaceAll('&', '&#38;')), 'the HTML part carries the same link');
  const row = await db().where({ id: inv.id }).first();
  t.equal(row.token_hash, createHash('sha256').update(token).digest('hex'), 'only the SHA-256 of the token is stored');
  t.notOk(JSON.stringify(row).includes(token));

  const listed = (await call('GET', '/api/v1/invitations', undefined, admin)).json();
  t.ok(
    listed.data.some((i: { id: number }) => i.id === inv.id),
    'listed while pending',
  );

  const accepted = await accept(token, PASSWORD, ' Ann Example ');
  t.equal(accepted.statusCode, 201, accepted.body);
  t.match(accepted.json(), { tokenType: 'Bearer', accessToken: String, refreshToken: String, expiresIn: 900 });
  const me = await call('GET', '/api/v1/auth/me', undefined, accepted.json().accessToken);
  t.equal(me.statusCode, 200, me.body);
  t.match(me.json(), { email: 'ann@example.test', fullName: 'Ann Example', role: 'manager', active: true });
  const refreshed = await call('POST', '/api/v1/auth/refresh', { refreshToken: accepted.json().refreshToken });
  t.equal(refreshed.statusCode, 200, 'its refresh token works');
  t.equal((await login(app, SLUG, 'ann@example.test')).refreshToken.length > 0, true, 'and the chosen password signs in');
  t.match(await db().where({ id: inv.id }).first(), { accepted_at: Date, accepted_user_id: me.json().id });

  t.notOk(
    (await call('GET', '/api/v1/invitations', undefined, admin)).json().data.some((i: { id: number }) => i.id === inv.id),
    'no longer pending',
  );
  const again = await accept(token);
  isProblem(t, again, 400, 'INVITATION_INVALID');
  t.same(refusal(again), refusal(await accept('x'.repeat(43))), 'a used token is answered as an unknown one');
  t.same(refusal(again), refusal(await accept('not-a-token')), 'and as a malformed one');
});

t.test('a revoked invitation: its link is refused; revoking twice is 404', async (t) => {
  const { invitation, token } = await invited('bob@example.test');
  const del = await call('DELETE', `/api/v1/invitations/${invitation.id}`, undefined, admin);
  t.equal(del.statusCode, 204, del.body);
  const res = await accept(token);
  isProblem(t, res, 400, 'INVITATION_INVALID');
  t.same(refusal(res), refusal(await accept('y'.repeat(43))), 'same answer as an unknown token');
  isProblem(t, await call('DELETE', `/api/v1/invitations/${invitation.id}`, undefined, admin), 404, 'INVITATION_NOT_FOUND');
  t.equal(
    await root(`${tenant.databaseName}.users`)
      .where({ email: 'bob@example.test' })
      .count({ n: '*' })
      .first()
      .then((r) => Number(r?.n)),
    0,
  );
});

t.test('an expired invitation: refused, and not listed', async (t) => {
  const { invitation, token } = await invited('cid@example.test');
  await db()
    .where({ id: invitation.id })
    .update({ expires_at: new Date(Date.now() - 1000) });
  const res = await accept(token);
  isProblem(t, res, 400, 'INVITATION_INVALID');
  t.same(refusal(res), refusal(await accept('z'.repeat(43))), 'same answer as an unknown token');
  t.notOk((await call('GET', '/api/v1/invitations', undefined, admin)).json().data.some((i: { id: number }) => i.id === invitation.id));
});

t.test('inviting an address again replaces its open invitation: only the newest link works', async (t) => {
  const first = await invited('dee@example.test', 'staff');
  const second = await invited('dee@example.test', 'manager');
  t.not(first.token, second.token);
  isProblem(t, await accept(first.token), 400, 'INVITATION_INVALID');
  const listed = (await call('GET', '/api/v1/invitations', undefined, admin)).json().data.filter((i: { email: string }) => i.email === 'dee@example.test');
  t.same(
    listed.map((i: { id: number }) => i.id),
    [second.invitation.id],
    'one pending invitation for the address',
  );
  const ok = await accept(second.token);
  t.equal(ok.statusCode, 201, ok.body);
  t.equal((await call('GET', '/api/v1/auth/me', undefined, ok.json().accessToken)).json().role, 'manager', 'with the newest role');
});

t.test('two concurrent accepts of one invitation make exactly one user', async (t) => {
  for (let round = 0; round < 3; round++) {
    const email = `race${round}@example.test`;
    const { token } = await invited(email);
    const answers = await Promise.all([accept(token), accept(token), accept(token)]);
    t.same(answers.map((a) => a.statusCode).sort(), [201, 400, 400], `round ${round}: one accept wins`);
    for (const a of answers.filter((x) => x.statusCode !== 201)) t.equal(a.json().code, 'INVITATION_INVALID');
    const n = await root(`${tenant.databaseName}.users`).where({ email }).count({ n: '*' }).first();
    t.equal(Number(n?.n), 1, `round ${round}: one user`);
  }
});

t.test('an email that is already a user is refused 409, and nothing is mailed', async (t) => {
  const before = smtp.messages.length;
  isProblem(t, await invite('ADMIN@invite-a.test'), 409, 'USER_EXISTS');
  await app.background.idle();
  t.equal(smtp.messages.length, before);
});

t.test('a weak password is refused and the invitation stays usable', async (t) => {
  const { token } = await invited('eve@example.test');
  const weak = await accept(token, 'short');
  t.equal(weak.statusCode, 400, weak.body);
  t.match(weak.json(), { code: 'VALIDATION_FAILED', errors: [{ path: 'body.password' }] });
  t.equal(await root(`${tenant.databaseName}.users`).where({ email: 'eve@example.test' }).first(), undefined, 'no user');
  t.equal((await accept(token)).statusCode, 201, 'the link still works');
});

t.test('only admins manage invitations (403), and accepting needs no token', async (t) => {
  await invited('fay@example.test', 'staff');
  const created = await call('POST', '/api/v1/users', { email: 'mgr@invite-a.test', role: 'manager', password: PASSWORD }, admin);
  t.equal(created.statusCode, 201, created.body);
  const manager = (await login(app, SLUG, 'mgr@invite-a.test')).accessToken;
  isProblem(t, await invite('gus@example.test', 'staff', manager), 403, 'FORBIDDEN');
  isProblem(t, await call('GET', '/api/v1/invitations', undefined, manager), 403, 'FORBIDDEN');
  isProblem(t, await call('DELETE', '/api/v1/invitations/1', undefined, manager), 403, 'FORBIDDEN');
  isProblem(t, await call('GET', '/api/v1/invitations'), 401, 'UNAUTHORIZED');
  t.equal(await db().where({ email: 'gus@example.test' }).first(), undefined, 'nothing was invited');
});

t.test('a tenant whose signup email is not verified cannot invite (403 EMAIL_NOT_VERIFIED)', async (t) => {
  await ctx.catalog.knex('tenants').where({ id: tenant.id }).update({ unverified_since: new Date() });
  ctx.events.emit('tenantChanged', SLUG);
  t.teardown(async () => {
    await ctx.catalog.knex('tenants').where({ id: tenant.id }).update({ unverified_since: null });
    ctx.events.emit('tenantChanged', SLUG);
  });
  const before = smtp.messages.length;
  isProblem(t, await invite('hal@example.test'), 403, 'EMAIL_NOT_VERIFIED');
  t.equal(await db().where({ email: 'hal@example.test' }).first(), undefined, 'no invitation');
  t.equal(smtp.messages.length, before, 'no mail');
});

t.test('a mail the SMTP server refuses: 503 MAIL_UNAVAILABLE, no invitation left, the replaced one open again', async (t) => {
  const kept = await invited('ivy@example.test');
  smtp.refuse = { code: 451, message: 'mailbox busy, try later' };
  t.teardown(() => (smtp.refuse = undefined));
  const res = await invite('ivy@example.test', 'admin');
  const problem = isProblem(t, res, 503, 'MAIL_UNAVAILABLE');
  t.equal(res.headers['retry-after'], '30');
  t.notMatch(problem.detail, /451|busy|127\.0\.0\.1/, 'the SMTP error stays in the log');
  const open = await db().where({ email: 'ivy@example.test' }).whereNull('revoked_at').whereNull('accepted_at').select('id');
  t.same(
    open.map((r: { id: number }) => Number(r.id)),
    [kept.invitation.id],
    'only the earlier invitation is open',
  );
  isProblem(t, await invite('jon@example.test'), 503, 'MAIL_UNAVAILABLE');
  t.equal(await db().where({ email: 'jon@example.test' }).first(), undefined, 'a first invitation is not kept either');
  smtp.refuse = undefined;
  t.equal((await accept(kept.token)).statusCode, 201, "the earlier invitation's link still works");
});

t.test(
  'custom roles: an invitation may name any role of the tenant; an unknown one is 422; a role deleted before acceptance makes the link unusable',
  async (t) => {
    const made = await call('POST', '/api/v1/roles', { name: 'reader', permissions: ['contacts:read'] }, admin);
    t.equal(made.statusCode, 201, made.body);
    const { token } = await invited('reader@example.test', 'reader');
    const ok = await accept(token);
    t.equal(ok.statusCode, 201, ok.body);
    const reader = ok.json().accessToken as string;
    t.equal((await call('GET', '/api/v1/auth/me', undefined, reader)).json().role, 'reader', 'the user holds the custom role');
    t.equal((await call('GET', '/api/v1/contacts', undefined, reader)).statusCode, 200, 'with its permissions');
    t.equal((await call('GET', '/api/v1/companies', undefined, reader)).statusCode, 403, 'and only those');

    const before = await db().count({ n: '*' }).first();
    isProblem(t, await invite('nobody@example.test', 'no-such-role'), 422, 'INVALID_REFERENCE');
    t.same(await db().count({ n: '*' }).first(), before, 'no invitation kept');

    const temp = (await call('POST', '/api/v1/roles', { name: 'temporary', permissions: ['deals:read'] }, admin)).json();
    const later = await invited('late@example.test', 'temporary');
    t.equal((await call('DELETE', `/api/v1/roles/${temp.id}`, undefined, admin)).statusCode, 204, 'a role with only an invitation can be deleted');
    const refused = await accept(later.token);
    t.equal(refused.statusCode, 400, refused.body);
    t.equal(refused.json().code, 'INVITATION_INVALID');
    const users = await root(`${tenant.databaseName}.users`).where({ email: 'late@example.test' }).count({ n: '*' }).first();
    t.equal(Number(users!.n), 0, 'no user without a role');
  },
);
