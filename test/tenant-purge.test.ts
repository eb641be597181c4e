/**
 * Expired idempotency keys and expired or revoked refresh tokens are purged, live ones
 * kept: by `silo tenants purge` (one tenant, several, `--all`) and by the maintenance job
 * of `silo serve`, which runs under a catalog lock so that of two instances at once only
 * one does the work.
 */
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { pino } from 'pino';
import type { Tenant } from '../src/catalog/index.js';
import { createContext } from '../src/context.js';
import { startServer } from '../src/http/server.js';
import { runMaintenance } from '../src/jobs/maintenance.js';
import { makeTenant, TEST_JWT_SECRET } from './fixtures/app.js';
import { runCli, runCliJson, setupSilo } from './fixtures/env.js';

const { ctx, env, config } = await setupSilo(t, { SILO_JWT_SECRET: TEST_JWT_SECRET });
const pa = await makeTenant(ctx, 'purge-a');
const pb = await makeTenant(ctx, 'purge-b');
const HOUR = 3_600_000;

/** Seeds two expired and one live idempotency key, and expired, revoked and live refresh tokens. */
async function seed(tenant: Tenant): Promise<void> {
  const now = Date.now();
  await ctx.admin.withTenantDatabase(tenant, async (k) => {
    const idem = (key: string, ageH: number) => ({
      user_id: 1,
      idem_key: key,
      route: 'POST /api/v1/companies',
      request_hash: '0'.repeat(64),
      response_status: 201,
      response_body: '{}',
      created_at: new Date(now - ageH * HOUR),
    });
    await k('idempotency_keys').insert([idem(`old-${randomUUID()}`, 25), idem(`older-${randomUUID()}`, 24 * 30), idem(`live-${randomUUID()}`, 1)]);
    const token = (kind: string, expiresInH: number, revoked = false) => ({
      user_id: 1,
      token_hash: randomUUID().replace(/-/g, '').padEnd(64, kind[0]),
      family_id: randomUUID(),
      expires_at: new Date(now + expiresInH * HOUR),
      revoked_at: revoked ? new Date(now - HOUR) : null,
    });
    await k('refresh_tokens').insert([token('expired', -1), token('revoked', 48, true), token('live', 48)]);
  });
}

/** What is left: idempotency key prefixes and refresh token states. */
async function left(tenant: Tenant) {
  return ctx.admin.withTenantDatabase(tenant, async (k) => {
    const keys: Array<{ idem_key: string }> = await k('idempotency_keys').select('idem_key');
    const tokens: Array<{ expires_at: Date; revoked_at: Date | null }> = await k('refresh_tokens').select('expires_at', 'revoked_at');
    return {
      keys: keys.map((r) => r.idem_key.split('-')[0]).sort(),
      tokens: tokens.map((r) => (r.revoked_at ? 'revoked' : new Date(r.expires_at).getTime() <= Date.now() ? 'expired' : 'live')).sort(),
    };
  });
}
const clean = async (tenant: Tenant) =>
  ctx.admin.withTenantDatabase(tenant, async (k) => {
    await k('idempotency_keys').del();
    await k('refresh_tokens').del();
  });

t.test('silo tenants purge <slug> removes expired rows of that tenant only; --all does every tenant', async (t) => {
  await seed(pa);
  await seed(pb);
  const { result, json } = await runCliJson<any>(['tenants', 'purge', 'purge-a'], env);
  t.equal(result.code, 0, result.stderr);
  t.match(json, { tenants: [{ slug: 'purge-a', outcome: 'purged', idempotencyKeys: 2, refreshTokens: 2 }] });
  t.same(await left(pa), { keys: ['live'], tokens: ['live'] });
  t.same(await left(pb), { keys: ['live', 'old', 'older'], tokens: ['expired', 'live', 'revoked'] }, 'the other tenant is untouched');

  const all = await runCliJson<any>(['tenants', 'purge', '--all'], env);
  t.equal(all.result.code, 0, all.result.stderr);
  t.same(await left(pb), { keys: ['live'], tokens: ['live'] });
  t.same(await left(pa), { keys: ['live'], tokens: ['live'] });

  const human = await runCli(['tenants', 'purge', 'purge-a'], env);
  t.equal(human.code, 0, human.stderr);
  t.match(human.stdout, /purge-a/);
  t.equal((await runCli(['tenants', 'purge'], env)).code, 2, 'no slug and no --all: usage error');
  t.equal((await runCli(['tenants', 'purge', 'purge-a', '--all'], env)).code, 2, 'slugs and --all: usage error');
  await clean(pa);
  await clean(pb);
});

t.test('two instances at once: only one runs the maintenance job (catalog lock)', async (t) => {
  await seed(pa);
  const log = pino({ level: 'silent' });
  const a = createContext(config, log);
  const b = createContext(config, log);
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  let locked!: () => void;
  const aHoldsLock = new Promise<void>((r) => (locked = r));
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const runA = runMaintenance(a, {
    afterLock: async () => {
      locked();
      await gate;
    },
  });
  await aHoldsLock;
  const runB = await runMaintenance(b);
  t.equal(runB.ran, false, 'the second instance skips while the first holds the lock');
  t.same(await left(pa), { keys: ['live', 'old', 'older'], tokens: ['expired', 'live', 'revoked'] }, 'nothing purged by the second');
  release();
  const resA = await runA;
  t.equal(resA.ran, true);
  t.same(await left(pa), { keys: ['live'], tokens: ['live'] });
  const runC = await runMaintenance(b);
  t.equal(runC.ran, true, 'the lock is released after the run');
  await clean(pa);
});

t.test('silo serve purges on its schedule', async (t) => {
  await seed(pa);
  const server = await startServer({ ...config, port: 0, host: '127.0.0.1', maintenanceCron: '* * * * * *' }, { handleSignals: false });
  t.teardown(() => server.close());
  const deadline = Date.now() + 15_000;
  let state = await left(pa);
  while (Date.now() < deadline && state.keys.length > 1) {
    await new Promise((r) => setTimeout(r, 200));
    state = await left(pa);
  }
  t.same(state, { keys: ['live'], tokens: ['live'] }, 'purged by the scheduled job');
});
