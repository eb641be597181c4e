/**
 * A SIGKILL right after every step of `migrate`, `recreate`, `delete`, `backup` and
 * `restore` (of a live tenant, and of a deleted one), and after two steps of `create`
 * (test/provisioning-faults.test.ts kills it after each), each through the real `silo`
 * CLI (`SILO_FAULT_KILL_AFTER=<operation>:<step>`), then `silo tenants repair`: the tenant
 * ends active, fully migrated, its account holding exactly DML on its database, its admin
 * able to sign in; or, for a delete, deleted with no database, account or grant left.
 * MySQL itself is read, not only the catalog. The killed operation is closed as
 * interrupted by a succeeded repair, and no backup row stays `running`. Rows are compared
 * where a step decides them: a restore killed before the database was replaced keeps the
 * current rows, after it the backup's; a recreate killed before the drop keeps them. A
 * restore killed once its database was replaced is left to repair by `migrate`, which
 * must not reopen the tenant over an empty database.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { OperationKind, Tenant } from '../../src/catalog/index.js';
import { expectedTables, loadMigrations } from '../../src/migrations/runner.js';
import { backupTenant } from '../../src/provisioning/backup-service.js';
import type { RepairReport } from '../../src/provisioning/repair-service.js';
import { deleteTenant } from '../../src/provisioning/tenants-service.js';
import { login, makeTenant, PASSWORD, setupApp } from '../fixtures/app.js';
import { rootKnex, runCli, runCliJson } from '../fixtures/env.js';
import { mysqlState } from '../fixtures/mysql-state.js';
import { setupS3 } from '../fixtures/s3.js';
import { addData, rowsDigest } from '../fixtures/tenant-data.js';

const s3 = await setupS3(t);
// No API process watches these tenants: a restore need not wait for pools to close.
const { ctx, env, app } = await setupApp(t, { ...s3.env, SILO_TENANT_CHANGE_POLL_MS: '0' });
const root = rootKnex();
t.teardown(() => root.destroy());

// A tenant migration newer than the tenants created here: `migrate` has work to do, and
// restored backups are older than the code, so `restore` runs its migrations step too.
const extraDir = await mkdtemp(join(tmpdir(), 'silo-crash-'));
t.teardown(() => rm(extraDir, { recursive: true, force: true }));
await writeFile(
  join(extraDir, '9200-create-crash-probes.mjs'),
  `export const creates = ['crash_probes'];
   export async function up({ context: knex }) { await knex.schema.createTable('crash_probes', (t) => { t.bigIncrements('id').primary(); t.string('note', 50); }); }
   export async function down({ context: knex }) { await knex.schema.dropTable('crash_probes'); }`,
);
const newerEnv = { ...env, SILO_TENANT_MIGRATIONS_EXTRA_DIR: extraDir };

/** What a fully migrated tenant database holds: applied migration names and tables. */
interface Schema {
  migrations: string[];
  tables: string[];
}
async function schemaOf(dir?: string): Promise<Schema> {
  const all = await loadMigrations('tenant', dir);
  const migrations = all.map((m) => m.name);
  return { migrations, tables: [...expectedTables(all, migrations)].sort() };
}
const CURRENT = await schemaOf();
const NEWER = await schemaOf(extraDir);
const NEW_PASSWORD = 'a brand new admin password';
const DML = ['DELETE', 'INSERT', 'SELECT', 'UPDATE'];

const adminOf = (slug: string) => `admin@${slug}.test`;
const tenantRow = async (slug: string): Promise<Tenant> => (await ctx.catalog.tenants.findBySlug(slug))!;

/** Every privilege the tenant account holds anywhere (`scope:PRIVILEGE`), from information_schema. */
async function grantsOf(user: string): Promise<string[]> {
  const grantee = `'${user}'@'${ctx.config.tenantDbUserHost}'`;
  const global: Array<{ PRIVILEGE_TYPE: string }> = await root('information_schema.USER_PRIVILEGES').where({ GRANTEE: grantee }).select('PRIVILEGE_TYPE');
  const schema: Array<{ TABLE_SCHEMA: string; PRIVILEGE_TYPE: string }> = await root('information_schema.SCHEMA_PRIVILEGES')
    .where({ GRANTEE: grantee })
    .select('TABLE_SCHEMA', 'PRIVILEGE_TYPE');
  const table: Array<{ TABLE_SCHEMA: string; TABLE_NAME: string; PRIVILEGE_TYPE: string }> = await root('information_schema.TABLE_PRIVILEGES')
    .where({ GRANTEE: grantee })
    .select('TABLE_SCHEMA', 'TABLE_NAME', 'PRIVILEGE_TYPE');
  return [
    ...global.map((p) => `*.*:${p.PRIVILEGE_TYPE}`),
    ...schema.map((p) => `${p.TABLE_SCHEMA}.*:${p.PRIVILEGE_TYPE}`),
    ...table.map((p) => `${p.TABLE_SCHEMA}.${p.TABLE_NAME}:${p.PRIVILEGE_TYPE}`),
  ].sort();
}

