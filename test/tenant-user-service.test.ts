/**
 * One "add a tenant user" service for the CLI and the API: `silo users add` goes through
 * the same service as `POST /api/v1/users` (over the tenant's own DML-only account), so
 * it writes the same activity entry (a `create` of the `user`, with its fields, by the
 * platform: no user id), and both refuse an email already taken with the same code
 * (`USER_EXISTS`).
 */
import t from 'tap';
import { PASSWORD, login, makeTenant, setupApp } from './fixtures/app.js';
import { runCli, runCliJson } from './fixtures/env.js';

const { app, ctx, env } = await setupApp(t);
await makeTenant(ctx, 'adduser');
const admin = (await login(app, 'adduser')).accessToken;
const api = (method: 'GET' | 'POST', url: string, payload?: object) =>
  app.inject({ method, url, ...(payload ? { payload } : {}), headers: { 'x-tenant': 'adduser', authorization: `Bearer ${admin}` } });

/** The activity entries of one user, newest first. */
const activityOf = async (userId: number) => (await api('GET', `/api/v1/activity?entity=user&entityId=${userId}`)).json().data as any[];

t.test('silo users add writes the activity entry the API writes', async (t) => {
  const viaApi = await api('POST', '/api/v1/users', { email: 'api@adduser.test', role: 'staff', fullName: 'Api User', password: PASSWORD });
  t.equal(viaApi.statusCode, 201, viaApi.body);
  const { result, json } = await runCliJson<{ id: number }>(
    ['users', 'add', 'adduser', 'cli@adduser.test', '--role', 'staff', '--name', 'Cli User', '--password-stdin'],
    env,
    PASSWORD,
  );
  t.equal(result.code, 0, result.stderr);

  const apiEntries = await activityOf(viaApi.json().id);
  const cliEntries = await activityOf(json.id);
  t.equal(apiEntries.length, 1, 'the API logs the creation');
  t.equal(cliEntries.length, 1, 'the CLI logs the creation');
  t.match(cliEntries[0], { action: 'create', entity: 'user', entityId: json.id, userId: null }, 'by the platform (no tenant user)');
  t.same(Object.keys(cliEntries[0].changes).sort(), Object.keys(apiEntries[0].changes).sort(), 'the same fields as the API');
  t.match(cliEntries[0].changes, { email: { old: null, new: 'cli@adduser.test' }, fullName: { new: 'Cli User' }, role: { new: 'staff' } });
  t.notOk(JSON.stringify(cliEntries[0].changes).includes(PASSWORD), 'no password in the log');

  const signIn = await app.inject({
    method: 'POST',
    url: '/api/v1/auth/login',
    headers: { 'x-tenant': 'adduser' },
    payload: { email: 'cli@adduser.test', password: PASSWORD },
  });
  t.equal(signIn.statusCode, 200, 'the user the CLI added signs in');
});

t.test('the CLI and the API refuse a duplicate email with the same code', async (t) => {
  const entries = async () => (await api('GET', '/api/v1/activity?entity=user')).json().total as number;
  const before = await entries();
  const viaApi = await api('POST', '/api/v1/users', { email: 'cli@adduser.test', role: 'manager', password: PASSWORD });
  t.equal(viaApi.statusCode, 409);
  t.equal(viaApi.json().code, 'USER_EXISTS');
  const viaCli = await runCli(['users', 'add', 'adduser', 'API@adduser.test', '--role', 'manager', '--json'], env);
  t.equal(viaCli.code, 1, viaCli.stderr);
  t.equal(JSON.parse(viaCli.stdout).error.code, viaApi.json().code, 'same code as the API');
  t.equal(await entries(), before, 'no activity entry for either refusal');
});
