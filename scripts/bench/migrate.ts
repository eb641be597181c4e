/**
 * `npm run bench -- migrate [--tenants 1000] [--fleet 10000] [--concurrencies 1,8] [--create clone|service]`:
 * tenant migrations across a fleet.
 *
 * 1. Fleet: `--tenants` real tenants (catalog rows, `active`, databases at the newest
 *    schema version, their accounts and grants). The first is made by `createTenant`.
 *    With `--create clone` (default) the others replay its final state as plain SQL
 *    (the schema, `schema_migrations`, the seeded rows; see `raw-tenant.ts`) under
 *    catalog rows written with the catalog repository: on a 2-core machine the service
 *    makes about 2 tenants/s at concurrency 4 (7 to 8 minutes for 1,000, most of the
 *    10-minute budget), plain SQL 10 or more. `--create service` makes them all with
 *    `createTenant`. Both at concurrency 4; the time is reported.
 *    `--fleet` (default 10,000): catalog rows up to that many tenants, active at the newest
 *    schema version, written in batches, whose databases are not made (100,000 more
 *    tables would take most of the budget): the up-to-date check reads the catalog only,
 *    so they cost it what real tenants would. They are set `failed` before step 3, so
 *    the new migration runs over the `--tenants` real ones. (`--verify`, which connects
 *    to every tenant, is not timed here.)
 * 2. Up to date: `migrateTenants({ all: true, concurrency: 4 })` in process, then the
 *    real CLI `silo tenants migrate --all --json` as a child process (what operators
 *    run: start-up, catalog, exit), each timed over the whole fleet (target: under 5 s
 *    for 10,000 tenants).
 * 3. One new migration per concurrency: a folder given by
 *    `SILO_TENANT_MIGRATIONS_EXTRA_DIR` (a context of its own) adds `910k-bench-add-
 *    contacts-column-k.js` (a nullable column and its index on `contacts`); the run at
 *    the k-th concurrency sees migrations 9100..910k, so each run applies exactly one.
 *    Wall time, migrated tenants/s, per-tenant p50/p95/max and failures (target: under
 *    10 s for 1,000 tenants at concurrency 8). The `contacts`
 *    tables are empty: this measures orchestration and DDL, not rewriting data.
 * Everything lives under a private `bench_<id>` prefix, dropped at the end; the
 * temporary folders are removed.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import type { Tenant } from '../../src/catalog/index.js';
import { loadConfig } from '../../src/config.js';
import { createContext } from '../../src/context.js';
import { tenantDatabaseName, tenantUserName } from '../../src/lib/identifiers.js';
import { encryptSecret, generatePassword } from '../../src/lib/secrets.js';
import { migrateTenants, type MigrateResult } from '../../src/provisioning/migrate-service.js';
import { defaultAdminEmail } from '../../src/provisioning/steps.js';
import { latestTenantVersion } from '../../src/provisioning/tenant-schema.js';
import { createTenant } from '../../src/provisioning/tenants-service.js';
import { benchEnv, benchLogger, latencies, machineFacts, parseArgs, printTable, round1, type BenchEnv } from './common.js';
import { adminConnection, applyTemplate, readTemplate } from './raw-tenant.js';
import { runCli } from './cli.js';

const CREATE_CONCURRENCY = 4;

export async function run(argv: string[]): Promise<unknown> {
  const opts = parseArgs(argv, { tenants: 1000, fleet: 10000, concurrencies: '1,8', create: 'clone' });
  const concurrencies = opts.concurrencies.split(',').map(Number);
  if (!(opts.tenants >= 1) || concurrencies.some((c) => !Number.isInteger(c) || c < 1 || c > 64))
    throw new Error('--tenants must be positive, --concurrencies integers from 1 to 64');
  if (opts.create !== 'clone' && opts.create !== 'service') throw new Error('--create is clone or service');
  if (!Number.isInteger(opts.fleet) || opts.fleet < opts.tenants) throw new Error('--fleet must be an integer, at least --tenants');
  const dirs: string[] = [];
  const removeDirs = () => dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
  process.once('exit', removeDirs);
  const b = await benchEnv();
  try {
    const fleet = await createFleet(b, opts.tenants, opts.create);
    const n = opts.tenants;

    const catalogOnly = await addCatalogOnly(b, opts.fleet - n);
    const size = opts.fleet;

    // 2. Everything up to date: in process, then the CLI, over the whole fleet.
    let t0 = performance.now();
    const inProcess = summarize(await migrateTenants(b.ctx, 'bench', { all: true, concurrency: 4 }), performance.now() - t0);
    const cli = await runCli(['tenants', 'migrate', '--all', '--json'], b.env, b.signal);
    let cliJson: { summary: Record<string, number> };
    try {
      cliJson = JSON.parse(cli.stdout) as typeof cliJson;
    } catch {
      throw new Error(`silo tenants migrate exited ${cli.code} without JSON: ${cli.stderr.slice(-500)}`);
    }
    // For 10,000 tenants: measured with a fleet of 10,000; else the in-process time scaled, and for
    // the CLI its fixed cost (process start, loading, connecting: CLI minus in-process) plus that.
    const scaled = Math.round((inProcess.wallMs * 10000) / size);
    const upToDate = {
      tenants: size,
      catalogOnly: catalogOnly.count,
      inProcess: { wallMs: inProcess.wallMs, outcomes: inProcess.outcomes, msFor10000: scaled },
      cli: {
        wallMs: cli.wallMs,
        exitCode: cli.code,
        outcomes: cliJson.summary,
        msFor10000: size === 10000 ? cli.wallMs : Math.max(0, cli.wallMs - inProcess.wallMs) + scaled,
      },
      msFor10000Measured: size === 10000,
      target: { msFor10000: 5000 },
      met: (size === 10000 ? cli.wallMs : Math.max(0, cli.wallMs - inProcess.wallMs) + scaled) < 5000 ? 'met' : 'missed',
    };
    await catalogOnly.park();

    // 3. One new migration per concurrency, each from a folder of its own.
    const added = [];
    for (const [k, c] of concurrencies.entries()) {
      const dir = await mkdtemp(join(tmpdir(), 'silo-bench-migrate-'));
      dirs.push(dir);
      await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
      for (let j = 0; j <= k; j++) await writeFile(join(dir, `${migrationName(j)}.js`), migrationSource(j));
      const ctx = createContext(loadConfig({ ...b.env, SILO_TENANT_MIGRATIONS_EXTRA_DIR: dir }), benchLogger());
      try {
        t0 = performance.now();
        const s = summarize(await migrateTenants(ctx, 'bench', { all: true, concurrency: c }), performance.now() - t0);
        const expected = migrationName(k);
        added.push({
          concurrency: c,
          migration: expected,
          wallMs: s.wallMs,
          tenantsPerSec: round1(((s.outcomes.migrated ?? 0) * 1000) / s.wallMs),
          perTenantMs: latencies(s.migratedMs),
          outcomes: s.outcomes,
          failures: s.outcomes.failed ?? 0,
          ...(s.firstError ? { firstError: s.firstError } : {}),
          appliedExactlyIt: s.applied.every((a) => a.length === 1 && a[0] === expected),
          schemaVersionNow: await latestTenantVersion(ctx.config),
          ...(n === 1000 && c === 8 ? { target: { wallMs: 10000 }, met: s.wallMs < 10000 ? 'met' : 'missed' } : {}),
        });
      } finally {
        await ctx.close();
      }
    }

    const out = {
      benchmark: 'migrate',
      machine: await machineFacts(b.root),
      options: { ...opts, concurrencies },
      fleet,
      upToDate,
      addedMigration: added,
    };
    printTable(
      ['fleet', 'tenants', 'via service', 'cloned', 'wall s', 'tenants/s'],
      [[opts.create, n, fleet.viaService, fleet.cloned, round1(fleet.wallMs / 1000), fleet.tenantsPerSec]],
    );
    printTable(
      [
        `up to date (concurrency 4, ${size} tenants, ${catalogOnly.count} catalog-only)`,
        'wall ms',
        `ms for 10,000 (${size === 10000 ? 'measured' : 'projected'})`,
        'target',
        'outcomes',
      ],
      [
        ['migrateTenants in process', upToDate.inProcess.wallMs, upToDate.inProcess.msFor10000, '-', fmt(upToDate.inProcess.outcomes)],
        ['silo tenants migrate --all --json', upToDate.cli.wallMs, upToDate.cli.msFor10000, `< 5000: ${upToDate.met}`, fmt(upToDate.cli.outcomes)],
      ],
    );
    printTable(
      ['new migration', 'conc.', 'wall s', 'tenants/s', 'p50 ms', 'p95 ms', 'max ms', 'failed', 'target'],
      added.map((a) => [
        a.migration,
        a.concurrency,
        round1(a.wallMs / 1000),
        a.tenantsPerSec,
        a.perTenantMs.p50,
        a.perTenantMs.p95,
        a.perTenantMs.max,
        a.failures,
        'met' in a ? `< 10 s: ${a.met}` : '-',
      ]),
    );
    return out;
  } finally {
    await b.cleanup();
    removeDirs();
  }
}

/** Makes `n` tenants (see the file comment); the first through the service. */
/**
 * Makes `n` real tenants: the first through the provisioning service (then `prepareFirst`
 * may add data to it), the others through the service too (`service`) or as plain-SQL
 * replays of the first one's final state, rows included, with real catalog rows (`clone`).
 */
