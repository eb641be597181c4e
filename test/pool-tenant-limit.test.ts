/**
 * SILO_POOL_MAX_PER_TENANT holds as MySQL counts sessions (information_schema.PROCESSLIST),
 * also across the moments where this process forgets a tenant's account: a suspension
 * (`drop`) while the tenant's queries still run, and connections of the tenant that are
 * closing (COM_QUIT sent, the session not gone yet). Each case holds the tenant's first
 * connections in `SELECT SLEEP`, drops the tenant, then asks for more connections than
 * the limit while the sampler counts the account's sessions.
 */
import t from 'tap';
import { makeTenant, setupApp } from './fixtures/app.js';
import { sampleProcesslist } from './fixtures/processlist-sampler.js';

const MAX_PER_TENANT = 2;

const { app, ctx } = await setupApp(t, {
  SILO_POOL_MAX_CONNECTIONS: '10',
  SILO_POOL_MAX_PER_TENANT: String(MAX_PER_TENANT),
  SILO_TENANT_CHANGE_POLL_MS: '0',
});
const pools = app.tenantConnections;

t.test('queries still running when the tenant is dropped count against its limit until they end', async (t) => {
  const tenant = await makeTenant(ctx, 'limit-drop');
  const sampler = sampleProcesslist({ users: [tenant.dbUser] }, { everyMs: 1 });
  await sampler.ready();
  const first = await pools.acquire(tenant);
  // Started now (a Knex query runs once it is awaited or then-ed).
  const running = [Promise.resolve(first.knex.raw('SELECT SLEEP(0.8)')), Promise.resolve(first.knex.raw('SELECT SLEEP(0.8)'))];
  // Both sessions are on the server before the drop.
  const until = Date.now() + 5_000;
  while (sampler.peak().perUser < MAX_PER_TENANT && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  t.equal(sampler.peak().perUser, MAX_PER_TENANT, 'both first queries run on the server');
  await pools.drop(tenant.id);
  first.release();
  const second = await pools.acquire(tenant);
  const more = [0, 1, 2].map(() => second.knex.raw('SELECT SLEEP(0.2)'));
  await Promise.all([...running, ...more]);
  second.release();
  const seen = await sampler.stop();
  t.ok(seen.perUser <= MAX_PER_TENANT, `at most ${MAX_PER_TENANT} sessions of the account at any of ${seen.samples} samples (max ${seen.perUser})`);
});

t.test('idle connections closed by a drop count against the limit until the server closed them', async (t) => {
  const tenant = await makeTenant(ctx, 'limit-idle');
  const lease = await pools.acquire(tenant);
  await Promise.all([lease.knex.raw('SELECT SLEEP(0.1)'), lease.knex.raw('SELECT SLEEP(0.1)')]);
  lease.release();
  t.equal(pools.stats().idleConnections >= MAX_PER_TENANT, true, 'the tenant has two idle connections');
  const sampler = sampleProcesslist({ users: [tenant.dbUser] }, { everyMs: 0 });
  await sampler.ready();
  // Many rounds: a COM_QUIT is quick, the window is small.
  for (let round = 0; round < 30; round++) {
    await pools.drop(tenant.id);
    const again = await pools.acquire(tenant);
    await Promise.all([again.knex.raw('SELECT SLEEP(0.02)'), again.knex.raw('SELECT SLEEP(0.02)')]);
    again.release();
  }
  const seen = await sampler.stop();
  t.ok(seen.perUser <= MAX_PER_TENANT, `at most ${MAX_PER_TENANT} sessions of the account at any of ${seen.samples} samples (max ${seen.perUser})`);
});
