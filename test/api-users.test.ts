/**
 * Tenant user management through the API: admins list, create, get, update and
 * deactivate users; other roles are refused; emails are unique; updates are guarded by
 * `version`; the last admin stays; deactivated users lose their sessions; bad input is
 * refused as problem+json and writes nothing.
 */
import t from 'tap';
import { PASSWORD, login, makeTenant, setupApp } from './fixtures/app.js';
import { isProblem } from './fixtures/problem.js';

// A small body limit so the 413 test needs no megabytes; every other body here is far below it.
const { app, ctx } = await setupApp(t, { SILO_BODY_LIMIT_BYTES: '2048' });
await makeTenant(ctx, 'users-a');
const admin = (await login(app, 'users-a')).accessToken;

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';
const as =
  (token: string) =>
  (method: Method, url: string, payload?: unknown, headers: Record<string, string> = {}) =>
    app.inject({
      method,
      url,
      ...(payload === undefined ? {} : { payload: payload as object }),
      headers: { 'x-tenant': 'users-a', authorization: `Bearer ${token}`, ...headers },
    });
const asAdmin = as(admin);

const userCount = async () => (await asAdmin('GET', '/api/v1/users?pageSize=1')).json().total as number;
let seq = 0;
/** Creates a user through the API; returns it with its email. */
async function createUser(role: 'admin' | 'manager' | 'staff', fullName?: string) {
  const email = `${role}${++seq}@users-a.test`;
  const res = await asAdmin('POST', '/api/v1/users', { email, role, password: PASSWORD, ...(fullName ? { fullName } : {}) });
  if (res.statusCode !== 201) throw new Error(`create ${email}: ${res.statusCode} ${res.body}`);
  return res.json<{ id: number; email: string; role: string; version: number; active: boolean }>();
}

t.test('an admin creates, lists, gets, updates and deactivates users', async (t) => {
  const created = await asAdmin('POST', '/api/v1/users', { email: '  Mia@Users-A.test ', fullName: ' Mia Manager ', role: 'manager', password: PASSWORD });
  t.equal(created.statusCode, 201, created.body);
  const mia = created.json();
  t.match(mia, { email: 'mia@users-a.test', fullName: 'Mia Manager', role: 'manager', active: true, version: 1, lastLoginAt: null });
  t.notOk('password' in mia || 'passwordHash' in mia, 'never the password or its hash');

  const list = await asAdmin('GET', '/api/v1/users');
  t.equal(list.statusCode, 200);
  t.match(list.json(), { page: 1, pageSize: 20 });
  t.ok(list.json().total >= 2);
  t.ok(list.json().data.some((u: { email: string }) => u.email === 'admin@users-a.test'));
  t.ok(list.json().data.some((u: { id: number }) => u.id === mia.id));
  const paged = (await asAdmin('GET', '/api/v1/users?page=2&pageSize=1')).json();
  t.equal(paged.data.length, 1, 'pagination');
  t.equal(paged.page, 2);

  const got = await asAdmin('GET', `/api/v1/users/${mia.id}`);
  t.equal(got.statusCode, 200);
  t.same(got.json(), mia);

  const patched = await asAdmin('PATCH', `/api/v1/users/${mia.id}`, { fullName: 'Mia Staff', role: 'staff', version: mia.version });
  t.equal(patched.statusCode, 200, patched.body);
  t.match(patched.json(), { fullName: 'Mia Staff', role: 'staff', version: 2, active: true });

  const deactivated = await asAdmin('DELETE', `/api/v1/users/${mia.id}`);
  t.equal(deactivated.statusCode, 200, deactivated.body);
  t.match(deactivated.json(), { id: mia.id, active: false, version: 3 });
  t.match((await asAdmin('GET', `/api/v1/users/${mia.id}`)).json(), { active: false }, 'a deactivated user is still listed, inactive');

  isProblem(t, await asAdmin('GET', '/api/v1/users/999999'), 404, 'USER_NOT_FOUND');
  isProblem(t, await asAdmin('PATCH', '/api/v1/users/999999', { fullName: 'X' }), 404, 'USER_NOT_FOUND');
  isProblem(t, await asAdmin('DELETE', '/api/v1/users/999999'), 404, 'USER_NOT_FOUND');
  isProblem(t, await asAdmin('GET', '/api/v1/users/abc'), 400, 'VALIDATION_FAILED');
});

