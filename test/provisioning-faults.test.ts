/**
 * A crash (SIGKILL) right after each step of `silo tenants create`, then
 * `silo tenants repair`: the tenant ends active with every migration applied, its
 * account and grant in place, and nothing orphaned.
 */
import t from 'tap';
import { runCli, runCliJson, setupSilo } from './fixtures/env.js';
import { fullTenantTables, latestTenantMigration, mysqlState, prefixedObjects } from './fixtures/mysql-state.js';

const { env, names, ctx } = await setupSilo(t);
const TABLES = await fullTenantTables();
const LATEST = await latestTenantMigration();
const STEPS = ['catalog', 'database', 'user', 'migrations', 'seed', 'activate'];

for (const step of STEPS) {
  t.test(`crash after create:${step}, then repair ends active with nothing orphaned`, async (t) => {
    const slug = `crash-${step}`;
    const crashed = await runCli(['tenants', 'create', slug], { ...env, SILO_ENABLE_FAULTS: '1', SILO_FAULT_KILL_AFTER: `create:${step}` });
    t.equal(crashed.signal, 'SIGKILL', 'the process was killed');
    const before = (await ctx.catalog.tenants.findBySlug(slug))!;
    t.ok(before, 'the catalog row exists (it is written first)');
    const op = (await ctx.catalog.operations.list({ tenantId: before.id }))[0]!;
    t.equal(op.step, step, 'the operation says which step was reached');
    t.equal(op.status, 'running', 'killed mid-operation');

    const { result, json } = await runCliJson<any>(['tenants', 'repair', slug], env);
    t.equal(result.code, 0, result.stderr);
    t.equal(json.tenants[0].status, 'active');
    const after = (await ctx.catalog.tenants.findBySlug(slug))!;
    t.equal(after.status, 'active');
    t.equal(after.schemaVersion, LATEST);
    const db = after.databaseName;
    const state = await mysqlState(db, after.dbUser);
    t.ok(state.database && state.user);
    t.same(state.privileges, ['DELETE', 'INSERT', 'SELECT', 'UPDATE']);
    t.same(state.tables, TABLES);
    const admins = await ctx.admin.withTenantDatabase(after, (k) => k('users').where({ role: 'admin' }).count({ n: '*' }).first());
    t.equal(Number(admins?.n), 1, 'exactly one admin');
    const repairOp = (await ctx.catalog.operations.list({ tenantId: after.id, kind: 'repair' }))[0]!;
    t.equal(repairOp.status, 'succeeded');
  });
}

t.test('a failing step marks the tenant failed with the step and reason; repair finishes it', async (t) => {
  const failing = await runCli(['tenants', 'create', 'broken'], { ...env, SILO_ENABLE_FAULTS: '1', SILO_FAULT_FAIL_AFTER: 'create:database' });
  t.equal(failing.code, 1);
  const tenant = (await ctx.catalog.tenants.findBySlug('broken'))!;
  t.equal(tenant.status, 'failed');
  t.match(tenant.statusReason, /after step database/);
  const op = (await ctx.catalog.operations.list({ tenantId: tenant.id }))[0]!;
  t.equal(op.status, 'failed');
  t.equal(op.step, 'database');
  t.ok(op.error);
  t.match(failing.stderr, /create failed after step database: injected failure/);
  const { json } = await runCliJson<any>(['tenants', 'repair', 'broken'], env);
  t.equal(json.tenants[0].status, 'active');
});

t.test('after all of it, repair --all finds no orphans', async (t) => {
  const { json } = await runCliJson<any>(['tenants', 'repair', '--all'], env);
  t.same(json.orphans.databases, []);
  t.same(json.orphans.users, []);
  const objects = await prefixedObjects(names.prefix);
  t.equal(objects.databases.length, STEPS.length + 1);
  t.equal(objects.users.length, STEPS.length + 1);
});
