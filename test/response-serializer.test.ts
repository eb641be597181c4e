/**
 * Response serialization (src/http/response-serializer.ts): the compiled serializers
 * answer the same bytes as fastify-type-provider-zod's zod serializer did, the OpenAPI
 * document is unchanged, what cannot be compiled falls back to zod, and a payload zod
 * refuses is still refused where the answers are verified.
 *
 * The "before" is built in this test, so it cannot drift: the same `buildApp`, loaded
 * with `t.mockImport` so that its response serializer module hands Fastify zod's
 * serializer compiler instead (the code as it was). Both apps run with
 * NODE_ENV=production, where answers are not verified against zod: what is compared is
 * what production sends.
 */
import t from 'tap';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { serializerCompiler } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { compileFastSerializer, createResponseSerializerCompiler } from '../src/http/response-serializer.js';
import { problemSchema, tenantSchema, operationSchema, userSchema, tokenPairSchema, page } from '../src/http/schemas.js';
import { contactSchema } from '../src/http/routes/contacts.js';
import { login, makeTenant, platformLogin, setupApp } from './fixtures/app.js';

const { app, ctx } = await setupApp(t, { NODE_ENV: 'production' });
// Read before the second app loads its own copies of the schemas (same ids in zod's global registry); cached by @fastify/swagger.
const docs = (await app.inject('/docs/json')).body;

let zodCompilers = 0;
const before = await t.mockImport<typeof import('../src/http/app.js')>('../src/http/app.js', {
  '../src/http/response-serializer.js': {
    createResponseSerializerCompiler: () => {
      zodCompilers++;
      return serializerCompiler;
    },
  },
});
const zodApp = await before.buildApp({ ctx });
await zodApp.ready();
t.teardown(() => zodApp.close());

/** zod's serializer for a schema, as routes had it: encode, then JSON.stringify. */
const zodSerialize = (schema: z.ZodType) => serializerCompiler({ schema, method: 'GET', url: '/test', httpStatus: '200' });

t.test('the app it is compared with serializes with zod', (t) => {
  t.equal(zodCompilers, 1, "its buildApp set zod's serializer compiler");
  t.end();
});

t.test('the OpenAPI document is byte-identical to the one of the app with zod serializers', async (t) => {
  const res = await zodApp.inject('/docs/json');
  t.equal(res.statusCode, 200);
  t.ok(docs.length > 100_000, `a whole document (${docs.length} bytes)`);
  t.equal(docs, res.body);
});

t.test('real answers are the bytes the zod serializer wrote for the same payload', async (t) => {
  await makeTenant(ctx, 'sersz');
  const token = (await login(app, 'sersz')).accessToken;
  const platform = await platformLogin(app, ctx, 'operator');
  const send = (target: FastifyInstance, o: InjectOptions & { token?: string }) =>
    target.inject({ ...o, headers: { 'x-tenant': 'sersz', authorization: `Bearer ${o.token ?? token}`, 'x-request-id': 'same-request-id', ...o.headers } });
  const create = async (url: string, payload: object) => {
    const res = await send(app, { method: 'POST', url, payload });
    if (res.statusCode !== 201) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return res.json<{ id: number }>();
  };

  const company = await create('/api/v1/companies', { name: 'Acme "quoted" \\ ünïcødé' });
  await create('/api/v1/companies', { name: 'Globex' });
  const full = await create('/api/v1/contacts', {
    companyId: company.id,
    fullName: 'Ada Lovelace',
    email: 'ada@acme.test',
    phone: '+44 20 7946 0000',
    jobTitle: 'CTO',
  });
  const bare = await create('/api/v1/contacts', { fullName: 'Nobody' });
  const gone = await create('/api/v1/contacts', { fullName: 'Gone' });
  t.equal((await send(app, { method: 'DELETE', url: `/api/v1/contacts/${gone.id}` })).statusCode, 204);
  const stages = (await send(app, { method: 'GET', url: '/api/v1/pipeline-stages' })).json<{ data: Array<{ id: number }> }>().data;
  const deal = await create('/api/v1/deals', {
    title: 'Big deal',
    amount: '1200.5',
    currency: 'EUR',
    stageId: stages[1]!.id,
    companyId: company.id,
    contactId: full.id,
    ownerId: null,
    expectedCloseDate: '2026-03-31',
    status: 'open',
  });
  await create('/api/v1/deals', { title: 'Small deal', amount: '0', currency: 'USD', stageId: stages[0]!.id });
  // A tenant in maintenance answers a problem with an extra member (retryAfter).
  const sleepy = await makeTenant(ctx, 'serszmnt');
  const sleepyToken = (await login(app, 'serszmnt')).accessToken;
  await ctx.catalog.tenants.update(sleepy.id, { status: 'maintenance' });
  app.tenantResolver.invalidate('serszmnt');
  zodApp.tenantResolver.invalidate('serszmnt');

  const cases: Array<{ name: string; status: number; req: InjectOptions & { token?: string } }> = [
    { name: 'a contact with every field', status: 200, req: { url: `/api/v1/contacts/${full.id}` } },
    { name: 'a contact with null fields', status: 200, req: { url: `/api/v1/contacts/${bare.id}` } },
    { name: 'a deleted contact (deletedAt a date)', status: 200, req: { url: `/api/v1/contacts/${gone.id}?includeDeleted=true` } },
    { name: 'a page of contacts', status: 200, req: { url: '/api/v1/contacts?includeDeleted=true&sort=fullName' } },
    { name: 'a page of companies', status: 200, req: { url: '/api/v1/companies?pageSize=1&page=2' } },
    { name: 'a deal with amounts and dates', status: 200, req: { url: `/api/v1/deals/${deal.id}` } },
    { name: 'a page of deals', status: 200, req: { url: '/api/v1/deals' } },
    { name: 'the deal stats', status: 200, req: { url: '/api/v1/deals/stats' } },
    { name: 'the signed-in user', status: 200, req: { url: '/api/v1/auth/me' } },
    { name: 'the activity (served by the zod fallback)', status: 200, req: { url: '/api/v1/activity' } },
    { name: 'the platform tenant list', status: 200, req: { url: '/platform/v1/tenants', token: platform } },
    { name: 'a platform tenant', status: 200, req: { url: '/platform/v1/tenants/sersz', token: platform } },
    { name: 'a 404 problem', status: 404, req: { url: '/api/v1/contacts/999999' } },
    { name: 'a 400 problem with errors', status: 400, req: { url: '/api/v1/contacts?pageSize=1000' } },
    { name: 'a 401 problem', status: 401, req: { url: '/api/v1/auth/me', token: 'not-a-token' } },
    { name: 'a 503 problem with retryAfter', status: 503, req: { url: '/api/v1/auth/me', token: sleepyToken, headers: { 'x-tenant': 'serszmnt' } } },
  ];
  for (const { name, status, req } of cases) {
    const [fast, old] = [await send(app, req), await send(zodApp, req)];
    t.equal(fast.statusCode, status, `${name}: ${fast.statusCode} ${fast.body.slice(0, 200)}`);
    t.equal(fast.headers['content-type'], old.headers['content-type'], `${name}: same content type`);
    t.equal(fast.body, old.body, `${name}: same bytes`);
  }
});

