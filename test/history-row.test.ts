/**
 * The request-history row, field by field: for representative requests (a route with
 * parameters, query strings with secrets and encodings, an empty query, errors with
 * problem codes, a 5xx, platform and tenant users, an unknown tenant, unknown routes under
 * and next to `/api/v1`, HEAD) every stored column has exactly the
 * value written here, and paths outside `/api/v1` and `/platform/v1` are not recorded.
 * With history off the app still starts (the plugin once forgot to call `done` then).
 * It pins what the history plugin and the recorder's INSERT store, so that making them
 * cheaper changes nothing a reader of the history sees.
 */
import t from 'tap';
import type { LightMyRequestResponse } from 'fastify';
import { buildApp } from '../src/http/app.js';
import { login, makeTenant, platformLogin, setupApp } from './fixtures/app.js';

const { app, ctx } = await setupApp(t, { SILO_HISTORY_BATCH: '1000', SILO_HISTORY_FLUSH_MS: '60000' });
const k = ctx.catalog.knex;
const tenant = await makeTenant(ctx, 'hrow-a');
const tok = await login(app, 'hrow-a');
const ptoken = await platformLogin(app, ctx, 'support', 'support@hrow.test');
// A route that throws, for a 5xx (added before the app is used).
const boomApp = await buildApp({ ctx });
boomApp.get('/api/v1/test-boom/:n', () => {
  throw new Error('boom');
});
await boomApp.ready();
t.teardown(() => boomApp.close());

const auth = { 'x-tenant': 'hrow-a', authorization: `Bearer ${tok.accessToken}` };

/** Every column but `id`, as stored. */
interface Stored {
  request_id: string;
  tenant_id: number | null;
  user_id: number | null;
  user_kind: string | null;
  method: string;
  route: string | null;
  path: string;
  query: string | null;
  status: number;
  response_bytes: number | null;
  ip: string | null;
  user_agent: string | null;
  error_code: string | null;
}

type Expected = Omit<Stored, 'request_id' | 'response_bytes'>;

