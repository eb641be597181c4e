/**
 * Hostile JSON shapes far under the body limit never answer 5xx: bodies nested deeper
 * than 64 levels (5,000 objects, 100,000 arrays) are refused at parse time with 400
 * `BODY_TOO_DEEP` problem+json, on public and authenticated routes alike; 64 levels are
 * still parsed (and judged by the route's schema); brackets inside strings do not count;
 * objects of 100,000 keys and arrays of 100,000 elements answer 4xx, and the server
 * still answers afterwards.
 */
import type { LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import { login, makeTenant, setupApp } from '../fixtures/app.js';
import { hostileJson } from '../fixtures/hostile.js';
import { isProblem } from '../fixtures/problem.js';

const { app, ctx } = await setupApp(t);
await makeTenant(ctx, 'bodies');
const token = (await login(app, 'bodies')).accessToken;

type Target = { name: string; url: string; headers: Record<string, string> };
const TARGETS: Target[] = [
  { name: 'tenant login (no token)', url: '/api/v1/auth/login', headers: { 'x-tenant': 'bodies' } },
  { name: 'create contact', url: '/api/v1/contacts', headers: { 'x-tenant': 'bodies', authorization: `Bearer ${token}` } },
  { name: 'platform login', url: '/platform/v1/auth/login', headers: {} },
];
const post = (target: Target, body: string) =>
  app.inject({ method: 'POST', url: target.url, headers: { ...target.headers, 'content-type': 'application/json' }, payload: body });

const noServerError = (t: Test, res: LightMyRequestResponse, what: string) => {
  t.ok(res.statusCode >= 400 && res.statusCode < 500, `${what}: ${res.statusCode} is a 4xx`);
  t.match(res.headers['content-type'], /^application\/problem\+json/, `${what}: problem+json`);
};

for (const target of TARGETS) {
  t.test(`${target.name}: 5,000 nested objects and 100,000 nested arrays answer 400 BODY_TOO_DEEP`, async (t) => {
    for (const [what, body] of [
      ['5,000 nested objects', hostileJson.nestedObjects(5_000)],
      ['100,000 nested arrays', hostileJson.nestedArrays(100_000)],
      ['65 nested objects', hostileJson.nestedObjects(65)],
      ['65 levels inside a field', `{"email":${hostileJson.nestedArrays(64)},"password":"x"}`],
    ] as const) {
      t.ok(body.length < 1_048_576, `${what} is under the body limit (${body.length} bytes)`);
      const p = isProblem(t, await post(target, body), 400, 'BODY_TOO_DEEP');
      t.match(p.detail, /64/, `${what}: the detail names the limit`);
    }
  });
}

t.test('64 levels are parsed and judged by the schema; brackets inside strings do not count', async (t) => {
  const contacts = TARGETS[1]!;
  isProblem(t, await post(contacts, hostileJson.nestedObjects(64)), 400, 'VALIDATION_FAILED');
  const inString = JSON.stringify({ fullName: `${'[{'.repeat(90)}"\\ brackets` });
  const res = await post(contacts, inString);
  t.equal(res.statusCode, 201, `brackets and an escaped quote in a string are data: ${res.body.slice(0, 200)}`);
});

t.test('wide objects (100,000 keys) and long arrays (100,000 elements) answer 4xx, never 5xx', async (t) => {
  for (const target of TARGETS) {
    noServerError(t, await post(target, hostileJson.wideObject(100_000)), `${target.name}, 100k keys`);
    noServerError(t, await post(target, `{"email":${hostileJson.longArray(100_000)},"password":"x"}`), `${target.name}, 100k-element array`);
    noServerError(t, await post(target, hostileJson.longArray(100_000)), `${target.name}, 100k-element array as the body`);
    noServerError(
      t,
      await post(target, `{"fullName":${hostileJson.nestedObjects(60, JSON.stringify('\ud800'))}}`),
      `${target.name}, lone surrogate 60 levels down`,
    );
  }
});

t.test('the server still answers', async (t) => {
  t.equal((await app.inject('/health')).statusCode, 200);
});
