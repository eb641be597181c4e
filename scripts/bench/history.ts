/**
 * `npm run bench -- history`: Silo with one tenant, request history recording on vs off,
 * in the same run (interleaved rounds: off, on, off, on ...). Load: `GET
 * /api/v1/contacts/:id` of a table of 1,000 contacts, authenticated, X-Tenant.
 *
 * Reported, each with its target (issue 14, part 4) and met/missed:
 * - throughput ratio on/off (requests/s), target >= 0.95;
 * - API CPU per request on/off (user + system from /proc/<pid>/stat, µs), target <= 1.05.
 * Also: the CPU per request of the tenant MariaDB and of the catalog's, rows per INSERT,
 * rows written and dropped.
 *
 * `--separate-catalog 1` (the default) puts the catalog, which holds the history, on a
 * MariaDB server of its own (a disposable `mariadbd` on a free port, as the outage test
 * starts one), so that the catalog's writes do not queue behind the tenant's reads in one
 * server; `--separate-catalog 0` keeps everything on 127.0.0.1:3306. Both servers still
 * share the machine's cores with the API and the load generator: the figures are
 * comparisons within one run, not absolute costs. `--profile <dir>` writes the servers'
 * V8 CPU profiles to `<dir>/on` and `<dir>/off`.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseMysqlUrl } from '../../src/config.js';
import { createTenant } from '../../src/provisioning/tenants-service.js';
import { startDisposableMariaDB } from '../../test/fixtures/disposable-mariadb.js';
import { BENCH_JWT_SECRET, benchEnv, cpuMsOf, machineFacts, metric, parseArgs, printTable, runLoad, startSilo } from './common.js';
import { createSigner } from './sign.js';

/** Throughput with history on / off, at least (issue 14). */
const RATIO_TARGET = 0.95;
/** API CPU per request with history on / off, at most (issue 14). */
const CPU_TARGET = 1.05;

/**
 * Pid of the shared MariaDB/MySQL server (the tenants'): a mariadbd/mysqld whose command
 * line names no disposable data directory (other benchmarks and tests may run their own).
 */
