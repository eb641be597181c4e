/**
 * A custom domain moved from one tenant to another by the CLI routes to the new tenant in
 * every running API process within one change-poll interval: two API processes (each its
 * own context, pools and caches, sharing the catalog) both warmed up on the old route.
 */
import t from 'tap';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { createContext } from '../src/context.js';
import { buildApp } from '../src/http/app.js';
import { login, makeTenant, TEST_JWT_SECRET } from './fixtures/app.js';
import { runCli, setupSilo } from './fixtures/env.js';

const POLL_MS = 200;
/** One poll interval, plus the poll's own query and this test's request loop. */
const WITHIN_MS = POLL_MS + 800;
const HOST = 'crm.moving.example';

const { ctx, config, env } = await setupSilo(t, {
  SILO_JWT_SECRET: TEST_JWT_SECRET,
  SILO_LOGIN_RATE_LIMIT: '1000',
  SILO_UNKNOWN_TENANT_RATE_LIMIT: '100000',
  SILO_TENANT_CHANGE_POLL_MS: String(POLL_MS),
  SILO_TENANT_CACHE_TTL_MS: '600000',
});
await makeTenant(ctx, 'dm-one');
await makeTenant(ctx, 'dm-two');
const apps: FastifyInstance[] = [];
for (const c of [ctx, createContext(config, pino({ level: 'silent' }))]) {
  const app = await buildApp({ ctx: c });
  await app.ready();
  apps.push(app);
  t.teardown(async () => {
    await app.close();
    if (c !== ctx) await c.close();
  });
}
const tokens = { one: (await login(apps[0]!, 'dm-one')).accessToken, two: (await login(apps[0]!, 'dm-two')).accessToken };

/** Which tenant `app` routes HOST to: the one whose token `/auth/me` accepts (none: `null`). */
async function routedTo(app: FastifyInstance): Promise<'one' | 'two' | null> {
  for (const who of ['one', 'two'] as const) {
    const res = await app.inject({ url: '/api/v1/auth/me', headers: { host: HOST, authorization: `Bearer ${tokens[who]}` } });
    if (res.statusCode === 200) return who;
  }
  return null;
}

/** Polls until every app routes HOST to `want`; returns the ms it took (or Infinity past 5 s). */
async function allRouteTo(want: 'one' | 'two' | null): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < 5_000) {
    const seen = await Promise.all(apps.map(routedTo));
    if (seen.every((s) => s === want)) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 20));
  }
  return Infinity;
}

t.test('a domain moved by the CLI reaches every API process within one poll interval', async (t) => {
  const add = await runCli(['tenants', 'domains', 'add', 'dm-one', HOST], env);
  t.equal(add.code, 0, add.stderr);
  t.ok((await allRouteTo('one')) <= WITHIN_MS, 'both processes route the new domain to dm-one');
  for (const [from, to] of [
    ['one', 'two'],
    ['two', 'one'],
  ] as const) {
    const removed = await runCli(['tenants', 'domains', 'remove', `dm-${from}`, HOST], env);
    t.equal(removed.code, 0, removed.stderr);
    const added = await runCli(['tenants', 'domains', 'add', `dm-${to}`, HOST], env);
    t.equal(added.code, 0, added.stderr);
    const ms = await allRouteTo(to);
    t.ok(ms <= WITHIN_MS, `both processes route it to dm-${to} ${ms} ms after the move (<= ${WITHIN_MS})`);
  }
  const removed = await runCli(['tenants', 'domains', 'remove', 'dm-one', HOST], env);
  t.equal(removed.code, 0, removed.stderr);
  const ms = await allRouteTo(null);
  t.ok(ms <= WITHIN_MS, `a removed domain routes nowhere in both processes ${ms} ms after (<= ${WITHIN_MS})`);
});
