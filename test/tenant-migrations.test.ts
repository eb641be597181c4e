/**
 * Fleet migrations: two `silo tenants migrate --all` at once apply each migration once
 * per tenant (per-tenant GET_LOCK), and a failing tenant does not stop the others.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createTenant } from '../src/provisioning/tenants-service.js';
import { runCliJson, setupSilo } from './fixtures/env.js';

const { env, ctx } = await setupSilo(t);
const slugs = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot'];
for (const slug of slugs) await createTenant(ctx, { slug, adminPassword: 'a long enough password' }, 'test');

const extra = await mkdtemp(join(tmpdir(), 'silo-mig-'));
t.teardown(() => rm(extra, { recursive: true, force: true }));
// A migration that counts how often it ran, and is slow enough for the two runners to overlap.
await writeFile(
  join(extra, '9001-add-probe.js'),
  `export async function up({ context: knex }) {
     await knex.raw('CREATE TABLE IF NOT EXISTS probe_runs (id INT AUTO_INCREMENT PRIMARY KEY)');
     await knex.raw('DO SLEEP(0.2)');
     await knex('probe_runs').insert({});
   }
   export async function down({ context: knex }) { await knex.schema.dropTableIfExists('probe_runs'); }
   export const creates = ['probe_runs'];`,
);
await writeFile(
  join(extra, '9002-fail-on-delta.js'),
  `export async function up({ context: knex }) {
     // Database names are opaque (issue 15): delta is told by its first admin's default email.
     const [[row]] = await knex.raw("SELECT COUNT(*) AS n FROM users WHERE email = 'admin@delta.localhost'");
     if (Number(row.n) > 0) throw new Error('boom on delta');
   }
   export async function down() {}`,
);
const extraEnv = { ...env, SILO_TENANT_MIGRATIONS_EXTRA_DIR: extra };

t.test('two concurrent migrate --all runs apply each migration once per tenant', async (t) => {
  const [a, b] = await Promise.all([
    runCliJson<any>(['tenants', 'migrate', '--all', '--concurrency', '3'], extraEnv),
    runCliJson<any>(['tenants', 'migrate', '--all', '--concurrency', '3'], extraEnv),
  ]);
  t.equal(a.result.code, 1, 'delta failed in the first run');
  t.equal(b.result.code, 1, 'and in the second');
  for (const slug of slugs) {
    const tenant = (await ctx.catalog.tenants.findBySlug(slug))!;
    const runs = await ctx.admin.withTenantDatabase(tenant, (k) => k('probe_runs').count({ n: '*' }).first());
    t.equal(Number(runs?.n), 1, `${slug}: the probe migration ran exactly once`);
  }
  const migrated = [...a.json.tenants, ...b.json.tenants]
    .filter((r: any) => r.outcome === 'migrated')
    .map((r: any) => r.slug)
    .sort();
  t.same(
    migrated,
    slugs.filter((s) => s !== 'delta'),
    'each healthy tenant migrated by exactly one runner',
  );
});

t.test('a failing tenant stays in maintenance with the reason; the others are active', async (t) => {
  const delta = (await ctx.catalog.tenants.findBySlug('delta'))!;
  t.equal(delta.status, 'maintenance');
  t.match(delta.statusReason, /boom on delta/);
  t.equal(delta.schemaVersion, '9001-add-probe', 'the schema version says how far it got');
  for (const slug of slugs.filter((s) => s !== 'delta')) {
    const x = (await ctx.catalog.tenants.findBySlug(slug))!;
    t.equal(x.status, 'active', slug);
    t.equal(x.schemaVersion, '9002-fail-on-delta', slug);
  }
  const op = (await ctx.catalog.operations.list({ tenantId: delta.id, kind: 'migrate' }))[0]!;
  t.equal(op.status, 'failed');
  t.match(op.error, /boom on delta/);
});

t.test('without the failing migration, migrate --all resumes the tenant in maintenance', async (t) => {
  await rm(join(extra, '9002-fail-on-delta.js'));
  const { result, json } = await runCliJson<any>(['tenants', 'migrate', '--all'], { ...env, SILO_TENANT_MIGRATIONS_EXTRA_DIR: extra });
  t.equal(result.code, 0, result.stderr);
  const d = json.tenants.find((r: any) => r.slug === 'delta');
  t.equal(d.outcome, 'migrated', 'taken out of maintenance');
  t.same(d.applied, []);
  t.equal((await ctx.catalog.tenants.findBySlug('delta'))!.status, 'active');
});