t.test('compiled serializers write what zod and JSON.stringify write, edge values included', (t) => {
  const at = (iso: string) => new Date(iso);
  const contact = {
    id: 7,
    companyId: null,
    fullName: 'Zoë "Q" \\ \u2028 \ud800 tab\t',
    email: null,
    phone: '',
    jobTitle: 'x'.repeat(60) + '"',
    version: 3,
    createdAt: at('2024-02-29T23:59:59.999Z'),
    updatedAt: at('0099-01-01T00:00:00.000Z'),
    deletedAt: null,
    notInTheSchema: 'dropped',
  };
  const cases: Array<[string, z.ZodType, unknown]> = [
    ['a contact (extra keys dropped, odd strings, dates before year 1000)', contactSchema, contact],
    [
      'a contact with dates out of the 4-digit years',
      contactSchema,
      { ...contact, createdAt: at('+010000-01-01T00:00:00.000Z'), deletedAt: at('-000001-06-15T12:00:00.001Z') },
    ],
    ['a page', page(contactSchema), { data: [contact, { ...contact, id: 8 }], page: 1, pageSize: 20, total: 2 }],
    ['an empty page', page(contactSchema), { data: [], page: 3, pageSize: 1, total: 0 }],
    [
      'a problem with extra members (one undefined, one a function)',
      problemSchema,
      { type: 'urn:x', title: 'T', status: 503, detail: 'd', code: 'C', requestId: 'r', retryAfter: 5, gone: undefined, fn: () => 1 },
    ],
    [
      'a problem with errors',
      problemSchema,
      { errors: [{ path: 'body.a', message: 'bad', more: 1 }], type: 'urn:x', title: 'T', status: 400, detail: 'd', code: 'C', requestId: 'r' },
    ],
    [
      'a tenant with its optional domains in the middle of the shape',
      tenantSchema,
      {
        id: 1,
        slug: 's',
        name: 'n',
        plan: 'p',
        status: 'active',
        statusReason: null,
        databaseName: 'db',
        schemaVersion: null,
        adminEmail: 'a@b.c',
        createdAt: at('2020-01-01T00:00:00.000Z'),
        updatedAt: at('2020-01-02T00:00:00.000Z'),
        suspendedAt: null,
        deletedAt: null,
        domains: ['a.test', 'b.test'],
      },
    ],
    [
      'an operation with an absent optional and a record of anything',
      operationSchema,
      {
        id: 1,
        kind: 'k',
        tenantId: null,
        actor: 'cli',
        step: null,
        status: 'failed',
        error: 'e',
        startedAt: at('2020-01-01T00:00:00.000Z'),
        finishedAt: null,
        details: { nested: { when: at('2021-05-05T05:05:05.005Z'), list: [1, undefined, 'x'] }, skipped: undefined, zero: -0, big: 1e21, no: null },
      },
    ],
    [
      'a user',
      userSchema,
      {
        id: 1,
        email: 'e',
        fullName: null,
        role: 'staff',
        roleId: 3,
        active: false,
        version: 1,
        createdAt: at('2020-01-01T00:00:00Z'),
        updatedAt: at('2020-01-01T00:00:00Z'),
        lastLoginAt: null,
      },
    ],
    [
      'a token pair (a literal)',
      tokenPairSchema,
      { accessToken: 'a', tokenType: 'Bearer', expiresIn: 900, refreshToken: 'r', refreshExpiresAt: at('2030-01-01T00:00:00Z') },
    ],
    ['a 204 null', z.null(), null],
  ];
  for (const [name, schema, payload] of cases) {
    const fast = compileFastSerializer(schema);
    if (!fast) {
      t.fail(`${name}: compiled`);
      continue;
    }
    t.equal(fast(payload), zodSerialize(schema)(payload), name);
  }
  t.end();
});

