/**
 * The schema script (src/provisioning/schema-script.ts) makes what the migrations make:
 * - a tenant created through the service gets its schema from the script (the catalog
 *   holds the script of this migration set), and every table's `SHOW CREATE TABLE`
 *   (auto-increment counters aside), the rows the migrations wrote (the default stages)
 *   and the migrations table's rows (every migration `applied`) equal those of a database
 *   the migrator itself migrated;
 * - a set with an extra migration gets a script of its own, which makes what that set's
 *   migrations make;
 * - `silo tenants create` killed inside the script (after each of a few of its statements,
 *   `SILO_FAULT_KILL_AFTER_STATEMENT=0000-schema-script:<n>`), then `silo tenants repair`,
 *   converges: the tenant is active at the latest schema, equal to the migrator's.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadConfig, parseMysqlUrl } from '../src/config.js';
import { createContext } from '../src/context.js';
import { seedTenant } from '../src/crm/seed.js';
import { createMysqlKnex } from '../src/lib/knex.js';
import { createMigrator, loadMigrations, MIGRATIONS_TABLE } from '../src/migrations/runner.js';
import type { RepairReport } from '../src/provisioning/repair-service.js';
import { migrationSetKey } from '../src/provisioning/schema-script.js';
import { createTenant } from '../src/provisioning/tenants-service.js';
import { MYSQL_URL, rootKnex, runCli, runCliJson, setupSilo } from './fixtures/env.js';
import { schemaSnapshot } from './fixtures/schema-snapshot.js';
import pino from 'pino';

const { ctx, env, names } = await setupSilo(t);
const root = rootKnex();
t.teardown(() => root.destroy());
const PASSWORD = 'correct horse battery staple';

/** What must be equal: tables (auto-increment counters aside), stages, the migrations table's rows. */
async function tenantSchema(database: string) {
  const rows: Array<Record<string, unknown>> = await root(`${database}.${MIGRATIONS_TABLE}`).orderBy('name');
  return {
    tables: await schemaSnapshot(root, database, { autoIncrement: false }),
    stages: await root(`${database}.pipeline_stages`).orderBy('id').select('id', 'name', 'position', 'probability', 'version'),
    migrations: rows.map(({ name, state }) => ({ name, state })),
  };
}

/** A database on the test server migrated by the migrator alone (no script), for `extraDir`'s set, then seeded. */
async function migratedByMigrator(name: string, extraDir?: string) {
  const db = `${names.prefix}${name}`;
  await root.raw('DROP DATABASE IF EXISTS ??', [db]);
  await root.raw('CREATE DATABASE ?? CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci', [db]);
  const knex = createMysqlKnex(parseMysqlUrl(`${MYSQL_URL}/${db}`), { min: 0, max: 1 });
  try {
    await (await createMigrator(knex, await loadMigrations('tenant', extraDir))).up();
    await seedTenant(knex, { email: 'admin@by-migrator.test', password: PASSWORD }); // the first admin, as create seeds it
  } finally {
    await knex.destroy();
  }
  return tenantSchema(db);
}

const BY_MIGRATOR = await migratedByMigrator('by_migrator');
const TENANT = await loadMigrations('tenant');
const LATEST = TENANT.at(-1)!.name;

t.test('a created tenant gets its schema from the script, equal to what the migrations make', async (t) => {
  const { tenant } = await createTenant(ctx, { slug: 'ss-one', adminPassword: PASSWORD }, 'test');
  const stored = await ctx.catalog
    .knex('tenant_schema_scripts')
    .where({ database_server_id: tenant.databaseServerId })
    .select('migrations_sha256', 'latest_migration');
  t.same(stored, [{ migrations_sha256: await migrationSetKey(TENANT), latest_migration: LATEST }], 'the catalog holds the script of this migration set');
  t.equal(tenant.schemaVersion, LATEST, 'the schema version is the newest migration');
  t.same(await tenantSchema(tenant.databaseName), BY_MIGRATOR, 'tables, stages and migration rows equal the migrator’s');
  const again = (await createTenant(ctx, { slug: 'ss-two', adminPassword: PASSWORD }, 'test')).tenant;
  t.same(await tenantSchema(again.databaseName), BY_MIGRATOR, 'a second tenant (script from the cache) too');
});

t.test('an extra migration makes a script of its own, equal to what that set’s migrations make', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'silo-script-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
  await writeFile(
    join(dir, '9001-add-contacts-note.js'),
    `export async function up({ context: knex }) {
  await knex.schema.alterTable('contacts', (t) => { t.string('script_note', 50).nullable(); t.index(['script_note'], 'contacts_script_note_idx'); });
  await knex('pipeline_stages').where({ name: 'Won' }).update({ probability: 99 });
}
export async function down({ context: knex }) {
  if (await knex.schema.hasColumn('contacts', 'script_note')) await knex.schema.alterTable('contacts', (t) => { t.dropIndex(['script_note'], 'contacts_script_note_idx'); t.dropColumn('script_note'); });
}
`,
  );
  const extra = createContext(loadConfig({ ...env, SILO_TENANT_MIGRATIONS_EXTRA_DIR: dir }), pino({ level: 'silent' }));
  t.teardown(() => extra.close());
  const { tenant } = await createTenant(extra, { slug: 'ss-extra', adminPassword: PASSWORD }, 'test');
  t.equal(tenant.schemaVersion, '9001-add-contacts-note', 'the schema version is the extra migration');
  const rows = await ctx.catalog.knex('tenant_schema_scripts').pluck('latest_migration');
  t.ok(rows.includes('9001-add-contacts-note'), 'the catalog holds a script for the set with the extra migration');
  const expected = await migratedByMigrator('by_migrator_extra', dir);
  t.equal(expected.stages.find((s: { name: string }) => s.name === 'Won')?.probability, 99, 'the extra migration’s update is in the migrator’s result');
  t.same(await tenantSchema(tenant.databaseName), expected, 'the script’s result equals the migrator’s for that set');
});

t.test('create killed inside the script, then repair, converges to the migrator’s schema', async (t) => {
  // Statements: 2 settings, the migrations table, its started rows, the tables, the stages,
  // the update to applied, foreign key checks back on: before and after the started rows,
  // between tables, and everything but the update.
  const key = await migrationSetKey(TENANT);
  const row = await ctx.catalog.knex<{ migrations_sha256: string; script: string }>('tenant_schema_scripts').where({ migrations_sha256: key }).first();
  const total = (JSON.parse(row!.script) as { statements: string[] }).statements.length;
  for (const n of [3, 4, 6, total - 2]) {
    const slug = `ss-kill-${n}`;
    const killed = await runCli(['tenants', 'create', slug, '--admin-password', PASSWORD], {
      ...env,
      SILO_ENABLE_FAULTS: '1',
      SILO_FAULT_KILL_AFTER_STATEMENT: `0000-schema-script:${n}`,
    });
    t.equal(killed.signal, 'SIGKILL', `create was killed after statement ${n} of the script`, { stderr: killed.stderr });
    const { result, json } = await runCliJson<{ tenants: RepairReport[] }>(['tenants', 'repair', slug], env);
    t.equal(result.code, 0, `${n}: repair exits 0`, { error: json.tenants[0]?.error });
    const tenant = (await ctx.catalog.tenants.findBySlug(slug))!;
    t.match(tenant, { status: 'active', statusReason: null, schemaVersion: LATEST }, `${n}: the tenant is active at the latest schema`);
    t.same(await tenantSchema(tenant.databaseName), BY_MIGRATOR, `${n}: the schema equals the migrator’s`);
  }
});
