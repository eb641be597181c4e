/**
 * `npm run bench -- routing`: what tenant routing costs, against the limit of the machine
 * and against the usual alternative, one server after another in the same run, with the
 * same query (`GET /api/v1/contacts/500`, one contact by id from a table of 1,000):
 *
 * 1. `baseline`: bare Fastify + one mysql2 pool on one database (servers/baseline.ts);
 * 2. `silo-1`: Silo (`silo serve`), one tenant, authenticated, `X-Tenant`, history on;
 * 3. `silo-n`: Silo, N tenants (default 1,000), each request to a random tenant with that
 *    tenant's token, default pool settings;
 * 4. `naive-n`: the same route with an unbounded map of one Knex per tenant and Knex's
 *    default pool (servers/naive.ts).
 *
 * Tenants: the first through the provisioning service with 1,000 contacts; by default the
 * others are plain-SQL replays of its final state with real catalog rows (`--create
 * clone`; provisioning 1,000 through the service would take most of the 10-minute budget,
 * see the `provision` benchmark), or all through the service (`--create service`).
 *
 * Load: autocannon in a separate process, fixed connections and duration, after a
 * warm-up. During each measured run the MySQL processlist is polled every 100 ms for the
 * peak number of connections of that server (tenant accounts for Silo and naive; the
 * database's connections for the baseline). Server RSS is read from /proc at the end.
 */
import pLimit from 'p-limit';
import type { Tenant } from '../../src/catalog/index.js';
import {
  BENCH_JWT_SECRET,
  benchEnv,
  machineFacts,
  parseArgs,
  printTable,
  ROOT,
  runLoad,
  runLoadMulti,
  startProcess,
  startSilo,
  type LoadResult,
  type ServerProcess,
} from './common.js';
import { createSigner } from './sign.js';
import { createFleet } from './migrate.js';

interface ServerFigures extends LoadResult {
  server: string;
  peakConnections: number;
  rssMb: number;
}

