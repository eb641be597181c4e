/**
 * Concurrency: what must hold when several processes, or many requests, act on the same
 * tenants at once. Two fleet migrations apply each migration once per tenant; a
 * migration turns only its own tenant's answers into 503 while it runs; two creates of
 * one slug leave one tenant and nothing orphaned; concurrent creates of one contact
 * email leave one live row.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import t from 'tap';
import type { Tenant } from '../../src/catalog/index.js';
import { MIGRATIONS_TABLE } from '../../src/migrations/runner.js';
import { login, makeTenant, setupApp } from '../fixtures/app.js';
import { runCliJson } from '../fixtures/env.js';
import { prefixedObjects } from '../fixtures/mysql-state.js';

const POLL_MS = 100;
const { app, ctx, env, names } = await setupApp(t, {
  SILO_TENANT_CHANGE_POLL_MS: String(POLL_MS),
  // Only the change poll may tell the API about another process's changes.
  SILO_TENANT_CACHE_TTL_MS: '600000',
  // Enough connections per tenant for concurrent requests to really race in MySQL.
  SILO_POOL_MAX_PER_TENANT: '16',
});

const slugs = ['alpha', 'bravo', 'charlie', 'delta'];
const tenants = new Map<string, Tenant>();
for (const slug of slugs) tenants.set(slug, await makeTenant(ctx, slug));
const tokens = new Map<string, string>();
for (const slug of slugs) tokens.set(slug, (await login(app, slug)).accessToken);

// Extra tenant migrations seen by the CLI processes only (the API process never migrates).
const extra = await mkdtemp(join(tmpdir(), 'silo-concurrency-'));
t.teardown(() => rm(extra, { recursive: true, force: true }));
const cliEnv = { ...env, SILO_TENANT_MIGRATIONS_EXTRA_DIR: extra };

/** A tenant migration that records each of its runs in `probe_runs`, then sleeps. */
function probeMigration(name: string, sleepS: number, createsTable: boolean): string {
  return `export async function up({ context: knex }) {
      await knex.raw('CREATE TABLE IF NOT EXISTS probe_runs (id INT AUTO_INCREMENT PRIMARY KEY, migration VARCHAR(64) NOT NULL)');
      await knex('probe_runs').insert({ migration: '${name}' });
      await knex.raw('DO SLEEP(${sleepS})');
    }
    export async function down({ context: knex }) {
      ${createsTable ? "await knex.schema.dropTableIfExists('probe_runs');" : `await knex('probe_runs').where({ migration: '${name}' }).delete();`}
    }
    ${createsTable ? "export const creates = ['probe_runs'];" : ''}`;
}

/** Rows of `probe_runs` and of `schema_migrations` for one migration of a tenant. */
async function runsOf(slug: string, migration: string): Promise<{ probe: number; recorded: number }> {
  return ctx.admin.withTenantDatabase(tenants.get(slug)!, async (k) => {
    const probe = await k('probe_runs').where({ migration }).count({ n: '*' }).first();
    const recorded = await k(MIGRATIONS_TABLE).where({ name: migration }).count({ n: '*' }).first();
    return { probe: Number(probe?.n), recorded: Number(recorded?.n) };
  });
}

t.test('two concurrent `migrate --all` processes apply each migration exactly once per tenant', async (t) => {
  const name = '9001-add-probe-runs';
  await writeFile(join(extra, `${name}.js`), probeMigration(name, 0.3, true));
  const runs = await Promise.all([
    runCliJson<any>(['tenants', 'migrate', '--all', '--concurrency', '2'], cliEnv),
    runCliJson<any>(['tenants', 'migrate', '--all', '--concurrency', '2'], cliEnv),
  ]);
  for (const [i, r] of runs.entries()) {
    t.equal(r.result.code, 0, `run ${i + 1} exits 0: ${r.result.stderr}`);
    t.equal(r.json.summary.failed, 0, `run ${i + 1} has no failure`);
  }
  for (const slug of slugs) {
    t.same(await runsOf(slug, name), { probe: 1, recorded: 1 }, `${slug}: the migration ran once and is recorded once`);
    const outcomes = runs.map((r) => r.json.tenants.find((x: any) => x.slug === slug)?.outcome).sort();
    t.same(outcomes, ['migrated', 'up-to-date'], `${slug}: one runner migrated it, the other found it up to date`);
    const tenant = (await ctx.catalog.tenants.findBySlug(slug))!;
    t.match(tenant, { status: 'active', statusReason: null, schemaVersion: name }, `${slug}: active again, at the new version`);
    const ops = await ctx.catalog.operations.list({ tenantId: tenant.id, kind: 'migrate' });
    t.same(
      ops.map((o) => o.status),
      ['succeeded'],
      `${slug}: one migrate operation, succeeded`,
    );
  }
  t.same(await ctx.catalog.tenants.list({ statuses: ['maintenance'] }), [], 'no tenant is left in maintenance');
});

/** Resolves once `done()` holds (checked every 20 ms), or after `ms` regardless. */
async function until(done: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!done() && Date.now() < end) await delay(20);
}