/**
 * Runs `silo <args>`, killed right after `<kind>:<step>`; checks the journal shows the
 * operation still running at that step; runs `silo tenants repair`; checks the repair
 * succeeded, closed the killed operation as interrupted, and left no backup running.
 * @returns the repair's report and the killed operation's id
 */
async function killThenRepair(
  t: Test,
  slug: string,
  kind: OperationKind,
  step: string,
  args: string[],
  runEnv = env,
): Promise<{ report: RepairReport; killedId: number }> {
  const killed = await runCli(args, { ...runEnv, SILO_ENABLE_FAULTS: '1', SILO_FAULT_KILL_AFTER: `${kind}:${step}` });
  t.equal(killed.signal, 'SIGKILL', `silo ${args.join(' ')} was killed after ${kind}:${step}`, { stderr: killed.stderr });
  const tenant = await tenantRow(slug);
  const [op] = await ctx.catalog.operations.list({ tenantId: tenant.id, kind, limit: 1 });
  t.match(op, { status: 'running', step }, 'the killed operation is left running at the step it reached');

  const { result, json } = await runCliJson<{ tenants: RepairReport[] }>(['tenants', 'repair', slug], runEnv);
  t.equal(result.code, 0, 'repair exits 0', { stderr: result.stderr });
  const report = json.tenants[0]!;
  t.equal(report.outcome, 'repaired', report.error ?? 'repaired');
  t.match(await ctx.catalog.operations.get(op!.id), { status: 'failed', step, error: /interrupted/ }, 'the killed operation is closed as interrupted');
  const repair = (await ctx.catalog.operations.get(report.operationId!))!;
  t.match(repair, { kind: 'repair', status: 'succeeded' }, 'the repair operation succeeded');
  t.ok((repair.details?.interruptedOperations as number[] | undefined)?.includes(op!.id), 'and names the operation it closed');
  t.same(await ctx.catalog.backups.running(tenant.id), [], 'no backup row is left running');
  return { report, killedId: op!.id };
}

/**
 * The tenant serves: active at the latest schema in the catalog and in MySQL, every
 * table there, its account holding exactly DML on its database, its admin able to sign in.
 */
async function assertServing(t: Test, slug: string, schema: Schema, password: string): Promise<Tenant> {
  const tenant = await tenantRow(slug);
  t.match(
    tenant,
    { status: 'active', statusReason: null, deletedAt: null, schemaVersion: schema.migrations.at(-1) },
    'the catalog says active at the latest schema',
  );
  const state = await mysqlState(tenant.databaseName, tenant.dbUser);
  t.match(state, { database: true, user: true }, 'MySQL has the database and the account');
  t.same(state.tables, schema.tables, 'every table is there');
  t.same(await root(`${tenant.databaseName}.schema_migrations`).orderBy('name').pluck('name'), schema.migrations, 'every migration is applied');
  const pattern = tenant.databaseName.replace(/[_%]/g, '\\$&'); // `_` escaped: a wildcard in a database-level GRANT
  t.same(await grantsOf(tenant.dbUser), ['*.*:USAGE', ...DML.map((p) => `${pattern}.*:${p}`)], 'the account holds exactly DML on its own database');
  await t.resolves(login(app, slug, adminOf(slug), password), 'the admin signs in through the API');
  return tenant;
}

/** The tenant is deleted, and MySQL has neither its database nor its account nor any grant of it. */
async function assertGone(t: Test, slug: string): Promise<void> {
  const tenant = await tenantRow(slug);
  t.match(tenant, { status: 'deleted', deletedAt: Date }, 'the catalog says deleted');
  t.same(await mysqlState(tenant.databaseName, tenant.dbUser), { database: false, user: false, privileges: [], tables: [] }, 'no database, no account');
  t.same(await grantsOf(tenant.dbUser), [], 'no grant left');
}

/** Completed backups of a kind that an operation took. */
async function backupsOf(tenant: Tenant, kind: string, operationId: number) {
  return (await ctx.catalog.backups.list(tenant.id)).filter((b) => b.kind === kind && b.operationId === operationId && b.status === 'completed');
}

// Steps as README "Configuration" lists them.
const MIGRATE = ['maintenance', 'migrations', 'activate'];
const RECREATE = ['backup', 'provisioning', 'drop-database', 'drop-user', 'database', 'user', 'migrations', 'seed', 'activate'];
const DELETE = ['backup', 'catalog', 'database', 'user'];
const BACKUP = ['dump', 'recorded'];
const RESTORE = ['backup', 'maintenance', 'verify', 'replace', 'database', 'load', 'migrations', 'activate'];
/** Restore steps after which repair ends with the backup's rows (`replace`: the intent is recorded, the DROP may have run). */
const RESTORE_REPLACED = ['replace', 'database', 'load', 'migrations', 'activate'];