export async function run(argv: string[]): Promise<unknown> {
  const opts = parseArgs(argv, { tenants: 1000, connections: 50, duration: 10, warmup: 2, contacts: 1000, create: 'clone', port: 3711, profile: '' });
  if (opts.create !== 'clone' && opts.create !== 'service') throw new Error('--create is clone or service');
  const b = await benchEnv();
  try {
    // The first tenant through the provisioning service, with its contacts; the others
    // replay its final state (`--create clone`, fast) or are provisioned too (`service`).
    const started = performance.now();
    const fleet = await createFleet(b, opts.tenants, opts.create, {
      slugPrefix: 'rt',
      prepareFirst: (t) =>
        b.ctx.admin.withTenantDatabase(t, (k) =>
          k.batchInsert(
            'contacts',
            Array.from({ length: opts.contacts }, (_, i) => ({ full_name: `Contact ${i}`, email: `c${i}@bench.test`, job_title: 'Engineer' })),
            500,
          ),
        ),
    });
    const tenants: Tenant[] = (await b.ctx.catalog.tenants.list({ statuses: ['active'] })).sort((x, y) => x.id - y.id);
    if (opts.create === 'service') {
      const first = tenants[0]!;
      const cols = ['id', 'company_id', 'full_name', 'email', 'phone', 'job_title', 'version', 'created_at', 'updated_at', 'deleted_at'];
      const copy = pLimit(4);
      await Promise.all(
        tenants
          .slice(1)
          .map((t) =>
            copy(() =>
              b.root.raw(`INSERT INTO ??.contacts (${cols.map(() => '??').join(', ')}) SELECT ${cols.map(() => '??').join(', ')} FROM ??.contacts`, [
                t.databaseName,
                ...cols,
                ...cols,
                first.databaseName,
              ]),
            ),
          ),
      );
    }
    const first = tenants[0]!;
    const setupS = Math.round((performance.now() - started) / 100) / 10;
    process.stderr.write(`set up ${opts.tenants} tenants with ${opts.contacts} contacts each in ${setupS} s\n`);

    const sign = createSigner(BENCH_JWT_SECRET);
    const headerSets = tenants.map((t) => ({ 'x-tenant': t.slug, authorization: `Bearer ${sign({ aud: 'tenant', sub: '1', tid: t.id, role: 'admin' })}` }));
    const prefix = b.config.tenantDbPrefix;
    const path = '/api/v1/contacts/500';

    /** Peak connections seen by MySQL while `fn` runs (polled every 100 ms). */
    async function withPeak(count: () => Promise<number>, fn: () => Promise<LoadResult>): Promise<{ load: LoadResult; peak: number }> {
      let peak = 0;
      let polling = true;
      const poller = (async () => {
        while (polling) {
          peak = Math.max(peak, await count().catch(() => 0));
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      try {
        const load = await fn();
        return { load, peak };
      } finally {
        polling = false;
        await poller;
      }
    }
    const tenantConnections = async () =>
      Number(
        (
          await b
            .root('information_schema.PROCESSLIST')
            .where('USER', 'like', `${prefix.replace(/_/g, '\\_')}%`)
            .count({ n: '*' })
            .first()
        )?.n ?? 0,
      );
    const baseConnections = async () =>
      Number((await b.root('information_schema.PROCESSLIST').where({ DB: first.databaseName, USER: 'root' }).count({ n: '*' }).first())?.n ?? 0);

    const figures: ServerFigures[] = [];
    async function measure(name: string, server: ServerProcess, count: () => Promise<number>, load: (durationS: number) => Promise<LoadResult>): Promise<void> {
      try {
        await load(opts.warmup);
        const { load: r, peak } = await withPeak(count, () => load(opts.duration));
        figures.push({ server: name, ...r, peakConnections: peak, rssMb: server.rssMb() });
        process.stderr.write(
          `${name}: ${r.requestsPerSec} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms, non-2xx ${r.non2xx}, errors ${r.errors}, peak connections ${peak}, RSS ${server.rssMb()} MB\n`,
        );
      } finally {
        await server.stop();
      }
    }

    // --profile <dir>: Silo servers write V8 CPU profiles there (open in Chrome DevTools or speedscope).
    const serverEnv = { ...b.env, SILO_LOGIN_RATE_LIMIT: '100000' };
    const nodeArgs = opts.profile ? ['--cpu-prof', `--cpu-prof-dir=${opts.profile}`] : [];
    const baseline = await startProcess(
      process.execPath,
      [`${ROOT}dist/scripts/bench/servers/baseline.js`],
      { PORT: String(opts.port), BASE_DB_NAME: first.databaseName, BASE_DB_USER: 'root', BASE_DB_PASSWORD: '' },
      opts.port,
    );
    await measure('baseline', baseline, baseConnections, (d) => runLoad(`${baseline.url}${path}`, { connections: opts.connections, durationS: d }));

    const silo1 = await startSilo(serverEnv, opts.port, nodeArgs);
    await measure('silo-1', silo1, tenantConnections, (d) =>
      runLoad(`${silo1.url}${path}`, { connections: opts.connections, durationS: d, headers: headerSets[0]! }),
    );

    const silon = await startSilo(serverEnv, opts.port, nodeArgs);
    await measure('silo-n', silon, tenantConnections, (d) => runLoadMulti(`${silon.url}${path}`, { connections: opts.connections, durationS: d, headerSets }));

    const naive = await startProcess(process.execPath, [`${ROOT}dist/scripts/bench/servers/naive.js`], { ...serverEnv, PORT: String(opts.port) }, opts.port);
    await measure('naive-n', naive, tenantConnections, (d) => runLoadMulti(`${naive.url}${path}`, { connections: opts.connections, durationS: d, headerSets }));

    const by = Object.fromEntries(figures.map((f) => [f.server, f]));
    const ratio = (x: number, y: number) => Math.round((x / y) * 1000) / 1000;
    const cap = b.config.pool.maxConnections;
    const out = {
      benchmark: 'routing',
      machine: await machineFacts(b.root),
      options: {
        ...opts,
        poolMaxPerTenant: b.config.pool.maxPerTenant,
        poolMaxConnections: b.config.pool.maxConnections,
        historyEnabled: b.config.history.enabled,
      },
      setupSeconds: setupS,
      fleet,
      servers: figures,
      ratios: {
        silo1_vs_baseline: ratio(by['silo-1']!.requestsPerSec, by.baseline!.requestsPerSec),
        silon_vs_baseline: ratio(by['silo-n']!.requestsPerSec, by.baseline!.requestsPerSec),
        naiven_vs_baseline: ratio(by['naive-n']!.requestsPerSec, by.baseline!.requestsPerSec),
      },
      targets: {
        silo1_vs_baseline: '>= 0.85',
        silon_vs_baseline: '>= 0.75',
        siloErrorsAndNon2xx: 0,
        peakConnectionsAtMost: cap,
        rssMbUnder: 300,
        met: {
          silo1_vs_baseline: by['silo-1']!.requestsPerSec / by.baseline!.requestsPerSec >= 0.85,
          silon_vs_baseline: by['silo-n']!.requestsPerSec / by.baseline!.requestsPerSec >= 0.75,
          siloErrors: [by['silo-1']!, by['silo-n']!].every((f) => f.errors === 0 && f.non2xx === 0),
          peakConnections: by['silo-n']!.peakConnections <= cap,
          rss: by['silo-n']!.rssMb < 300,
        },
      },
    };
    printTable(
      ['server', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors', 'peak conns', 'RSS MB'],
      figures.map((f) => [f.server, f.requestsPerSec, f.p50, f.p99, f.non2xx, f.errors, f.peakConnections, f.rssMb]),
    );
    process.stderr.write(
      `silo-1/baseline ${out.ratios.silo1_vs_baseline} (>= 0.85), silo-n/baseline ${out.ratios.silon_vs_baseline} (>= 0.75), connection cap ${cap}\n`,
    );
    return out;
  } finally {
    await b.cleanup();
  }
}