/** One answer of the API as the load saw it (times in ms since the epoch). */
interface Sample {
  slug: string;
  sent: number;
  received: number;
  status: number;
  code?: string;
  retryAfter?: string;
}

t.test('a migration turns only its own tenant into 503 + Retry-After, and only while it runs', async (t) => {
  const name = '9002-record-slow-probe';
  await writeFile(join(extra, `${name}.js`), probeMigration(name, 1.2, false));
  const lastOpId = (await ctx.catalog.operations.list({ limit: 1 }))[0]?.id ?? 0;

  const samples: Sample[] = [];
  let stopped = false;
  // Steady load: two request loops per tenant, each request reading the tenant's database.
  const worker = async (slug: string) => {
    while (!stopped) {
      const sent = Date.now();
      const res = await app.inject({ url: '/api/v1/contacts?pageSize=1', headers: { 'x-tenant': slug, authorization: `Bearer ${tokens.get(slug)}` } });
      const received = Date.now();
      const retryAfter = res.headers['retry-after'];
      samples.push({
        slug,
        sent,
        received,
        status: res.statusCode,
        ...(res.statusCode >= 400 ? { code: res.json().code } : {}),
        ...(retryAfter !== undefined ? { retryAfter: String(retryAfter) } : {}),
      });
      await delay(10);
    }
  };
  const load = Promise.all(slugs.flatMap((s) => [worker(s), worker(s)]));
  await until(() => slugs.every((s) => samples.some((x) => x.slug === s)), 10_000);
  const migrate = await runCliJson<any>(['tenants', 'migrate', '--all', '--concurrency', '1'], cliEnv);
  const migrated = Date.now();
  // Keep the load on until every tenant has been served again after the run.
  await until(() => slugs.every((s) => samples.some((x) => x.slug === s && x.sent > migrated && x.status === 200)), 10_000);
  stopped = true;
  await load;

  t.equal(migrate.result.code, 0, migrate.result.stderr);
  t.same(
    migrate.json.tenants.map((r: any) => [r.slug, r.outcome]),
    slugs.map((s) => [s, 'migrated']),
    'every tenant migrated',
  );
  t.same(await ctx.catalog.tenants.list({ statuses: ['maintenance'] }), [], 'no tenant is left in maintenance');

  t.same(
    samples.filter((s) => s.status !== 200 && s.status !== 503),
    [],
    'the API answered 200 or 503, nothing else',
  );
  const unavailable = samples.filter((s) => s.status === 503);
  t.same(
    unavailable.filter((s) => s.code !== 'TENANT_UNAVAILABLE' || !(Number(s.retryAfter) > 0)),
    [],
    'every 503 is TENANT_UNAVAILABLE with a Retry-After',
  );

  const windows = new Map<string, { started: number; finished: number }>();
  for (const slug of slugs) {
    const ops = (await ctx.catalog.operations.list({ tenantId: tenants.get(slug)!.id, kind: 'migrate' })).filter((o) => o.id > lastOpId);
    t.same(
      ops.map((o) => o.status),
      ['succeeded'],
      `${slug}: one migrate operation, succeeded`,
    );
    windows.set(slug, { started: ops[0]!.startedAt.getTime(), finished: ops[0]!.finishedAt!.getTime() });
  }
  const ordered = slugs.map((s) => windows.get(s)!);
  t.ok(
    ordered.every((w, i) => i === 0 || w.started >= ordered[i - 1]!.finished),
    'with --concurrency 1 the migrations ran one after the other',
  );
  // A tenant is in maintenance from just after its operation starts to just before it
  // finishes; the API sees each change within one change poll, plus the time the poll and
  // the request take on a busy machine.
  const grace = POLL_MS + 500;
  const withinOwnMigration = (s: Sample) => {
    const w = windows.get(s.slug)!;
    return s.received >= w.started && s.sent <= w.finished + grace;
  };

  for (const slug of slugs) {
    const w = windows.get(slug)!;
    const mine = unavailable.filter((s) => s.slug === slug);
    t.ok(mine.length > 0, `${slug}: answered 503 during its migration (${w.finished - w.started} ms)`);
    if (!mine.length) continue;
    t.same(
      mine.filter((s) => !withinOwnMigration(s)),
      [],
      `${slug}: no 503 outside its own migration (+${grace} ms)`,
    );
    t.ok(Math.min(...mine.map((s) => s.sent)) <= w.started + grace, `${slug}: the API saw the maintenance within ${grace} ms`);
    const flipped = Math.min(...mine.map((s) => s.received));
    const after = samples.filter((s) => s.slug === slug && s.sent >= flipped && s.received <= w.finished);
    t.same(
      after.filter((s) => s.status !== 503),
      [],
      `${slug}: once it answered 503, only 503 until its migration finished (${after.length} requests)`,
    );
    // Meanwhile every other tenant was served.
    for (const other of slugs.filter((s) => s !== slug)) {
      const theirs = samples.filter((s) => s.slug === other && s.sent >= w.started + grace && s.sent <= w.finished && !withinOwnMigration(s));
      t.ok(theirs.length > 0 && theirs.every((s) => s.status === 200), `${other} answered 200 (${theirs.length} requests) while ${slug} migrated`);
    }
    t.equal(samples.filter((s) => s.slug === slug).at(-1)?.status, 200, `${slug}: serves again after its migration`);
  }
  for (const slug of slugs) t.same(await runsOf(slug, name), { probe: 1, recorded: 1 }, `${slug}: the slow migration ran once`);
});

