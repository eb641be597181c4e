/**
 * `npm run bench -- tax`: the per-request tax of Silo with one tenant, the quick way (the
 * `routing` benchmark measures it too, among its other phases). One tenant with 1,000
 * contacts; `GET /api/v1/contacts/500` with the tenant's token and `X-Tenant`, history and
 * metrics on, against the bare Fastify + mysql2 server (servers/baseline.ts), alternately
 * for `--rounds` rounds in the same run, so a shared machine's noise falls on both.
 *
 * Reported per server: requests/s (autocannon, fixed connections and duration, after a
 * warm-up) and the server's own CPU per request (µs, user + system from /proc), which is
 * less sensitive than throughput to what else the machine runs. `--silo-env A=1,B=2` adds
 * settings to the Silo server (e.g. `SILO_HISTORY_ENABLED=0` to see what history costs);
 * `--profile <dir>` writes V8 CPU profiles of the Silo servers there. `--compare <dir>` also
 * measures the Silo of another built checkout (e.g. a `git worktree` of the commit before a
 * change, after `npm run build` there) as `silo-compare`, in the same rounds: on a machine
 * whose speed swings by a third between runs, only a comparison inside one run tells.
 * Target: silo-1 / baseline >= 0.6 in requests/s (issue 14; the stretch is 0.85).
 */
import { BENCH_JWT_SECRET, benchEnv, cpuMsOf, parseArgs, printTable, ROOT, runLoad, startProcess, startSilo, type ServerProcess } from './common.js';
import { createFleet } from './migrate.js';
import { createSigner } from './sign.js';

/** Ratio target of silo-1 over the baseline in requests/s. */
const TARGET = 0.6;

export async function run(argv: string[]): Promise<unknown> {
  const opts = parseArgs(argv, {
    connections: 50,
    duration: 8,
    warmup: 2,
    rounds: 2,
    port: 3712,
    profile: '',
    siloEnv: '',
    compare: '',
    path: '/api/v1/contacts/500',
  });
  const b = await benchEnv();
  try {
    await createFleet(b, 1, 'clone', {
      slugPrefix: 'tax',
      prepareFirst: (t) =>
        b.ctx.admin.withTenantDatabase(t, (k) =>
          k.batchInsert(
            'contacts',
            Array.from({ length: 1000 }, (_, i) => ({ full_name: `Contact ${i}`, email: `c${i}@bench.test`, job_title: 'Engineer' })),
            500,
          ),
        ),
    });
    const [tenant] = await b.ctx.catalog.tenants.list({ statuses: ['active'] });
    const sign = createSigner(BENCH_JWT_SECRET);
    const headers = { 'x-tenant': tenant!.slug, authorization: `Bearer ${sign({ aud: 'tenant', sub: '1', tid: tenant!.id, role: 'admin' })}` };
    const extra = Object.fromEntries(
      opts.siloEnv
        .split(',')
        .filter(Boolean)
        .map((kv) => kv.split('=') as [string, string]),
    );
    const siloEnv = { ...b.env, SILO_LOGIN_RATE_LIMIT: '100000', ...extra };
    const nodeArgs = opts.profile ? ['--cpu-prof', `--cpu-prof-dir=${opts.profile}`] : [];

    const rows: Array<{ server: string; round: number; requestsPerSec: number; cpuUsPerRequest: number; p50: number; p99: number; bad: number }> = [];
    async function measure(server: string, round: number, p: ServerProcess, h: Record<string, string>): Promise<void> {
      try {
        await runLoad(`${p.url}${opts.path}`, { connections: opts.connections, durationS: opts.warmup, headers: h });
        const cpu0 = cpuMsOf(p.pid);
        const r = await runLoad(`${p.url}${opts.path}`, { connections: opts.connections, durationS: opts.duration, headers: h });
        const cpuUs = Math.round(((cpuMsOf(p.pid) - cpu0) * 1000) / Math.max(1, r.total));
        rows.push({ server, round, requestsPerSec: r.requestsPerSec, cpuUsPerRequest: cpuUs, p50: r.p50, p99: r.p99, bad: r.non2xx + r.errors });
        process.stderr.write(`${server} #${round}: ${r.requestsPerSec} req/s, ${cpuUs} µs CPU/request, non-2xx+errors ${r.non2xx + r.errors}\n`);
      } finally {
        await p.stop();
      }
    }
    for (let round = 1; round <= opts.rounds; round++) {
      const base = await startProcess(
        process.execPath,
        [`${ROOT}dist/scripts/bench/servers/baseline.js`],
        { PORT: String(opts.port), BASE_DB_NAME: tenant!.databaseName, BASE_DB_USER: 'root', BASE_DB_PASSWORD: '' },
        opts.port,
      );
      await measure('baseline', round, base, {});
      await measure('silo-1', round, await startSilo(siloEnv, opts.port, nodeArgs), headers);
      if (opts.compare) await measure('silo-compare', round, await startSilo(siloEnv, opts.port, nodeArgs, `${opts.compare.replace(/\/?$/, '/')}`), headers);
    }
    const sum = (server: string, k: 'requestsPerSec' | 'cpuUsPerRequest') => rows.filter((r) => r.server === server).reduce((a, r) => a + r[k], 0);
    const ratio = Math.round((sum('silo-1', 'requestsPerSec') / sum('baseline', 'requestsPerSec')) * 1000) / 1000;
    const cpuRatio = Math.round((sum('silo-1', 'cpuUsPerRequest') / sum('baseline', 'cpuUsPerRequest')) * 100) / 100;
    printTable(
      ['server', 'round', 'req/s', 'CPU µs/req', 'p50 ms', 'p99 ms', 'non-2xx+errors'],
      rows.map((r) => [r.server, r.round, r.requestsPerSec, r.cpuUsPerRequest, r.p50, r.p99, r.bad]),
    );
    const met = ratio >= TARGET && rows.every((r) => r.bad === 0);
    process.stderr.write(`silo-1/baseline ${ratio} req/s (>= ${TARGET}: ${met ? 'met' : 'missed'}); CPU per request ${cpuRatio} x baseline\n`);
    const compared = opts.compare
      ? {
          silo1_vs_compare: Math.round((sum('silo-1', 'requestsPerSec') / sum('silo-compare', 'requestsPerSec')) * 1000) / 1000,
          cpu_per_request_vs_compare: Math.round((sum('silo-1', 'cpuUsPerRequest') / sum('silo-compare', 'cpuUsPerRequest')) * 100) / 100,
        }
      : undefined;
    if (compared)
      process.stderr.write(`silo-1/silo-compare ${compared.silo1_vs_compare} req/s; CPU per request ${compared.cpu_per_request_vs_compare} x silo-compare\n`);
    return {
      benchmark: 'tax',
      options: opts,
      rows,
      ratios: { silo1_vs_baseline: ratio, cpu_per_request_vs_baseline: cpuRatio, ...compared },
      target: { silo1_vs_baseline: `>= ${TARGET}`, met },
    };
  } finally {
    await b.cleanup();
  }
}