t.test('managers and staff get 403 FORBIDDEN on every /api/v1/users route and change nothing', async (t) => {
  const target = await createUser('staff');
  for (const role of ['manager', 'staff'] as const) {
    const u = await createUser(role);
    const token = (await login(app, 'users-a', u.email)).accessToken;
    const call = as(token);
    t.equal((await call('GET', '/api/v1/auth/me')).statusCode, 200, `${role} is signed in`);
    const before = await userCount();
    for (const [method, url, payload] of [
      ['GET', '/api/v1/users'],
      ['POST', '/api/v1/users', { email: `by-${role}@users-a.test`, role: 'admin', password: PASSWORD }],
      ['GET', `/api/v1/users/${target.id}`],
      ['PATCH', `/api/v1/users/${u.id}`, { role: 'admin' }],
      ['PATCH', `/api/v1/users/${target.id}`, { fullName: 'Hijacked' }],
      ['DELETE', `/api/v1/users/${target.id}`],
    ] as Array<[Method, string, object?]>) {
      isProblem(t, await call(method, url, payload), 403, 'FORBIDDEN');
    }
    t.equal(await userCount(), before, `${role} created nobody`);
    t.match((await asAdmin('GET', `/api/v1/users/${u.id}`)).json(), { role, version: 1 }, `${role} did not promote itself`);
  }
  t.match((await asAdmin('GET', `/api/v1/users/${target.id}`)).json(), { active: true, version: 1, fullName: null }, 'the target is unchanged');
});

t.test('an email is unique in the tenant, whatever its case: 409 USER_EXISTS', async (t) => {
  const u = await createUser('staff');
  const before = await userCount();
  for (const email of [u.email, u.email.toUpperCase(), ` ${u.email} `]) {
    const body = isProblem(t, await asAdmin('POST', '/api/v1/users', { email, role: 'manager', password: PASSWORD }), 409, 'USER_EXISTS');
    t.notOk(JSON.stringify(body).includes('Duplicate entry'), 'no SQL in the answer');
  }
  t.equal(await userCount(), before);
});

t.test('a PATCH with a stale version is 409 VERSION_CONFLICT and changes nothing', async (t) => {
  const u = await createUser('staff', 'First Name');
  t.equal((await asAdmin('PATCH', `/api/v1/users/${u.id}`, { fullName: 'Second Name', version: 1 })).statusCode, 200);
  isProblem(t, await asAdmin('PATCH', `/api/v1/users/${u.id}`, { fullName: 'Lost Update', role: 'manager', version: 1 }), 409, 'VERSION_CONFLICT');
  t.match((await asAdmin('GET', `/api/v1/users/${u.id}`)).json(), { fullName: 'Second Name', role: 'staff', version: 2 });
  isProblem(t, await asAdmin('PATCH', `/api/v1/users/${u.id}`, { fullName: 'Future', version: 3 }), 409, 'VERSION_CONFLICT');
});

t.test('the last active admin can be neither demoted nor deactivated: 409 LAST_ADMIN', async (t) => {
  const other = await makeTenant(ctx, 'users-solo');
  t.ok(other);
  const soloToken = (await login(app, 'users-solo')).accessToken;
  const solo = (method: Method, url: string, payload?: object) =>
    app.inject({ method, url, ...(payload ? { payload } : {}), headers: { 'x-tenant': 'users-solo', authorization: `Bearer ${soloToken}` } });
  const me = (await solo('GET', '/api/v1/auth/me')).json();
  isProblem(t, await solo('PATCH', `/api/v1/users/${me.id}`, { role: 'manager' }), 409, 'LAST_ADMIN');
  isProblem(t, await solo('PATCH', `/api/v1/users/${me.id}`, { active: false }), 409, 'LAST_ADMIN');
  isProblem(t, await solo('DELETE', `/api/v1/users/${me.id}`), 409, 'LAST_ADMIN');
  t.match((await solo('GET', `/api/v1/users/${me.id}`)).json(), { role: 'admin', active: true, version: me.version }, 'still an active admin, unchanged');

  // An inactive admin does not count: with a second admin deactivated, the first is still the last.
  const second = (await solo('POST', '/api/v1/users', { email: 'second@users-solo.test', role: 'admin', password: PASSWORD })).json();
  t.equal((await solo('DELETE', `/api/v1/users/${second.id}`)).statusCode, 200);
  isProblem(t, await solo('PATCH', `/api/v1/users/${me.id}`, { role: 'staff' }), 409, 'LAST_ADMIN');

  // With another active admin, demotion is allowed.
  t.equal((await solo('PATCH', `/api/v1/users/${second.id}`, { active: true })).statusCode, 200);
  const demoted = await solo('PATCH', `/api/v1/users/${second.id}`, { role: 'manager' });
  t.equal(demoted.statusCode, 200, demoted.body);
  t.equal(demoted.json().role, 'manager');
});