export async function createFleet(
  b: BenchEnv,
  n: number,
  via: 'clone' | 'service',
  opts: { slugPrefix?: string; prepareFirst?: (t: Tenant) => Promise<void> } = {},
) {
  const slug = (i: number) => `${opts.slugPrefix ?? 'm'}-${String(i).padStart(5, '0')}`;
  const t0 = performance.now();
  const first = await createTenant(b.ctx, { slug: slug(0), adminPassword: 'bench-admin-password-123' }, 'bench');
  if (opts.prepareFirst) await opts.prepareFirst(first.tenant);
  const limit = pLimit(CREATE_CONCURRENCY);
  const rest = Array.from({ length: n - 1 }, (_, i) => i + 1);
  if (via === 'service') {
    await Promise.all(
      rest.map((i) =>
        limit(async () => {
          b.signal.throwIfAborted();
          await createTenant(b.ctx, { slug: slug(i), adminPassword: 'bench-admin-password-123' }, 'bench');
        }),
      ),
    );
  } else {
    const schemaVersion = (await b.ctx.catalog.tenants.findById(first.tenant.id))!.schemaVersion;
    const conns = await Promise.all(Array.from({ length: CREATE_CONCURRENCY }, () => adminConnection()));
    const stop = () => conns.forEach((conn) => conn.destroy());
    b.signal.addEventListener('abort', stop);
    try {
      const template = await readTemplate(conns[0]!, first.tenant.databaseName);
      const free = [...conns];
      const { tenantDbPrefix: prefix, secrets, tenantDbUserHost: host } = b.config;
      await Promise.all(
        rest.map((i) =>
          limit(async () => {
            b.signal.throwIfAborted();
            const conn = free.pop()!;
            try {
              const s = slug(i);
              const database = tenantDatabaseName(prefix, s);
              const user = tenantUserName(prefix, s);
              const password = generatePassword();
              const adminEmail = defaultAdminEmail(s);
              const id = await b.ctx.catalog.tenants.insert({
                slug: s,
                name: s,
                plan: 'standard',
                databaseServerId: first.tenant.databaseServerId,
                databaseName: database,
                dbUser: user,
                dbPasswordEnc: encryptSecret(password, secrets),
                adminEmail,
              });
              await applyTemplate(conn, { database, user, host, password }, template);
              await conn.query("UPDATE users SET email = ? WHERE role = 'admin'", [adminEmail]);
              await b.ctx.catalog.tenants.update(id, { status: 'active', schemaVersion });
            } finally {
              free.push(conn);
            }
          }),
        ),
      );
    } finally {
      b.signal.removeEventListener('abort', stop);
      if (!b.signal.aborted) await Promise.all(conns.map((c) => c.end()));
    }
  }
  const wallMs = Math.round(performance.now() - t0);
  const active = (await b.ctx.catalog.tenants.list({ statuses: ['active'] })).length;
  if (active !== n) throw new Error(`expected ${n} active tenants, found ${active}`);
  return {
    via,
    concurrency: CREATE_CONCURRENCY,
    viaService: via === 'service' ? n : 1,
    cloned: via === 'service' ? 0 : n - 1,
    wallMs,
    tenantsPerSec: round1((n * 1000) / wallMs),
  };
}

