/**
 * `npm run bench -- history`: Silo with one tenant, request history recording on vs off,
 * in the same run: requests/s both ways (interleaved rounds: off, on, off, on ...), the
 * ratio on/off (target >= 0.95), and the rows written per INSERT on average.
 * Load: `GET /api/v1/contacts/:id` of a table of 1,000 contacts, authenticated, X-Tenant.
 */
import { createTenant } from '../../src/provisioning/tenants-service.js';
import { BENCH_JWT_SECRET, benchEnv, cpuMsOf, machineFacts, metric, mysqlPid, parseArgs, printTable, runLoad, startSilo } from './common.js';
import { createSigner } from './sign.js';

export async function run(argv: string[]): Promise<unknown> {
  const opts = parseArgs(argv, { connections: 50, duration: 10, warmup: 2, rounds: 2, port: 3701 });
  const b = await benchEnv();
  try {
    const { tenant } = await createTenant(b.ctx, { slug: 'bench-one', adminPassword: 'bench-password-123' }, 'bench');
    await b.ctx.admin.withTenantDatabase(tenant, async (k) => {
      const rows = Array.from({ length: 1000 }, (_, i) => ({ full_name: `Contact ${i}`, email: `c${i}@bench.test` }));
      await k.batchInsert('contacts', rows, 500);
    });
    const token = createSigner(BENCH_JWT_SECRET)({ aud: 'tenant', sub: '1', tid: tenant.id, role: 'admin' });
    const headers = { 'x-tenant': 'bench-one', authorization: `Bearer ${token}` };
    const results: Record<'on' | 'off', number[]> = { on: [], off: [] };
    // CPU per request (µs) of the API process and of MySQL, to show where the cost goes.
    const cpu: Record<'on' | 'off', { server: number[]; mysql: number[] }> = { on: { server: [], mysql: [] }, off: { server: [], mysql: [] } };
    const dbPid = mysqlPid();
    let written = 0;
    let inserts = 0;
    let failures = 0;
    for (let round = 0; round < opts.rounds; round++) {
      for (const mode of ['off', 'on'] as const) {
        const server = await startSilo({ ...b.env, SILO_HISTORY_ENABLED: mode === 'on' ? '1' : '0' }, opts.port);
        try {
          const url = `${server.url}/api/v1/contacts/500`;
          await runLoad(url, { connections: opts.connections, durationS: opts.warmup, headers });
          const s0 = cpuMsOf(server.pid);
          const m0 = cpuMsOf(dbPid);
          const r = await runLoad(url, { connections: opts.connections, durationS: opts.duration, headers });
          cpu[mode].server.push(Math.round(((cpuMsOf(server.pid) - s0) * 1000) / r.total));
          cpu[mode].mysql.push(Math.round(((cpuMsOf(dbPid) - m0) * 1000) / r.total));
          failures += r.non2xx + r.errors;
          results[mode].push(r.requestsPerSec);
          if (mode === 'on') {
            await new Promise((res) => setTimeout(res, 1500)); // one flush interval
            const m = await (await fetch(`${server.url}/metrics`)).text();
            written += metric(m, 'silo_history_written_total');
            inserts += metric(m, 'silo_history_inserts_total');
          }
        } finally {
          await server.stop();
        }
      }
    }
    const mean = (a: number[]) => Math.round(a.reduce((x, y) => x + y, 0) / a.length);
    const on = mean(results.on);
    const off = mean(results.off);
    const out = {
      benchmark: 'history',
      machine: await machineFacts(b.root),
      options: opts,
      requestsPerSec: { historyOn: on, historyOff: off, rounds: results },
      ratio: Math.round((on / off) * 1000) / 1000,
      target: 0.95,
      cpuMicrosPerRequest: {
        serverOn: mean(cpu.on.server),
        serverOff: mean(cpu.off.server),
        mysqlOn: mean(cpu.on.mysql),
        mysqlOff: mean(cpu.off.mysql),
      },
      rowsPerInsert: inserts ? Math.round((written / inserts) * 10) / 10 : null,
      rowsWritten: written,
      failedRequests: failures,
    };
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
        ['API process', out.cpuMicrosPerRequest.serverOff, out.cpuMicrosPerRequest.serverOn],
        ['MySQL', out.cpuMicrosPerRequest.mysqlOff, out.cpuMicrosPerRequest.mysqlOn],
      ],
    );
    process.stderr.write(`ratio on/off ${out.ratio} (target >= 0.95); ${out.rowsPerInsert} rows per INSERT; ${failures} failed requests\n`);
    return out;
  } finally {
    await b.cleanup();
  }
}
