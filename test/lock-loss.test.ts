/**
 * A lifecycle lock lost mid-operation (issue 13 item 5): the session holding the tenant's
 * `GET_LOCK` is killed (found by its CONNECTION_ID, `IS_USED_LOCK`, in the processlist)
 * while a recreate runs. A second runner then takes the lock and works on the tenant; the
 * first one stops before its next step (`LOCK_LOST`), so the two never work on the tenant
 * at the same time and nothing is dropped.
 */
import { createHash } from 'node:crypto';
import { pino } from 'pino';
import t from 'tap';
import type { Tenant } from '../src/catalog/index.js';
import { createContext } from '../src/context.js';
import { repairTenant } from '../src/provisioning/repair-service.js';
import { recreateTenant } from '../src/provisioning/tenants-service.js';
import { login, makeTenant, setupApp } from './fixtures/app.js';
import { rootKnex } from './fixtures/env.js';

const { ctx, config, app } = await setupApp(t, { SILO_TENANT_CHANGE_POLL_MS: '0' });
const root = rootKnex();
t.teardown(() => root.destroy());
const other = createContext(config, pino({ level: 'silent' }));
t.teardown(() => other.close());

async function rowsDigest(tenant: Tenant): Promise<string> {
  const rows = await root(`${tenant.databaseName}.companies`).select('*').orderBy('id');
  return createHash('sha256').update(JSON.stringify(rows)).digest('hex');
}

/** The session id holding a named lock (null when free). */
async function holderOf(name: string): Promise<number | null> {
  const [rows] = (await root.raw('SELECT IS_USED_LOCK(?) AS id', [name])) as [Array<{ id: number | null }>];
  return rows[0]?.id ?? null;
}

t.test('the lock session killed mid-recreate: the recreate stops before its next step; a second runner works alone', async (t) => {
  const slug = 'lost-lock';
  const tenant = await makeTenant(ctx, slug);
  await ctx.admin.withTenantDatabase(tenant, (k) => k('companies').insert([{ name: 'kept 1' }, { name: 'kept 2' }]));
  const before = await rowsDigest(tenant);
  const name = ctx.locks.lockName(tenant.id);

  const events: string[] = [];
  const steps = ctx.catalog.operations;
  const step = steps.step.bind(steps);
  steps.step = async (id, s, trx) => {
    await step(id, s, trx);
    events.push(`first:${s}`);
    if (s !== 'backup') return;
    // Mid-operation: its lock session dies (wait_timeout, a proxy, an operator's KILL).
    const holder = await holderOf(name);
    t.ok(holder, 'the first runner holds the lock');
    const [list] = (await root.raw('SELECT ID FROM information_schema.PROCESSLIST WHERE ID = ?', [holder])) as [Array<{ ID: number }>];
    t.equal(list.length, 1, 'its session is in the processlist');
    await root.raw('KILL ?', [holder]);
    while ((await holderOf(name)) !== null) await new Promise((r) => setImmediate(r));
    // A second runner takes the freed lock and works on the tenant meanwhile (it closes
    // the first one's operation as interrupted: whoever holds the lock may).
    events.push('second:start');
    const report = await repairTenant(other, slug, 'second');
    events.push(`second:${report.outcome}`);
  };

  const err = (await recreateTenant(ctx, slug, 'first', { backup: false }).then(
    () => undefined,
    (e: unknown) => e,
  )) as { code?: string; message?: string } | undefined;
  steps.step = step;

  t.equal(err?.code, 'LOCK_LOST', 'the recreate fails with LOCK_LOST', { err });
  t.same(events, ['first:backup', 'second:start', 'second:repaired'], 'no step of the first runner after the second one started');
  const [op] = await ctx.catalog.operations.list({ tenantId: tenant.id, kind: 'recreate', limit: 1 });
  t.match(op, { status: 'failed', step: 'backup', error: /lock lost|interrupted/ }, 'its operation is failed at the step it had reached');
  t.match(await ctx.catalog.tenants.findById(tenant.id), { status: 'active', statusReason: null }, 'the tenant was not touched (not failed, not provisioning)');
  t.equal(await rowsDigest(tenant), before, 'nothing was dropped: the rows are as before');
  await t.resolves(login(app, slug), 'the admin still signs in');
});