/**
 * Adds `count` catalog-only tenants (see the file comment): rows `active` at the newest
 * schema version, like the first tenant's, written 500 to a statement; their databases are
 * not made. `park()` sets them `failed`, so that a migrate run leaves them out.
 */
async function addCatalogOnly(b: BenchEnv, count: number) {
  const first = (await b.ctx.catalog.tenants.list({ statuses: ['active'] }))[0]!;
  const ids: number[] = [];
  const { tenantDbPrefix: prefix, secrets } = b.config;
  const password = encryptSecret(generatePassword(), secrets);
  for (let i = 0; i < count; i += 500) {
    const rows = Array.from({ length: Math.min(500, count - i) }, (_, j) => {
      const slug = `x-${String(i + j).padStart(5, '0')}`;
      return {
        slug,
        name: slug,
        plan: 'standard',
        status: 'active',
        schema_version: first.schemaVersion,
        database_server_id: first.databaseServerId,
        database_name: tenantDatabaseName(prefix, slug),
        db_user: tenantUserName(prefix, slug),
        db_password_enc: password,
        admin_email: defaultAdminEmail(slug),
      };
    });
    await b.ctx.catalog.knex('tenants').insert(rows);
    ids.push(
      ...((await b.ctx.catalog
        .knex('tenants')
        .whereIn(
          'slug',
          rows.map((r) => r.slug),
        )
        .pluck('id')) as number[]),
    );
  }
  return {
    count,
    park: async () => {
      for (let i = 0; i < ids.length; i += 500)
        await b.ctx.catalog
          .knex('tenants')
          .whereIn('id', ids.slice(i, i + 500))
          .update({ status: 'failed', status_reason: 'bench: catalog-only tenant' });
    },
  };
}