const cases: Array<{ name: string; send: () => Promise<LightMyRequestResponse>; want: Expected | 'not recorded' }> = [
  {
    name: 'a route with a parameter, a tenant user, 404 with its problem code',
    send: () => app.inject({ url: '/api/v1/companies/424242', headers: { ...auth, 'user-agent': 'row-test/1.0' } }),
    want: {
      tenant_id: tenant.id,
      user_id: 1,
      user_kind: 'tenant',
      method: 'GET',
      route: '/api/v1/companies/:id',
      path: '/api/v1/companies/424242',
      query: null,
      status: 404,
      ip: '127.0.0.1',
      user_agent: 'row-test/1.0',
      error_code: 'COMPANY_NOT_FOUND',
    },
  },
  {
    name: 'a query string the route refuses: 400 VALIDATION_FAILED, the query kept',
    send: () => app.inject({ url: '/api/v1/companies/424242?expand=owner&x=1', headers: auth }),
    want: {
      tenant_id: tenant.id,
      user_id: 1,
      user_kind: 'tenant',
      method: 'GET',
      route: '/api/v1/companies/:id',
      path: '/api/v1/companies/424242',
      query: 'expand=owner&x=1',
      status: 400,
      ip: '127.0.0.1',
      user_agent: 'lightMyRequest',
      error_code: 'VALIDATION_FAILED',
    },
  },
  {
    name: 'secret-looking query values redacted, others re-encoded as URLSearchParams does',
    send: () =>
      app.inject({
        url: '/api/v1/auth/me?tenant=hrow-a&access_token=leaky&Password=p%20w&q=a%20b+c&sig=&empty',
        headers: { authorization: `Bearer ${tok.accessToken}` },
      }),
    want: {
      tenant_id: tenant.id,
      user_id: 1,
      user_kind: 'tenant',
      method: 'GET',
      route: '/api/v1/auth/me',
      path: '/api/v1/auth/me',
      query: 'tenant=hrow-a&access_token=%5Bredacted%5D&Password=%5Bredacted%5D&q=a+b+c&sig=%5Bredacted%5D&empty=',
      status: 200,
      ip: '127.0.0.1',
      user_agent: 'lightMyRequest',
      error_code: null,
    },
  },
  {
    name: 'an empty query string (a bare "?") is stored as null',
    send: () => app.inject({ url: '/api/v1/auth/me?', headers: auth }),
    want: {
      tenant_id: tenant.id,
      user_id: 1,
      user_kind: 'tenant',
      method: 'GET',
      route: '/api/v1/auth/me',
      path: '/api/v1/auth/me',
      query: null,
      status: 200,
      ip: '127.0.0.1',
      user_agent: 'lightMyRequest',
      error_code: null,
    },
  },
  {
    name: 'HEAD of a route',
    send: () => app.inject({ method: 'HEAD', url: '/api/v1/auth/me', headers: auth }),
    want: {
      tenant_id: tenant.id,
      user_id: 1,
      user_kind: 'tenant',
      method: 'HEAD',
      route: '/api/v1/auth/me',
      path: '/api/v1/auth/me',
      query: null,
      status: 200,
      ip: '127.0.0.1',
      user_agent: 'lightMyRequest',
      error_code: null,
    },
  },
  {
    name: 'an unknown tenant: no tenant, no user, TENANT_NOT_FOUND',
    send: () => app.inject({ url: '/api/v1/auth/me?token=abc', headers: { 'x-tenant': 'no-such-tenant' } }),
    want: {
      tenant_id: null,
      user_id: null,
      user_kind: null,
      method: 'GET',
      route: '/api/v1/auth/me',
      path: '/api/v1/auth/me',
      query: 'token=%5Bredacted%5D',
      status: 404,
      ip: '127.0.0.1',
      user_agent: 'lightMyRequest',
      error_code: 'TENANT_NOT_FOUND',
    },
  },
  {
    name: 'a POST without a user (sign-in refused): 401 with its code, no body stored',
    send: () =>
      app.inject({
        method: 'POST',
        url: '/api/v1/auth/login',
        headers: { 'x-tenant': 'hrow-a' },
        payload: { email: 'admin@hrow-a.test', password: 'wrong-password-1' },
      }),
    want: {
      tenant_id: tenant.id,
      user_id: null,
      user_kind: null,
      method: 'POST',
      route: '/api/v1/auth/login',
      path: '/api/v1/auth/login',
      query: null,
      status: 401,
      ip: '127.0.0.1',
      user_agent: 'lightMyRequest',
      error_code: 'INVALID_CREDENTIALS',
    },
  },
  {
    name: 'a platform user',
    send: () => app.inject({ url: '/platform/v1/tenants', headers: { authorization: `Bearer ${ptoken}`, 'user-agent': 'ops' } }),
    want: {
      tenant_id: null,
      user_id: 1,
      user_kind: 'platform',
      method: 'GET',
      route: '/platform/v1/tenants',
      path: '/platform/v1/tenants',
      query: null,
      status: 200,
      ip: '127.0.0.1',
      user_agent: 'ops',
      error_code: null,
    },
  },
  {
    name: 'an unknown route under /api/v1: no route pattern, ROUTE_NOT_FOUND',
    send: () => app.inject({ url: '/api/v1/no-such-thing/7?session=s', headers: auth }),
    want: {
      tenant_id: null,
      user_id: null,
      user_kind: null,
      method: 'GET',
      route: null,
      path: '/api/v1/no-such-thing/7',
      query: 'session=%5Bredacted%5D',
      status: 404,
      ip: '127.0.0.1',
      user_agent: 'lightMyRequest',
      error_code: 'ROUTE_NOT_FOUND',
    },
  },
  {
    name: '/api/v1 itself with a query',
    send: () => app.inject({ url: '/api/v1?x=1' }),
    want: {
      tenant_id: null,
      user_id: null,
      user_kind: null,
      method: 'GET',
      route: null,
      path: '/api/v1',
      query: 'x=1',
      status: 404,
      ip: '127.0.0.1',
      user_agent: 'lightMyRequest',
      error_code: 'ROUTE_NOT_FOUND',
    },
  },
  {
    name: 'a 5xx of a route with a parameter',
    send: () => boomApp.inject({ url: '/api/v1/test-boom/3' }),
    want: {
      tenant_id: null,
      user_id: null,
      user_kind: null,
      method: 'GET',
      route: '/api/v1/test-boom/:n',
      path: '/api/v1/test-boom/3',
      query: null,
      status: 500,
      ip: '127.0.0.1',
      user_agent: 'lightMyRequest',
      error_code: 'INTERNAL',
    },
  },
  { name: '/health is not recorded', send: () => app.inject('/health'), want: 'not recorded' },
  { name: '/api/v10/... is not recorded', send: () => app.inject('/api/v10/contacts'), want: 'not recorded' },
  { name: '/apiv1 is not recorded', send: () => app.inject('/apiv1'), want: 'not recorded' },
  { name: '/platform/v1x is not recorded', send: () => app.inject('/platform/v1x?token=1'), want: 'not recorded' },
];