function sharedMysqlPid(): number {
  for (const name of ['mariadbd', 'mysqld']) {
    try {
      const pids = execFileSync('pidof', [name], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
      const shared = pids.find((p) => !readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('silo-mariadb-'));
      if (shared) return shared;
    } catch {
      /* not running under that name */
    }
  }
  return 0;
}

export async function run(argv: string[]): Promise<unknown> {
  const opts = parseArgs(argv, { connections: 50, duration: 10, warmup: 2, rounds: 3, port: 3701, separateCatalog: 1, profile: '' });
  const teardowns: Array<() => unknown> = [];
  let catalogPid = 0;
  let catalogEnv: Record<string, string> = {};
  if (opts.separateCatalog) {
    const db = await startDisposableMariaDB({ teardown: (fn) => teardowns.push(fn) });
    const s = parseMysqlUrl(db.url);
    catalogEnv = { SILO_CATALOG_URL: `mysql://${s.user}:@${s.host}:${s.port}/bench_history_catalog` };
    catalogPid = Number(readFileSync(join(db.datadir, 'mysqld.pid'), 'utf8').trim());
  }
  try {
    const b = await benchEnv(catalogEnv);
    teardowns.unshift(() => b.cleanup());
    const { tenant } = await createTenant(b.ctx, { slug: 'bench-one', adminPassword: 'bench-password-123' }, 'bench');
    await b.ctx.admin.withTenantDatabase(tenant, async (k) => {
      const rows = Array.from({ length: 1000 }, (_, i) => ({ full_name: `Contact ${i}`, email: `c${i}@bench.test` }));
      await k.batchInsert('contacts', rows, 500);
    });
    const token = createSigner(BENCH_JWT_SECRET)({ aud: 'tenant', sub: '1', tid: tenant.id, role: 'admin' });
    const headers = { 'x-tenant': 'bench-one', authorization: `Bearer ${token}` };
    const results: Record<'on' | 'off', number[]> = { on: [], off: [] };
    // CPU per request (µs) of the API process, the tenant server and the catalog server.
    type Cpu = { server: number[]; tenantDb: number[]; catalogDb: number[] };
    const cpu: Record<'on' | 'off', Cpu> = { on: { server: [], tenantDb: [], catalogDb: [] }, off: { server: [], tenantDb: [], catalogDb: [] } };
    const tenantDbPid = sharedMysqlPid();
    let written = 0;
    let inserts = 0;
    let dropped = 0;
    let requestsOn = 0;
    let failures = 0;
    for (let round = 0; round < opts.rounds; round++) {
      for (const mode of ['off', 'on'] as const) {
        // --profile <dir>: the servers write V8 CPU profiles there (open in Chrome DevTools or speedscope).
        const nodeArgs = opts.profile ? ['--cpu-prof', `--cpu-prof-dir=${opts.profile}/${mode}`] : [];
        const server = await startSilo({ ...b.env, SILO_HISTORY_ENABLED: mode === 'on' ? '1' : '0' }, opts.port, nodeArgs);
        try {
          const url = `${server.url}/api/v1/contacts/500`;
          await runLoad(url, { connections: opts.connections, durationS: opts.warmup, headers });
          const before = [cpuMsOf(server.pid), cpuMsOf(tenantDbPid), catalogPid ? cpuMsOf(catalogPid) : 0];
          const r = await runLoad(url, { connections: opts.connections, durationS: opts.duration, headers });
          const after = [cpuMsOf(server.pid), cpuMsOf(tenantDbPid), catalogPid ? cpuMsOf(catalogPid) : 0];
          const perRequest = (i: number) => Math.round(((after[i]! - before[i]!) * 1000) / r.total);
          cpu[mode].server.push(perRequest(0));
          cpu[mode].tenantDb.push(perRequest(1));
          cpu[mode].catalogDb.push(perRequest(2));
          failures += r.non2xx + r.errors;
          results[mode].push(r.requestsPerSec);
          if (mode === 'on') {
            requestsOn += r.total;
            await new Promise((res) => setTimeout(res, 1500)); // one flush interval
            const m = await (await fetch(`${server.url}/metrics`)).text();
            written += metric(m, 'silo_history_written_total');
            inserts += metric(m, 'silo_history_inserts_total');
            dropped += metric(m, 'silo_history_dropped_total');
          }
        } finally {
          await server.stop();
        }
      }
    }
    const mean = (a: number[]) => Math.round(a.reduce((x, y) => x + y, 0) / a.length);
    const on = mean(results.on);
    const off = mean(results.off);
    const ratio = Math.round((on / off) * 1000) / 1000;
    const cpuOn = mean(cpu.on.server);
    const cpuOff = mean(cpu.off.server);
    const cpuRatio = Math.round((cpuOn / cpuOff) * 1000) / 1000;
    const out = {
      benchmark: 'history',
      machine: await machineFacts(b.root),
      options: opts,
      requestsPerSec: { historyOn: on, historyOff: off, rounds: results },
      ratio,
      ratioTarget: RATIO_TARGET,
      ratioMet: ratio >= RATIO_TARGET,
      cpuMicrosPerRequest: {
        serverOn: cpuOn,
        serverOff: cpuOff,
        tenantDbOn: mean(cpu.on.tenantDb),
        tenantDbOff: mean(cpu.off.tenantDb),
        catalogDbOn: catalogPid ? mean(cpu.on.catalogDb) : null,
        catalogDbOff: catalogPid ? mean(cpu.off.catalogDb) : null,
        rounds: cpu,
      },
      serverCpuRatio: cpuRatio,
      serverCpuTarget: CPU_TARGET,
      serverCpuMet: cpuRatio <= CPU_TARGET,
      separateCatalog: Boolean(catalogPid),
      rowsPerInsert: inserts ? Math.round((written / inserts) * 10) / 10 : null,
      rowsWritten: written,
      rowsDropped: dropped,
      requestsWithHistoryOn: requestsOn,
      failedRequests: failures,
    };
    const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
    printTable(
      ['history', 'req/s (mean)', 'rounds'],
      [
        ['off', off, results.off.join(', ')],
        ['on', on, results.on.join(', ')],
      ],
    );
    printTable(
      ['CPU µs per request', 'history off', 'history on'],
      [
        ['API process', cpuOff, cpuOn],
        ['tenant MariaDB', out.cpuMicrosPerRequest.tenantDbOff, out.cpuMicrosPerRequest.tenantDbOn],
        ...(catalogPid ? [['catalog MariaDB (own server)', out.cpuMicrosPerRequest.catalogDbOff, out.cpuMicrosPerRequest.catalogDbOn]] : []),
      ],
    );
    printTable(
      ['target', 'measured', 'goal', ''],
      [
        ['throughput on/off', ratio, `>= ${RATIO_TARGET}`, met(out.ratioMet)],
        ['API CPU per request on/off', cpuRatio, `<= ${CPU_TARGET}`, met(out.serverCpuMet)],
      ],
    );
    process.stderr.write(
      `${out.rowsPerInsert} rows per INSERT; ${written} rows written of ${requestsOn} requests, ${dropped} dropped; ${failures} failed requests; catalog on ${catalogPid ? 'its own MariaDB' : 'the tenant MariaDB'}\n`,
    );
    return out;
  } finally {
    for (const fn of teardowns) await fn();
  }
}