/** Outcomes of a migrate run, counted. */
function summarize(results: MigrateResult[], wallMs: number) {
  const outcomes: Record<string, number> = {};
  for (const r of results) outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
  const migrated = results.filter((r) => r.outcome === 'migrated');
  return {
    wallMs: Math.round(wallMs),
    outcomes,
    migratedMs: migrated.map((r) => r.durationMs),
    applied: migrated.map((r) => r.applied),
    firstError: results.find((r) => r.error)?.error?.slice(0, 300),
  };
}

function fmt(outcomes: Record<string, number>): string {
  return Object.entries(outcomes)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');
}

/** Name of the k-th benchmark migration (0-based): `9100-bench-add-contacts-column-1`, ... */
function migrationName(k: number): string {
  return `${9100 + k}-bench-add-contacts-column-${k + 1}`;
}

/** An ESM tenant migration adding nullable column `bench_note_<k+1>` and its index to `contacts`. */
function migrationSource(k: number): string {
  const col = `bench_note_${k + 1}`;
  const idx = `contacts_${col}_idx`;
  return `// Benchmark migration (scripts/bench/migrate.ts): a nullable column and its index on contacts.
export async function up({ context: knex }) {
  await knex.schema.alterTable('contacts', (t) => {
    t.string('${col}', 100).nullable();
    t.index(['${col}'], '${idx}');
  });
}

export async function down({ context: knex }) {
  await knex.schema.alterTable('contacts', (t) => {
    t.dropIndex(['${col}'], '${idx}');
    t.dropColumn('${col}');
  });
}
`;
}