t.test('two admins demoting each other at once: exactly one succeeds, the other gets 409 LAST_ADMIN', async (t) => {
  await makeTenant(ctx, 'users-race');
  let adminA = (await login(app, 'users-race')).accessToken;
  const callA = (method: Method, url: string, payload?: object, token = adminA) =>
    app.inject({ method, url, ...(payload ? { payload } : {}), headers: { 'x-tenant': 'users-race', authorization: `Bearer ${token}` } });
  const idA = (await callA('GET', '/api/v1/auth/me')).json().id as number;
  const b = (await callA('POST', '/api/v1/users', { email: 'b@users-race.test', role: 'admin', password: PASSWORD })).json();
  let adminB = (await login(app, 'users-race', 'b@users-race.test')).accessToken;
  for (let round = 0; round < 10; round++) {
    const [ra, rb] = await Promise.all([
      callA('PATCH', `/api/v1/users/${b.id}`, { role: 'staff' }),
      callA('PATCH', `/api/v1/users/${idA}`, { role: 'staff' }, adminB),
    ]);
    // The loser is refused either by the last-admin rule (409) or, when its token is checked
    // after the winner's demotion committed, because its token's role is no longer its own (401).
    const loser = ra.statusCode === 200 ? rb : ra;
    t.equal([ra, rb].filter((r) => r.statusCode === 200).length, 1, `round ${round}: exactly one succeeds: ${ra.body} / ${rb.body}`);
    t.ok(
      (loser.statusCode === 409 && loser.json().code === 'LAST_ADMIN') || (loser.statusCode === 401 && loser.json().code === 'TOKEN_REVOKED'),
      `round ${round}: the other is refused with 409 LAST_ADMIN or 401 TOKEN_REVOKED: ${loser.body}`,
    );
    const admins = (await callA('GET', '/api/v1/users', undefined, ra.statusCode === 200 ? adminA : adminB))
      .json()
      .data.filter((u: { role: string; active: boolean }) => u.role === 'admin' && u.active);
    t.equal(admins.length, 1, 'one active admin is left');
    // Restore both as admins for the next round (the survivor promotes the other).
    const survivor = ra.statusCode === 200 ? adminA : adminB;
    const demotedId = ra.statusCode === 200 ? b.id : idA;
    t.equal((await callA('PATCH', `/api/v1/users/${demotedId}`, { role: 'admin' }, survivor)).statusCode, 200);
    // A role change revokes the demoted admin's access tokens: it signs in again.
    if (demotedId === b.id) adminB = (await login(app, 'users-race', 'b@users-race.test')).accessToken;
    else adminA = (await login(app, 'users-race')).accessToken;
  }
});

t.test('a deactivated user cannot sign in and its refresh tokens stop working', async (t) => {
  const u = await createUser('staff');
  const s1 = await login(app, 'users-a', u.email);
  const s2 = await login(app, 'users-a', u.email);
  const rotated = await app.inject({
    method: 'POST',
    url: '/api/v1/auth/refresh',
    headers: { 'x-tenant': 'users-a' },
    payload: { refreshToken: s1.refreshToken },
  });
  t.equal(rotated.statusCode, 200);

  t.equal((await asAdmin('DELETE', `/api/v1/users/${u.id}`)).statusCode, 200);

  const attempt = await app.inject({
    method: 'POST',
    url: '/api/v1/auth/login',
    headers: { 'x-tenant': 'users-a' },
    payload: { email: u.email, password: PASSWORD },
  });
  isProblem(t, attempt, 401, 'INVALID_CREDENTIALS');
  for (const refreshToken of [rotated.json().refreshToken, s2.refreshToken]) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/auth/refresh', headers: { 'x-tenant': 'users-a' }, payload: { refreshToken } });
    t.equal(res.statusCode, 401, res.body);
  }

  const back = await asAdmin('PATCH', `/api/v1/users/${u.id}`, { active: true });
  t.equal(back.statusCode, 200);
  const again = await app.inject({
    method: 'POST',
    url: '/api/v1/auth/refresh',
    headers: { 'x-tenant': 'users-a' },
    payload: { refreshToken: s2.refreshToken },
  });
  t.equal(again.statusCode, 401, 'reactivation does not revive old sessions');
  t.ok((await login(app, 'users-a', u.email)).accessToken, 'a reactivated user signs in again');
});

