/**
 * A crash inside a migration converges. MySQL DDL commits statement by statement (MySQL
 * 8.4 §15.3.3 "Statements That Cause an Implicit Commit"), so a kill can stop a
 * migration's `up` after any of its statements, before the runner records it:
 * - every migration of both sets (catalog and tenant): `down` after any prefix of the
 *   statements of `up` (replayed as `up` sent them) leaves the schema exactly as before
 *   `up`, and `up` again makes the same schema;
 * - every tenant migration, killed through the real `silo tenants migrate` right after each
 *   statement of its `up` (`SILO_FAULT_KILL_AFTER_STATEMENT=<migration>:<n>`, 0 = before
 *   the first): `silo tenants repair` exits 0 and the tenant ends active at the latest
 *   schema, every table's `SHOW CREATE TABLE` equal to a cleanly migrated tenant's, the
 *   default pipeline stages there once, every migration recorded as applied;
 * - the same for `silo tenants create` killed inside its schema script, after the stages'
 *   table and before their rows.
 */
import t from 'tap';
import { parseMysqlUrl } from '../src/config.js';
import { createMysqlKnex } from '../src/lib/knex.js';
import { createMigrator, loadMigrations, MIGRATIONS_TABLE, type LoadedMigration, type MigrationSet } from '../src/migrations/runner.js';
import { rollbackTenant } from '../src/provisioning/migrate-service.js';
import type { RepairReport } from '../src/provisioning/repair-service.js';
import { migrationSetKey, SCRIPT_FAULT_NAME } from '../src/provisioning/schema-script.js';
import { createTenant } from '../src/provisioning/tenants-service.js';
import { MYSQL_URL, rootKnex, runCli, runCliJson, setupSilo } from './fixtures/env.js';
import { recordStatements, schemaSnapshot } from './fixtures/schema-snapshot.js';

const { ctx, env, names } = await setupSilo(t);
const root = rootKnex();
t.teardown(() => root.destroy());

const PASSWORD = 'correct horse battery staple';
const TENANT = await loadMigrations('tenant');
const LATEST = TENANT.at(-1)!.name;

/** A fresh database on the test server (dropped with the test's prefix) and a Knex on it. */
async function scratch(name: string) {
  const db = `${names.prefix}${name}`;
  await root.raw('DROP DATABASE IF EXISTS ??', [db]);
  await root.raw('CREATE DATABASE ?? CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci', [db]);
  const knex = createMysqlKnex(parseMysqlUrl(`${MYSQL_URL}/${db}`), { min: 0, max: 1 });
  return { db, knex };
}

/** Statements each tenant migration's `up` sends, counted on a scratch database. */
async function statementCounts(migrations: LoadedMigration[]): Promise<Map<string, number>> {
  const { db, knex } = await scratch('count');
  try {
    const counts = new Map<string, number>();
    for (const m of migrations) counts.set(m.name, (await recordStatements(knex, () => m.module.up({ name: m.name, context: knex }))).length);
    return counts;
  } finally {
    await knex.destroy();
    await root.raw('DROP DATABASE IF EXISTS ??', [db]);
  }
}
const COUNTS = await statementCounts(TENANT);

for (const set of ['main', 'tenant'] as MigrationSet[]) {
  t.test(`${set} migrations: down after any prefix of up leaves the schema as before up`, async (t) => {
    const migrations = await loadMigrations(set);
    let { db, knex } = await scratch(`prefix_${set}`);
    t.teardown(() => knex.destroy());
    /** Back to the schema before migration `i` after a failed down: a new database with the earlier ones applied. */
    const resetTo = async (i: number) => {
      await knex.destroy();
      ({ db, knex } = await scratch(`prefix_${set}`));
      for (const m of migrations.slice(0, i)) await m.module.up({ name: m.name, context: knex });
    };
    for (const [i, m] of migrations.entries()) {
      const params = () => ({ name: m.name, context: knex });
      const before = await schemaSnapshot(root, db);
      const statements = await recordStatements(knex, () => m.module.up(params()));
      const after = await schemaSnapshot(root, db);
      for (let n = statements.length; n >= 0; n--) {
        const what = `${m.name}: down after ${n} of ${statements.length} statements of up`;
        try {
          for (const s of n < statements.length ? statements.slice(0, n) : []) await knex.raw(s.sql, s.bindings);
          await m.module.down(params());
          t.same(await schemaSnapshot(root, db), before, what);
        } catch (err) {
          t.fail(`${what} throws: ${(err as Error).message}`);
          await resetTo(i);
        }
      }
      await m.module.up(params());
      t.same(await schemaSnapshot(root, db), after, `${m.name}: up again makes the same schema`);
    }
  });
}