// Every kill point is its own tenant: they run side by side.
t.jobs = 4;

// One step before the admin is seeded and one after.
for (const step of ['migrations', 'seed']) {
  t.test(`create killed after ${step}: repair ends active, migrated, with an admin who signs in`, async (t) => {
    const slug = `cr-${step}`;
    const { report } = await killThenRepair(t, slug, 'create', step, ['tenants', 'create', slug, '--admin-email', adminOf(slug), '--admin-password', PASSWORD]);
    const seeded = step === 'seed';
    t.equal(Boolean(report.admin?.generatedPassword), !seeded, seeded ? 'the admin seeded before the crash is kept' : 'repair seeds the missing admin');
    await assertServing(t, slug, CURRENT, report.admin?.generatedPassword ?? PASSWORD);
  });
}

for (const step of MIGRATE) {
  t.test(`migrate killed after ${step}: repair applies the rest and reopens it, data untouched`, async (t) => {
    const slug = `mg-${step}`;
    const tenant = await makeTenant(ctx, slug);
    await addData(ctx, tenant, 'kept');
    const before = await rowsDigest(root, tenant);
    await killThenRepair(t, slug, 'migrate', step, ['tenants', 'migrate', slug], newerEnv);
    await assertServing(t, slug, NEWER, PASSWORD);
    t.equal(await rowsDigest(root, tenant), before, 'the rows are as before');
  });
}

for (const step of RECREATE) {
  t.test(`recreate killed after ${step}: repair ends active and migrated; the data is kept until the drop, fresh after`, async (t) => {
    const slug = `rc-${step}`;
    const tenant = await makeTenant(ctx, slug);
    await addData(ctx, tenant, 'old');
    const before = await rowsDigest(root, tenant);
    const { report, killedId } = await killThenRepair(t, slug, 'recreate', step, ['tenants', 'recreate', slug, '--yes', '--admin-password', NEW_PASSWORD]);
    t.equal((await backupsOf(tenant, 'pre-recreate', killedId)).length, 1, 'the pre-recreate backup is completed');
    const i = RECREATE.indexOf(step);
    if (i < RECREATE.indexOf('drop-database')) {
      t.notOk(report.admin, 'the old admin is still there');
      await assertServing(t, slug, CURRENT, PASSWORD);
      t.equal(await rowsDigest(root, tenant), before, 'nothing was dropped: the rows are as before');
    } else {
      const seeded = i >= RECREATE.indexOf('seed');
      t.equal(Boolean(report.admin?.generatedPassword), !seeded, seeded ? 'the new admin seeded before the crash is kept' : 'repair seeds the missing admin');
      await assertServing(t, slug, CURRENT, report.admin?.generatedPassword ?? NEW_PASSWORD);
      const companies = await root(`${tenant.databaseName}.companies`).count({ n: '*' }).first();
      t.equal(Number(companies?.n), 0, 'the database is a fresh one');
    }
  });
}

for (const step of DELETE) {
  t.test(
    `delete killed after ${step}: repair ${step === 'backup' ? 'reopens it (nothing was deleted) and delete again' : 'finishes it'}: no database, account or grant left`,
    async (t) => {
      const slug = `dl-${step}`;
      const tenant = await makeTenant(ctx, slug);
      await addData(ctx, tenant, 'doomed');
      const before = await rowsDigest(root, tenant);
      const { killedId } = await killThenRepair(t, slug, 'delete', step, ['tenants', 'delete', slug, '--yes']);
      t.equal((await backupsOf(tenant, 'pre-delete', killedId)).length, 1, 'the pre-delete backup is completed');
      if (step === 'backup') {
        await assertServing(t, slug, CURRENT, PASSWORD);
        t.equal(await rowsDigest(root, tenant), before, 'the rows are as before');
        const again = await runCli(['tenants', 'delete', slug, '--yes'], env);
        t.equal(again.code, 0, 'delete run again succeeds', { stderr: again.stderr });
      }
      await assertGone(t, slug);
    },
  );
}

for (const step of BACKUP) {
  t.test(`backup killed after ${step}: repair closes it; the backup it stored is complete and intact`, async (t) => {
    const slug = `bk-${step}`;
    const tenant = await makeTenant(ctx, slug);
    await addData(ctx, tenant, 'saved');
    const before = await rowsDigest(root, tenant);
    const { killedId } = await killThenRepair(t, slug, 'backup', step, ['tenants', 'backup', slug]);
    const [backup] = await backupsOf(tenant, 'manual', killedId);
    t.ok(backup, 'the manual backup is completed');
    const { body } = await ctx.storage!.download(backup!.storageKey);
    const stored = Buffer.concat(await body.toArray());
    t.equal(createHash('sha256').update(stored).digest('hex'), backup!.sha256, 'its object has the recorded SHA-256');
    await assertServing(t, slug, CURRENT, PASSWORD);
    t.equal(await rowsDigest(root, tenant), before, 'the rows are as before');
  });
}

