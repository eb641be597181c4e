/**
 * Lifecycle decisions are taken under the tenant's lock on freshly read state (issue 13
 * item 4). Each race is made to happen, not hoped for: a second process (its own context,
 * so its own lock sessions) acts at the exact moment the first one asks for the tenant
 * lock, or between orphan pruning's two listings.
 * - create racing `repair --all`: repair never sees a half-made tenant, so it neither
 *   closes the create as interrupted nor seeds its own admin;
 * - recreate racing delete: the end state matches the catalog (deleted with no database
 *   nor account), the recreate does not bring the deleted tenant back;
 * - `--prune-orphans` racing create: the database and account a create just made are not
 *   dropped; a real orphan still is.
 */
import { pino } from 'pino';
import t from 'tap';
import { createContext } from '../src/context.js';
import { repairTenants, type RepairReport } from '../src/provisioning/repair-service.js';
import { createTenant, deleteTenant, recreateTenant } from '../src/provisioning/tenants-service.js';
import { login, makeTenant, PASSWORD, setupApp } from './fixtures/app.js';
import { rootKnex } from './fixtures/env.js';
import { mysqlState } from './fixtures/mysql-state.js';

const { ctx, config, app } = await setupApp(t, { SILO_TENANT_CHANGE_POLL_MS: '0' });
const root = rootKnex();
t.teardown(() => root.destroy());
// The other process.
const other = createContext(config, pino({ level: 'silent' }));
t.teardown(() => other.close());

/** Runs `race` (once) when this process asks for the lock of tenant `slug`, then takes the lock. */
function raceAtLock(slug: string, race: () => Promise<unknown>): () => void {
  const locks = ctx.locks;
  const withLock = locks.withLock.bind(locks);
  let fired = false;
  locks.withLock = async (tenant, fn, waitS) => {
    if (tenant.slug === slug && !fired) {
      fired = true;
      await race();
    }
    return withLock(tenant, fn, waitS);
  };
  return () => {
    locks.withLock = withLock;
  };
}

t.test('create racing repair --all: repair neither closes the create as interrupted nor seeds an admin', async (t) => {
  const slug = 'race-create';
  let report: RepairReport | undefined;
  const restore = raceAtLock(slug, async () => {
    report = (await repairTenants(other, 'racer', { all: true })).tenants.find((r) => r.slug === slug);
  });
  const created = await createTenant(ctx, { slug, adminEmail: `admin@${slug}.test`, adminPassword: PASSWORD }, 'test').finally(restore);

  t.notOk(report && report.outcome !== 'failed' && report.actions.length, 'repair took no action on the tenant being created', { report });
  t.match(await ctx.catalog.operations.get(created.operationId), { status: 'succeeded', error: null }, 'the create succeeded, not closed as interrupted');
  t.same(await ctx.catalog.operations.list({ tenantId: created.tenant.id, kind: 'repair' }), [], 'no repair operation ran on it');
  t.match(created.admin, { adminCreated: true }, 'the create seeded its admin');
  const admins = await root(`${created.tenant.databaseName}.users`).where({ role: 'admin' }).select('email');
  t.same(admins, [{ email: `admin@${slug}.test` }], 'one admin: the one asked for');
  await t.resolves(login(app, slug), 'who signs in with the password given');
});

t.test('recreate racing delete: the end state matches the catalog (deleted, no database, no account)', async (t) => {
  const slug = 'race-rd';
  const tenant = await makeTenant(ctx, slug);
  const restore = raceAtLock(slug, () => deleteTenant(other, slug, 'racer', { backup: false }));
  const recreate = await recreateTenant(ctx, slug, 'test', { backup: false })
    .then(() => undefined)
    .catch((e: unknown) => e as { code?: string })
    .finally(restore);

  const row = (await ctx.catalog.tenants.findById(tenant.id))!;
  const state = await mysqlState(tenant.databaseName, tenant.dbUser);
  t.match(row, { status: 'deleted', deletedAt: Date }, 'the delete, which ran first, stands');
  t.match(state, { database: false, user: false }, 'no database and no account, as the catalog says');
  t.equal(recreate?.code, 'TENANT_NOT_FOUND', 'the recreate, reading the tenant again under the lock, finds it deleted');
});

t.test('prune-orphans racing create: the new tenant keeps its database and account; a real orphan is dropped', async (t) => {
  const slug = 'race-prune';
  const orphan = `${config.tenantDbPrefix}orphan_db`;
  await root.raw('CREATE DATABASE ??', [orphan]);
  const [server] = await other.catalog.servers.list();
  const { sql } = await other.admin.server(server!.id);
  const listDatabases = sql.listDatabases.bind(sql);
  let fired = false;
  // Between prune's list of tenants and its list of databases, another process creates a tenant.
  sql.listDatabases = async (prefix) => {
    if (!fired) {
      fired = true;
      await makeTenant(ctx, slug);
    }
    return listDatabases(prefix);
  };
  const { orphans } = await repairTenants(other, 'racer', { all: true, pruneOrphans: true }).finally(() => {
    sql.listDatabases = listDatabases;
  });
  const tenant = (await ctx.catalog.tenants.findBySlug(slug))!;
  t.ok(fired, 'the create ran inside the prune');
  t.notOk(orphans?.databases.includes(tenant.databaseName), 'its database is not reported as an orphan', { orphans });
  t.match(await mysqlState(tenant.databaseName, tenant.dbUser), { database: true, user: true }, 'its database and account are there');
  await t.resolves(login(app, slug), 'and it serves');
  t.ok(orphans?.databases.includes(orphan), 'the real orphan is reported');
  t.notOk((await root('information_schema.SCHEMATA').where('SCHEMA_NAME', orphan)).length, 'and dropped');
});