t.test('every column of every recorded row has exactly the expected value', async (t) => {
  const sent: Array<{ name: string; res: LightMyRequestResponse; startedAt: number; endedAt: number; want: Expected | 'not recorded' }> = [];
  for (const c of cases) {
    const startedAt = Date.now();
    const res = await c.send();
    sent.push({ name: c.name, res, startedAt, endedAt: Date.now(), want: c.want });
  }
  await app.historyRecorder!.flush(true);
  await boomApp.historyRecorder!.flush(true);
  const rows: Array<Stored & { id: unknown; created_at: Date; duration_ms: number }> = await k('request_history').select('*');
  const byId = new Map(rows.map((r) => [r.request_id, r]));
  for (const s of sent) {
    const requestId = String(s.res.headers['x-request-id']);
    const got = byId.get(requestId);
    if (s.want === 'not recorded') {
      t.equal(got, undefined, `${s.name}: no row`);
      continue;
    }
    if (!got) {
      t.fail(`${s.name}: no row for request ${requestId}`);
      continue;
    }
    const { id, created_at, duration_ms, ...rest } = got;
    t.ok(id, `${s.name}: has an id`);
    const length = s.res.headers['content-length'];
    t.same(rest, { ...s.want, request_id: requestId, response_bytes: length === undefined ? null : Number(length) }, `${s.name}: columns`);
    t.ok(duration_ms > 0 && duration_ms <= s.endedAt - s.startedAt + 1, `${s.name}: duration ${duration_ms} ms within the request's wall time`);
    t.ok(
      Number.isInteger(Math.round(duration_ms * 1000)) && Math.abs(duration_ms * 1000 - Math.round(duration_ms * 1000)) < 1e-6,
      `${s.name}: duration in whole µs`,
    );
    t.ok(
      created_at.getTime() >= s.startedAt - 1 && created_at.getTime() <= s.endedAt,
      `${s.name}: created_at ${created_at.toISOString()} is when the request started (${new Date(s.startedAt).toISOString()})`,
    );
  }
});

t.test('with SILO_HISTORY_ENABLED=0 the app starts, answers, and records nothing', async (t) => {
  const { app: off, ctx: offCtx } = await setupApp(t, { SILO_HISTORY_ENABLED: '0' });
  t.equal(off.historyRecorder, undefined);
  const res = await off.inject({ url: '/api/v1/no-such-thing' });
  t.equal(res.statusCode, 404);
  t.equal(Number((await offCtx.catalog.knex('request_history').count({ n: '*' }).first())?.n), 0, 'no rows');
});
