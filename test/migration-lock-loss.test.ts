/**
 * The migration lock lost mid-run (issue 13 item 5): the session holding a tenant
 * database's `GET_LOCK(silo:migrate:...)` is killed while a migration runs (found by
 * `IS_USED_LOCK`, its CONNECTION_ID). The run fails before the next migration instead of
 * going on unlocked on a reconnected pool.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { loadConfig } from '../src/config.js';
import { createContext } from '../src/context.js';
import { repairTenant } from '../src/provisioning/repair-service.js';
import { migrationLockName } from '../src/provisioning/tenant-schema.js';
import { makeTenant, setupApp } from './fixtures/app.js';
import { rootKnex } from './fixtures/env.js';

const { ctx, env } = await setupApp(t, { SILO_TENANT_CHANGE_POLL_MS: '0' });
const root = rootKnex();
t.teardown(() => root.destroy());

const extraDir = await mkdtemp(join(tmpdir(), 'silo-miglock-'));
t.teardown(() => rm(extraDir, { recursive: true, force: true }));
// The first migration calls the test's hook (this process runs it); the second must not run.
await writeFile(
  join(extraDir, '9300-create-lock-probe-a.mjs'),
  `export const creates = ['lock_probe_a'];
   export async function up({ context: knex }) { await knex.schema.createTable('lock_probe_a', (t) => { t.increments('id'); }); await globalThis.__siloMigrationHook?.(); }
   export async function down({ context: knex }) { await knex.schema.dropTableIfExists('lock_probe_a'); }`,
);
await writeFile(
  join(extraDir, '9301-create-lock-probe-b.mjs'),
  `export const creates = ['lock_probe_b'];
   export async function up({ context: knex }) { await knex.schema.createTable('lock_probe_b', (t) => { t.increments('id'); }); }
   export async function down({ context: knex }) { await knex.schema.dropTableIfExists('lock_probe_b'); }`,
);
const newer = createContext(loadConfig({ ...env, SILO_TENANT_MIGRATIONS_EXTRA_DIR: extraDir }), pino({ level: 'silent' }));
t.teardown(() => newer.close());

t.test('the migration lock session killed mid-run: the run fails before the next migration', async (t) => {
  const tenant = await makeTenant(ctx, 'miglock');
  const name = migrationLockName(tenant);
  const hooks = globalThis as { __siloMigrationHook?: () => Promise<void> };
  hooks.__siloMigrationHook = async () => {
    const [rows] = (await root.raw('SELECT IS_USED_LOCK(?) AS id', [name])) as [Array<{ id: number | null }>];
    t.ok(rows[0]?.id, 'the runner holds the migration lock');
    await root.raw('KILL ?', [rows[0]!.id]);
  };
  const report = await repairTenant(newer, 'miglock', 'test').finally(() => delete hooks.__siloMigrationHook);
  t.match(report, { outcome: 'failed', error: /lock lost/ }, 'the run fails: lock lost');
  const tables = (await root('information_schema.TABLES').where('TABLE_SCHEMA', tenant.databaseName).pluck('TABLE_NAME')) as string[];
  t.notOk(tables.includes('lock_probe_b'), 'the next migration did not run');
});
