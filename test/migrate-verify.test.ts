/**
 * `silo tenants migrate --all` decides "up to date" from the schema version the catalog
 * recorded, without connecting to the tenant; `--verify` reads each tenant's own
 * migrations table: a database rolled back behind the catalog's back (the catalog still
 * says newest) is left alone by the first and migrated by the second, and a verified
 * up-to-date tenant keeps its catalog row unwritten (`updated_at` unchanged).
 */
import t from 'tap';
import { parseMysqlUrl } from '../src/config.js';
import { createMysqlKnex } from '../src/lib/knex.js';
import { createMigrator, loadMigrations } from '../src/migrations/runner.js';
import { createTenant } from '../src/provisioning/tenants-service.js';
import { MYSQL_URL, runCliJson, setupSilo } from './fixtures/env.js';

const { ctx, env } = await setupSilo(t);
const TENANT = await loadMigrations('tenant');
const LATEST = TENANT.at(-1)!.name;
const PASSWORD = 'correct horse battery staple';

interface MigrateJson {
  tenants: Array<{ slug: string; outcome: string; applied: string[] }>;
}

t.test('--verify finds and migrates a database behind the catalog; without it, the catalog decides', async (t) => {
  const behind = (await createTenant(ctx, { slug: 'mv-behind', adminPassword: PASSWORD }, 'test')).tenant;
  const fine = (await createTenant(ctx, { slug: 'mv-fine', adminPassword: PASSWORD }, 'test')).tenant;
  const knex = createMysqlKnex(parseMysqlUrl(`${MYSQL_URL}/${behind.databaseName}`), { min: 0, max: 1 });
  try {
    await (await createMigrator(knex, TENANT)).down({ step: 1 });
  } finally {
    await knex.destroy();
  }
  const before = (await ctx.catalog.tenants.findBySlug('mv-fine'))!;

  const plain = await runCliJson<MigrateJson>(['tenants', 'migrate', '--all', '--json'], env);
  t.equal(plain.result.code, 0, 'migrate --all exits 0', { stderr: plain.result.stderr });
  t.match(
    plain.json.tenants.find((r) => r.slug === 'mv-behind'),
    { outcome: 'up-to-date' },
    'without --verify the catalog’s version decides',
  );

  const verified = await runCliJson<MigrateJson>(['tenants', 'migrate', '--all', '--verify', '--json'], env);
  t.equal(verified.result.code, 0, 'migrate --all --verify exits 0', { stderr: verified.result.stderr });
  t.match(
    verified.json.tenants.find((r) => r.slug === 'mv-behind'),
    { outcome: 'migrated', applied: [LATEST] },
    'the database behind is migrated',
  );
  t.match(
    verified.json.tenants.find((r) => r.slug === 'mv-fine'),
    { outcome: 'up-to-date' },
    'the other is up to date',
  );
  const after = (await ctx.catalog.tenants.findBySlug('mv-fine'))!;
  t.same(after.updatedAt, before.updatedAt, 'the up-to-date tenant’s catalog row is not written');
  t.equal(fine.schemaVersion, LATEST);
});
