/**
 * The plan's requests per minute (issue 15): past it a tenant's requests are answered 429
 * `RATE_LIMITED` with `Retry-After` until the minute ends; other tenants are not touched.
 * Without Redis each API process counts for itself; with `SILO_REDIS_URL` two API
 * processes (two apps here, each with its own limiter) share one count, so a tenant gets
 * its rate once in all, not once per process. A plan without a rate never reaches Redis
 * (no key is written). A Redis that does not answer does not fail requests: they are
 * counted in the process. Keys live under this file's own prefix and are deleted at the end.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import { buildApp } from '../src/http/app.js';
import { parseRedisUrl, RedisClient } from '../src/lib/redis.js';
import { RATE_WINDOW_MS } from '../src/tenancy/plan-rate-limit.js';
import { login, makeTenant, setupApp, TEST_JWT_SECRET } from './fixtures/app.js';
import { isProblem } from './fixtures/problem.js';
import { setupSilo } from './fixtures/env.js';

const REDIS_URL = process.env.SILO_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `silo-test-${randomBytes(4).toString('hex')}:`;
const redis = new RedisClient(parseRedisUrl(REDIS_URL));
t.teardown(async () => {
  const keys = (await redis.command(['KEYS', `${PREFIX}*`])) as string[];
  if (keys.length) await redis.command(['DEL', ...keys]);
  await redis.close();
});
const redisKeys = async () => ((await redis.command(['KEYS', `${PREFIX}*`])) as string[]).sort();

const PER_MINUTE = 5;
const APP_ENV = { SILO_JWT_SECRET: TEST_JWT_SECRET, SILO_LOGIN_RATE_LIMIT: '1000', SILO_UNKNOWN_TENANT_RATE_LIMIT: '100000' };

/** A tenant on a plan of `PER_MINUTE` requests per minute, and one on the unlimited standard plan; their admins' tokens. */
async function tenants(ctx: Awaited<ReturnType<typeof setupSilo>>['ctx'], app: FastifyInstance) {
  await ctx.catalog.plans.insert({ name: 'slow', requestsPerMinute: PER_MINUTE });
  await makeTenant(ctx, 'rate-slow');
  await makeTenant(ctx, 'rate-free');
  // Signed in before the plan applies (sign-ins are requests too).
  const slow = (await login(app, 'rate-slow')).accessToken;
  const free = (await login(app, 'rate-free')).accessToken;
  await ctx.catalog.tenants.update((await ctx.catalog.tenants.findBySlug('rate-slow'))!.id, { plan: 'slow' });
  ctx.events.emit('tenantChanged', 'rate-slow');
  ctx.events.emit('plansChanged');
  return { slow, free };
}

const me = (app: FastifyInstance, slug: string, token: string) =>
  app.inject({ method: 'GET', url: '/api/v1/auth/me', headers: { 'x-tenant': slug, authorization: `Bearer ${token}` } });

/**
 * Runs `burst` inside one rate window: when a window boundary passes during it, the
 * counts start over, so it waits for the next window and runs it again (at most twice).
 */
async function inOneWindow<T>(burst: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const window = Math.floor(Date.now() / RATE_WINDOW_MS);
    // Too close to the end of a window: start in the next one.
    const left = (window + 1) * RATE_WINDOW_MS - Date.now();
    if (left < 5_000) await new Promise((r) => setTimeout(r, left + 50));
    const started = Math.floor(Date.now() / RATE_WINDOW_MS);
    const result = await burst();
    if (Math.floor(Date.now() / RATE_WINDOW_MS) === started || attempt >= 1) return result;
  }
}

const statuses = (answers: LightMyRequestResponse[]) => answers.map((r) => r.statusCode);
/** Answers by status, for concurrent requests (counted in the order their hooks run, not the order sent). */
const tally = (answers: LightMyRequestResponse[]) => {
  const by: Record<number, number> = {};
  for (const r of answers) by[r.statusCode] = (by[r.statusCode] ?? 0) + 1;
  return by;
};

/** The checks of a refused request: 429 RATE_LIMITED with Retry-After within the minute. */
function isRateLimited(t: Test, res: LightMyRequestResponse) {
  const body = isProblem(t, res, 429, 'RATE_LIMITED');
  const retry = Number(res.headers['retry-after']);
  t.ok(retry >= 1 && retry <= 60, `Retry-After ${retry} s is within the minute`);
  t.equal(body.retryAfter, retry);
}