for (const step of RESTORE) {
  const replaced = RESTORE_REPLACED.includes(step);
  t.test(
    `restore killed after ${step}: repair ends active, migrated, with ${replaced ? "the backup's rows" : 'the rows it had (not replaced yet)'}`,
    async (t) => {
      const slug = `rs-${step}`;
      const tenant = await makeTenant(ctx, slug);
      await addData(ctx, tenant, 'backed-up');
      const atBackup = await rowsDigest(root, tenant);
      const { backup } = await backupTenant(ctx, slug, 'test');
      await addData(ctx, tenant, 'later', 3);
      await ctx.admin.withTenantDatabase(tenant, (k) => k('contacts').where('id', '<', 3).update({ full_name: 'changed' }));
      const current = await rowsDigest(root, tenant);
      t.not(current, atBackup, 'the rows changed since the backup');
      // The code is newer than the backup: the restore's migrations step has work to do.
      const { report, killedId } = await killThenRepair(
        t,
        slug,
        'restore',
        step,
        ['tenants', 'restore', slug, '--backup', String(backup.id), '--yes'],
        newerEnv,
      );
      t.equal((await backupsOf(tenant, 'pre-restore', killedId)).length, 1, 'the pre-restore backup is completed');
      t.equal(
        report.actions.includes('resume-restore'),
        ['replace', 'database', 'load'].includes(step),
        'repair loads the backup again only when the killed restore had not finished loading it',
      );
      await assertServing(t, slug, NEWER, PASSWORD);
      t.equal(await rowsDigest(root, tenant), replaced ? atBackup : current, replaced ? "the rows are the backup's" : 'the rows are untouched');
    },
  );
}

t.test('a restore killed after it replaced the database is not reopened by migrate; repair loads the backup', async (t) => {
  const slug = 'rs-then-migrate';
  const tenant = await makeTenant(ctx, slug);
  await addData(ctx, tenant, 'backed-up');
  const atBackup = await rowsDigest(root, tenant);
  const { backup } = await backupTenant(ctx, slug, 'test');
  await addData(ctx, tenant, 'later', 3);
  const killed = await runCli(['tenants', 'restore', slug, '--backup', String(backup.id), '--yes'], {
    ...env,
    SILO_ENABLE_FAULTS: '1',
    SILO_FAULT_KILL_AFTER: 'restore:database',
  });
  t.equal(killed.signal, 'SIGKILL', 'killed with an empty database in place', { stderr: killed.stderr });
  const { result, json } = await runCliJson<{ tenants: Array<{ slug: string; outcome: string; error?: string }> }>(['tenants', 'migrate', slug], env);
  t.equal(result.code, 0, 'migrate exits 0', { stderr: result.stderr });
  t.match(json.tenants[0], { outcome: 'skipped', error: /repair/ }, 'migrate leaves it to repair');
  t.match(await tenantRow(slug), { status: 'maintenance' }, 'the tenant is not reopened over an empty database');
  const repaired = await runCliJson<{ tenants: RepairReport[] }>(['tenants', 'repair', slug], env);
  t.match(repaired.json.tenants[0], { outcome: 'repaired', actions: ['close-interrupted-operations', 'resume-restore'] }, 'repair loads the backup again');
  await assertServing(t, slug, CURRENT, PASSWORD);
  t.equal(await rowsDigest(root, tenant), atBackup, "the rows are the backup's");
});

for (const step of RESTORE) {
  t.test(
    `restore of a deleted tenant killed after ${step}: repair ${step === 'backup' ? 'leaves it deleted, and restore again brings it back' : 'brings it back active with its rows'}`,
    async (t) => {
      const slug = `rd-${step}`;
      const tenant = await makeTenant(ctx, slug);
      await addData(ctx, tenant, 'deleted');
      const atDelete = await rowsDigest(root, tenant);
      await deleteTenant(ctx, slug, 'test');
      await killThenRepair(t, slug, 'restore', step, ['tenants', 'restore', slug, '--latest', '--yes']);
      if (step === 'backup') {
        await assertGone(t, slug);
        const again = await runCli(['tenants', 'restore', slug, '--latest', '--yes'], env);
        t.equal(again.code, 0, 'restore run again succeeds', { stderr: again.stderr });
      }
      await assertServing(t, slug, CURRENT, PASSWORD);
      t.equal(await rowsDigest(root, tenant), atDelete, 'the rows are those of the pre-delete backup');
    },
  );
}