t.test('a password reset by an admin revokes the old sessions and only the new password works', async (t) => {
  const u = await createUser('manager');
  const s = await login(app, 'users-a', u.email);
  const newPassword = 'a brand new passphrase';
  t.equal((await asAdmin('PATCH', `/api/v1/users/${u.id}`, { password: newPassword })).statusCode, 200);
  const res = await app.inject({ method: 'POST', url: '/api/v1/auth/refresh', headers: { 'x-tenant': 'users-a' }, payload: { refreshToken: s.refreshToken } });
  t.equal(res.statusCode, 401, 'the old refresh token is revoked');
  await t.rejects(login(app, 'users-a', u.email), 'the old password is refused');
  t.ok((await login(app, 'users-a', u.email, newPassword)).accessToken);
});

t.test('bad input is 400/413 problem+json naming the field, and creates nothing', async (t) => {
  const before = await userCount();
  const create = (payload: unknown, headers: Record<string, string> = {}) => asAdmin('POST', '/api/v1/users', payload, headers);
  const valid = { email: 'new@users-a.test', role: 'staff', password: PASSWORD };
  // A wrong field is the error's path; an unknown one is named in the message of the body's error.
  const names = (e: { path: string; message: string }, field: string) => e.path === `body.${field}` || (e.path === 'body' && e.message.includes(`"${field}"`));

  isProblem(t, await create('{"email": "x@users-a.test", ', { 'content-type': 'application/json' }), 400, 'INVALID_JSON');
  isProblem(t, await create('', { 'content-type': 'application/json' }), 400, 'INVALID_JSON');
  isProblem(t, await asAdmin('PATCH', '/api/v1/users/1', '{nope', { 'content-type': 'application/json' }), 400, 'INVALID_JSON');

  const cases: Array<[string, unknown, string]> = [
    ['email is a number', { ...valid, email: 5 }, 'email'],
    ['role is unknown', { ...valid, role: 'owner' }, 'role'],
    ['role is missing', { email: valid.email, password: PASSWORD }, 'role'],
    ['password is a number', { ...valid, password: 123456789012 }, 'password'],
    ['fullName is an object', { ...valid, fullName: { first: 'A' } }, 'fullName'],
    ['email is not an email', { ...valid, email: 'not-an-email' }, 'email'],
    ['email is too long', { ...valid, email: `${'a'.repeat(250)}@users-a.test` }, 'email'],
    ['password is short', { ...valid, password: 'short' }, 'password'],
    ['an unknown field', { ...valid, isSuperuser: true }, 'isSuperuser'],
  ];
  for (const [what, payload, field] of cases) {
    const body = isProblem(t, await create(payload), 400, 'VALIDATION_FAILED');
    t.ok(Array.isArray(body.errors) && body.errors.length > 0, `${what}: an errors list`);
    t.ok(
      body.errors?.some((e) => names(e, field)),
      `${what}: the errors name "${field}" (${JSON.stringify(body.errors)})`,
    );
  }
  const a = isProblem(t, await create([valid]), 400, 'VALIDATION_FAILED');
  t.ok(a.errors?.length, 'an array body is refused');

  for (const [what, payload, field] of [
    ['an unknown field', { version: 1, admin: true }, 'admin'],
    ['active is a string', { active: 'no' }, 'active'],
    ['version is a string', { version: '1' }, 'version'],
    ['role is unknown', { role: 'root' }, 'role'],
    ['password is short', { password: 'short' }, 'password'],
  ] as Array<[string, object, string]>) {
    const body = isProblem(t, await asAdmin('PATCH', '/api/v1/users/1', payload), 400, 'VALIDATION_FAILED');
    t.ok(
      body.errors?.some((e) => names(e, field)),
      `PATCH ${what}: the errors name "${field}" (${JSON.stringify(body.errors)})`,
    );
  }

  isProblem(t, await create({ ...valid, fullName: 'x'.repeat(4000) }), 413, 'PAYLOAD_TOO_LARGE');
  isProblem(t, await create('<user/>', { 'content-type': 'application/xml' }), 415, 'UNSUPPORTED_MEDIA_TYPE');

  t.equal(await userCount(), before, 'no user was created by bad input');
  t.match(
    (await asAdmin('GET', '/api/v1/users/1')).json(),
    { role: 'admin', active: true, email: 'admin@users-a.test' },
    'the admin is unchanged by refused PATCHes',
  );
  t.equal((await create(valid)).statusCode, 201, 'the same body, valid, is accepted');
});