t.test('without Redis: past the plan rate 429 RATE_LIMITED with Retry-After, per process; unlimited tenants untouched', async (t) => {
  const { app, ctx } = await setupApp(t);
  const second = await buildApp({ ctx });
  await second.ready();
  t.teardown(() => second.close());
  const { slow, free } = await tenants(ctx, app);
  await Promise.all([app.planLimits.refresh(), second.planLimits.refresh()]);
  await inOneWindow(async () => {
    const first = await Promise.all(Array.from({ length: PER_MINUTE + 3 }, () => me(app, 'rate-slow', slow)));
    t.same(tally(first), { 200: PER_MINUTE, 429: 3 }, `${PER_MINUTE} answered, the rest refused`);
    isRateLimited(
      t,
      first.find((r) => r.statusCode === 429)!,
    );
    t.same(
      tally(await Promise.all(Array.from({ length: PER_MINUTE }, () => me(second, 'rate-slow', slow)))),
      { 200: PER_MINUTE },
      'another process counts for itself',
    );
    t.same(tally(await Promise.all(Array.from({ length: 20 }, () => me(app, 'rate-free', free)))), { 200: 20 }, 'a tenant without a rate is not limited');
  });
});

t.test('with Redis: two API processes share the count; a plan without a rate writes no key', async (t) => {
  const { ctx } = await setupSilo(t, { ...APP_ENV, SILO_REDIS_URL: REDIS_URL, SILO_REDIS_KEY_PREFIX: PREFIX });
  const one = await buildApp({ ctx });
  const two = await buildApp({ ctx });
  await Promise.all([one.ready(), two.ready()]);
  t.teardown(() => Promise.all([one.close(), two.close()]));
  const { slow, free } = await tenants(ctx, one);
  await Promise.all([one.planLimits.refresh(), two.planLimits.refresh()]);
  await inOneWindow(async () => {
    const answers: LightMyRequestResponse[] = [];
    for (let i = 0; i < PER_MINUTE + 3; i++) answers.push(await me(i % 2 ? two : one, 'rate-slow', slow));
    t.same(statuses(answers), [...Array(PER_MINUTE).fill(200), 429, 429, 429], `${PER_MINUTE} answered in all, whichever process answers`);
    isRateLimited(t, answers.at(-1)!);
    isRateLimited(t, await me(one, 'rate-slow', slow));
  });
  const slowId = (await ctx.catalog.tenants.findBySlug('rate-slow'))!.id;
  const freeId = (await ctx.catalog.tenants.findBySlug('rate-free'))!.id;
  t.same(tally(await Promise.all(Array.from({ length: 10 }, () => me(two, 'rate-free', free)))), { 200: 10 });
  // The sign-ins' own limit (route limits) counts under `limit:`; the plan rates under `rate:`.
  const keys = (await redisKeys()).filter((k) => k.startsWith(`${PREFIX}rate:`));
  t.ok(keys.length >= 1 && keys.every((k) => k.startsWith(`${PREFIX}rate:${slowId}:`)), `only the limited tenant's counter is in Redis (${keys.join(', ')})`);
  t.notOk(
    keys.some((k) => k.startsWith(`${PREFIX}rate:${freeId}:`)),
    'no key for the tenant without a rate',
  );
});

t.test('a Redis that does not answer: requests are counted in the process, never failed', async (t) => {
  // A port nothing listens on (the connection is refused at once).
  const { ctx } = await setupSilo(t, { ...APP_ENV, SILO_REDIS_URL: 'redis://127.0.0.1:9', SILO_REDIS_KEY_PREFIX: PREFIX });
  const app = await buildApp({ ctx });
  await app.ready();
  t.teardown(() => app.close());
  const { slow } = await tenants(ctx, app);
  await app.planLimits.refresh();
  await inOneWindow(async () => {
    const answers = await Promise.all(Array.from({ length: PER_MINUTE + 2 }, () => me(app, 'rate-slow', slow)));
    t.same(tally(answers), { 200: PER_MINUTE, 429: 2 }, 'limited in the process');
  });
});