t.test('two concurrent `tenants create` of one slug: one succeeds, the other fails cleanly, nothing is orphaned', async (t) => {
  const slug = 'racer';
  const runs = await Promise.all([
    runCliJson<any>(['tenants', 'create', slug, '--admin-email', 'one@racer.test'], cliEnv),
    runCliJson<any>(['tenants', 'create', slug, '--admin-email', 'two@racer.test'], cliEnv),
  ]);
  t.same(runs.map((r) => r.result.code).sort(), [0, 1], 'one exits 0, the other 1');
  const winner = runs.find((r) => r.result.code === 0)!;
  const loser = runs.find((r) => r.result.code === 1)!;
  t.equal(winner.json.tenant?.slug, slug, winner.result.stderr);
  t.match(loser.json.error?.code, /^(TENANT_EXISTS|TENANT_BUSY)$/, `the loser says why: ${loser.result.stdout}`);

  const rows = await ctx.catalog.knex('tenants').where({ slug }).select('id', 'status', 'admin_email');
  t.equal(rows.length, 1, 'one catalog row');
  t.equal(rows[0]?.status, 'active');
  t.equal(rows[0]?.admin_email, winner.json.admin.email, "the winner's tenant");
  const tenant = (await ctx.catalog.tenants.findBySlug(slug))!;
  const ops = await ctx.catalog.operations.list({ tenantId: tenant.id });
  t.same(
    ops.map((o) => [o.kind, o.status]),
    [['create', 'succeeded']],
    'one create operation, succeeded',
  );
  t.same(await ctx.catalog.knex('operations').where({ status: 'running' }).select('id'), [], 'no operation left running');

  const live = await ctx.catalog.tenants.list();
  const objects = await prefixedObjects(names.prefix);
  t.same(
    objects.databases.filter((d) => d === tenant.databaseName),
    [tenant.databaseName],
    'one database for the slug',
  );
  t.same(
    objects.users.filter((u) => u === tenant.dbUser),
    [tenant.dbUser],
    'one user for the slug',
  );
  t.same(objects.databases, live.map((x) => x.databaseName).sort(), 'every database with the prefix belongs to a tenant');
  t.same(objects.users, live.map((x) => x.dbUser).sort(), 'every user with the prefix belongs to a tenant');
  const repair = await runCliJson<any>(['tenants', 'repair', '--all'], cliEnv);
  t.equal(repair.result.code, 0, repair.result.stderr);
  t.match(repair.json.orphans, { databases: [], users: [] }, 'repair --all reports no orphans');
  t.equal(repair.json.tenants.find((x: any) => x.slug === slug)?.outcome, 'ok', 'and has nothing to repair on the tenant');
});

t.test('50 concurrent creates of one contact email in one company: one 201, 49 409 CONTACT_EMAIL_TAKEN, one live row', async (t) => {
  const slug = 'alpha';
  const headers = { 'x-tenant': slug, authorization: `Bearer ${tokens.get(slug)}` };
  const company = await app.inject({ method: 'POST', url: '/api/v1/companies', headers, payload: { name: 'Race Inc' } });
  t.equal(company.statusCode, 201, company.body);
  const companyId = company.json().id as number;
  const email = 'race@race.test';
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      app.inject({ method: 'POST', url: '/api/v1/contacts', headers, payload: { companyId, fullName: `Racer ${i}`, email } }),
    ),
  );
  const created = results.filter((r) => r.statusCode === 201);
  const conflicts = results.filter((r) => r.statusCode === 409);
  t.equal(created.length, 1, 'exactly one 201');
  t.equal(conflicts.length, 49, `the rest 409 (statuses: ${results.map((r) => r.statusCode).join(' ')})`);
  t.same(
    [...new Set(conflicts.map((r) => `${r.headers['content-type']?.toString().split(';')[0]} ${r.json().code}`))],
    ['application/problem+json CONTACT_EMAIL_TAKEN'],
    'every 409 is problem+json with code CONTACT_EMAIL_TAKEN',
  );

  const contactId = created[0]?.json().id;
  const rows = await ctx.admin.withTenantDatabase(tenants.get(slug)!, async (k) => ({
    live: await k('contacts').where({ company_id: companyId, email }).whereNull('deleted_at').select('id'),
    all: await k('contacts').where({ email }).count({ n: '*' }).first(),
    logged: await k('activity_log').where({ entity: 'contact', action: 'create' }).select('entity_id'),
  }));
  t.same(
    rows.live.map((r: any) => Number(r.id)),
    [contactId],
    'one live row, the created one',
  );
  t.equal(Number(rows.all?.n), 1, 'no other row, deleted or not');
  t.same(
    rows.logged.map((r: any) => Number(r.entity_id)),
    [contactId],
    'one activity entry: the losers rolled back',
  );
});