t.test('a schema zod would write differently is left to the zod serializer', (t) => {
  const fallbacks: Array<[string, z.ZodType]> = [
    ['a union', z.object({ a: z.union([z.string(), z.number()]) })],
    ['a transform', z.object({ a: z.string().transform((s) => s.toUpperCase()) })],
    ['a pipe', z.object({ a: z.string().pipe(z.string()) })],
    ['a codec', z.object({ a: z.codec(z.string(), z.number(), { decode: Number, encode: String }) })],
    ['a default', z.object({ a: z.string().default('x') })],
    ['a trim (rewrites the value)', z.object({ a: z.string().trim() })],
    ['a refine', z.object({ a: z.string().refine((s) => s.length > 0) })],
    ['a coercion', z.object({ a: z.coerce.number() })],
    ['a declared z.unknown() property', z.object({ a: z.unknown() })],
    ['a declared z.any() property', z.object({ a: z.any() })],
    ['an optional array item', z.array(z.string().optional())],
    ['a catchall that is not unknown', z.object({ a: z.string() }).catchall(z.number())],
    ['a tuple', z.tuple([z.string(), z.number()])],
    ['a lazy schema', z.object({ a: z.lazy(() => z.string()) })],
    ['a record with non-string keys', z.record(z.enum(['a', 'b']), z.number())],
  ];
  for (const [name, schema] of fallbacks) {
    t.equal(compileFastSerializer(schema), undefined, `${name}: not compiled`);
    // Only zod's serializer validates (the compiled ones do not, without verify).
    const serialize = createResponseSerializerCompiler({ verify: false })({ schema, method: 'GET', url: '/x', httpStatus: '200' });
    t.throws(() => serialize(Symbol('not JSON')), { code: 'FST_ERR_RESPONSE_SERIALIZATION' }, `${name}: zod's serializer`);
  }
  const trimmed = z.object({ a: z.string().trim() });
  const serialize = createResponseSerializerCompiler({ verify: false })({ schema: trimmed, method: 'GET', url: '/x', httpStatus: '200' });
  t.equal(serialize({ a: '  x  ' }), '{"a":"x"}', 'the fallback writes what zod writes');
  t.end();
});

t.test('with verify (outside production) a payload zod refuses is refused as before', (t) => {
  const route = { schema: contactSchema, method: 'GET', url: '/api/v1/contacts/:id', httpStatus: '200' };
  const ok = {
    id: 1,
    companyId: null,
    fullName: 'A',
    email: null,
    phone: null,
    jobTitle: null,
    version: 1,
    createdAt: new Date(0),
    updatedAt: new Date(0),
    deletedAt: null,
  };
  const verified = createResponseSerializerCompiler({ verify: true })(route);
  t.equal(verified(ok), zodSerialize(contactSchema)(ok));
  t.throws(() => verified({ ...ok, createdAt: '1970-01-01T00:00:00.000Z' }), { code: 'FST_ERR_RESPONSE_SERIALIZATION' }, 'a string for a date');
  t.throws(() => verified({ ...ok, id: 1.5 }), { code: 'FST_ERR_RESPONSE_SERIALIZATION' }, 'a fraction for an integer');
  const unverified = createResponseSerializerCompiler({ verify: false })(route);
  t.equal(
    unverified({ ...ok, createdAt: '1970-01-01T00:00:00.000Z' }),
    zodSerialize(contactSchema)(ok),
    'without verify the compiled function writes it as it is',
  );
  t.throws(() => unverified({ ...ok, fullName: undefined }), /"fullName" is required/, 'a missing required property still fails without verify');
  t.end();
});