t.test('a migrations table made before `state` existed gets the column, its rows read applied, and the rest applies', async (t) => {
  const { db, knex } = await scratch('legacy');
  t.teardown(() => knex.destroy());
  await knex.raw(
    `CREATE TABLE ${MIGRATIONS_TABLE} (name VARCHAR(255) NOT NULL PRIMARY KEY, applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  );
  const old = TENANT.slice(0, 3);
  for (const m of old) await m.module.up({ name: m.name, context: knex });
  await knex(MIGRATIONS_TABLE).insert(old.map((m) => ({ name: m.name })));
  const migrator = await createMigrator(knex, TENANT);
  t.same(
    (await migrator.executed()).map((m) => m.name),
    old.map((m) => m.name),
    'the migrations it lists are applied',
  );
  t.same(
    (await migrator.up()).map((m) => m.name),
    TENANT.slice(3).map((m) => m.name),
    'the others are applied',
  );
  const rows: Array<Record<string, unknown>> = await root(`${db}.${MIGRATIONS_TABLE}`).orderBy('name');
  t.same(
    rows.map(({ name, state }) => ({ name, state })),
    TENANT.map((m) => ({ name: m.name, state: 'applied' })),
    'every row is applied',
  );
});

/** What must be equal to a clean tenant's: tables (auto-increment counters aside), stages, the migrations table's rows. */
async function tenantSchema(database: string) {
  const rows: Array<Record<string, unknown>> = await root(`${database}.${MIGRATIONS_TABLE}`).orderBy('name');
  return {
    tables: await schemaSnapshot(root, database, { autoIncrement: false }),
    stages: await root(`${database}.pipeline_stages`)
      .orderBy('id')
      .select('id', 'name', 'position', 'probability')
      .catch(() => 'no pipeline_stages table'),
    migrations: rows.map(({ name, state }) => ({ name, state })),
  };
}

const clean = (await createTenant(ctx, { slug: 'mc-clean', adminEmail: 'admin@mc-clean.test', adminPassword: PASSWORD }, 'test')).tenant;
const CLEAN = await tenantSchema(clean.databaseName);

t.test('the clean tenant has every migration recorded as applied', (t) => {
  t.same(
    CLEAN.migrations,
    TENANT.map((m) => ({ name: m.name, state: 'applied' })),
  );
  t.end();
});

// Each migration has its own tenant: they run side by side, kill points of one in turn.
t.jobs = 2;

for (const [i, m] of TENANT.entries()) {
  const count = COUNTS.get(m.name)!;
  t.test(`tenant migration ${m.name}: migrate killed after each of its ${count} statements (and before the first), then repair, converges`, async (t) => {
    const slug = `mc-${m.name.slice(0, 4)}`;
    const { databaseName } = (await createTenant(ctx, { slug, adminEmail: `admin@${slug}.test`, adminPassword: PASSWORD }, 'test')).tenant;
    for (let n = 0; n <= count; n++) {
      const at = `${m.name}:${n}`;
      await rollbackTenant(ctx, slug, 'test', TENANT.length - i);
      const killed = await runCli(['tenants', 'migrate', slug], { ...env, SILO_ENABLE_FAULTS: '1', SILO_FAULT_KILL_AFTER_STATEMENT: at });
      t.equal(killed.signal, 'SIGKILL', `migrate was killed after ${at}`, { stderr: killed.stderr });
      const row: unknown = await root(`${databaseName}.${MIGRATIONS_TABLE}`).where({ name: m.name }).first('state');
      t.same(row, { state: 'started' }, `${at}: the migrations table says it started and did not finish`);
      const { result, json } = await runCliJson<{ tenants: RepairReport[] }>(['tenants', 'repair', slug], env);
      const report = json.tenants[0];
      const tenant = (await ctx.catalog.tenants.findBySlug(slug))!;
      const ok =
        t.equal(result.code, 0, `${at}: repair exits 0`, { error: report?.error }) &&
        t.match(tenant, { status: 'active', statusReason: null, schemaVersion: LATEST }, `${at}: the tenant is active at the latest schema`);
      t.same(await tenantSchema(tenant.databaseName), CLEAN, `${at}: the schema is that of a clean run`);
      if (!ok) break; // a tenant left in maintenance cannot be rolled back for the next kill point
    }
  });
}

t.test('create killed inside the schema script, between the CREATE TABLE and the INSERT of the stages, then repair, converges', async (t) => {
  const slug = 'mc-create';
  // A create makes the schema from one script (src/provisioning/schema-script.ts), whose statements the catalog holds.
  const row = await ctx.catalog
    .knex<{ migrations_sha256: string; script: string }>('tenant_schema_scripts')
    .where({ migrations_sha256: await migrationSetKey(TENANT) })
    .first();
  const statements = (JSON.parse(row!.script) as { statements: string[] }).statements;
  const afterStages = statements.findIndex((s) => s.startsWith('CREATE TABLE `pipeline_stages`')) + 1;
  t.ok(
    afterStages > 0 && afterStages < statements.findIndex((s) => s.includes('insert into `pipeline_stages`')),
    'the stages are inserted after their table is made',
  );
  const killed = await runCli(['tenants', 'create', slug, '--admin-email', `admin@${slug}.test`, '--admin-password', PASSWORD], {
    ...env,
    SILO_ENABLE_FAULTS: '1',
    SILO_FAULT_KILL_AFTER_STATEMENT: `${SCRIPT_FAULT_NAME}:${afterStages}`,
  });
  t.equal(killed.signal, 'SIGKILL', 'create was killed after the CREATE TABLE of the stages', { stderr: killed.stderr });
  const { result, json } = await runCliJson<{ tenants: RepairReport[] }>(['tenants', 'repair', slug], env);
  t.equal(result.code, 0, 'repair exits 0', { error: json.tenants[0]?.error });
  const tenant = (await ctx.catalog.tenants.findBySlug(slug))!;
  t.match(tenant, { status: 'active', schemaVersion: LATEST }, 'the tenant is active at the latest schema');
  t.same(await tenantSchema(tenant.databaseName), CLEAN, 'the schema and the stages are those of a clean run');
});

t.test('migrate killed between the CREATE TABLE and the INSERT of the stages, then migrate again (not repair), converges', async (t) => {
  const slug = 'mc-again';
  await createTenant(ctx, { slug, adminEmail: `admin@${slug}.test`, adminPassword: PASSWORD }, 'test');
  const i = TENANT.findIndex((m) => m.name.includes('pipeline-stages'));
  await rollbackTenant(ctx, slug, 'test', TENANT.length - i);
  const killed = await runCli(['tenants', 'migrate', slug], { ...env, SILO_ENABLE_FAULTS: '1', SILO_FAULT_KILL_AFTER_STATEMENT: `${TENANT[i]!.name}:1` });
  t.equal(killed.signal, 'SIGKILL', 'migrate was killed after the CREATE TABLE', { stderr: killed.stderr });
  const { result, json } = await runCliJson<{ tenants: Array<{ outcome: string; error?: string }> }>(['tenants', 'migrate', slug], env);
  t.equal(result.code, 0, 'migrate exits 0', { error: json.tenants[0]?.error });
  t.match(json.tenants[0], { outcome: 'migrated' }, 'and migrated');
  const tenant = (await ctx.catalog.tenants.findBySlug(slug))!;
  t.match(tenant, { status: 'active', statusReason: null, schemaVersion: LATEST }, 'the tenant is active at the latest schema');
  t.same(await tenantSchema(tenant.databaseName), CLEAN, 'the schema and the stages are those of a clean run');
});
