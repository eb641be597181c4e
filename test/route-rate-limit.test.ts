/**
 * The per-route limits (sign-in, signup, ...) with `SILO_REDIS_URL`: two API processes (two
 * apps here) share one budget per client, so a guesser cannot multiply the login limit by
 * the number of processes; a Redis that does not answer neither fails requests nor lifts
 * the limit (each process counts for itself). Keys live under this file's own prefix and
 * are deleted at the end.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { buildApp } from '../src/http/app.js';
import { parseRedisUrl, RedisClient } from '../src/lib/redis.js';
import { makeTenant, TEST_JWT_SECRET } from './fixtures/app.js';
import { setupSilo } from './fixtures/env.js';

const REDIS_URL = process.env.SILO_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `silo-test-${randomBytes(4).toString('hex')}:`;
const redis = new RedisClient(parseRedisUrl(REDIS_URL));
t.teardown(async () => {
  const keys = (await redis.command(['KEYS', `${PREFIX}*`])) as string[];
  if (keys.length) await redis.command(['DEL', ...keys]);
  await redis.close();
});

const LIMIT = 4;
const APP_ENV = { SILO_JWT_SECRET: TEST_JWT_SECRET, SILO_LOGIN_RATE_LIMIT: String(LIMIT), SILO_UNKNOWN_TENANT_RATE_LIMIT: '100000' };

const wrongLogin = (app: FastifyInstance, slug: string) =>
  app.inject({
    method: 'POST',
    url: '/api/v1/auth/login',
    headers: { 'x-tenant': slug },
    payload: { email: `admin@${slug}.test`, password: 'not-the-password-at-all' },
  });

t.test('with Redis: two API processes share one login budget per client', async (t) => {
  const { ctx } = await setupSilo(t, { ...APP_ENV, SILO_REDIS_URL: REDIS_URL, SILO_REDIS_KEY_PREFIX: PREFIX });
  const one = await buildApp({ ctx });
  const two = await buildApp({ ctx });
  await Promise.all([one.ready(), two.ready()]);
  t.teardown(() => Promise.all([one.close(), two.close()]));
  await makeTenant(ctx, 'limit-shared');
  const statuses: number[] = [];
  for (let i = 0; i < LIMIT + 2; i++) statuses.push((await wrongLogin(i % 2 ? two : one, 'limit-shared')).statusCode);
  t.same(statuses, [...Array<number>(LIMIT).fill(401), 429, 429], `${LIMIT} attempts in all, whichever process answers`);
  const keys = (await redis.command(['KEYS', `${PREFIX}limit:*`])) as string[];
  t.equal(keys.length, 1, `one counter in Redis under the prefix (${keys.join(', ')})`);
  t.ok(((await redis.command(['PTTL', keys[0]!])) as number) > 0, 'the counter expires');
});

t.test('a Redis that does not answer: sign-ins are neither failed nor unlimited', async (t) => {
  const { ctx } = await setupSilo(t, { ...APP_ENV, SILO_REDIS_URL: 'redis://127.0.0.1:9', SILO_REDIS_KEY_PREFIX: PREFIX });
  const app = await buildApp({ ctx });
  await app.ready();
  t.teardown(() => app.close());
  await makeTenant(ctx, 'limit-local');
  const statuses: number[] = [];
  for (let i = 0; i < LIMIT + 2; i++) statuses.push((await wrongLogin(app, 'limit-local')).statusCode);
  t.same(statuses, [...Array<number>(LIMIT).fill(401), 429, 429], 'limited in the process');
});
