/**
 * `npm run bench -- memory`: the resident memory of `silo serve`, and the API CPU one
 * request costs with one tenant:
 *
 * 1. `idle`: RSS once `GET /health` answers;
 * 2. `one-tenant`: after `--duration` seconds of `GET /api/v1/contacts/1` on one tenant
 *    (JWT, `X-Tenant`, history and metrics on), with the server's CPU time per request
 *    read from /proc (µs, user + system, 10 ms clock ticks);
 * 3. `sign-ins`: after `--tenants` (default 300) different tenants' admins signed in
 *    with their password (`POST /api/v1/auth/login`), `--concurrency` at a time.
 *
 * Tenants: the first through the provisioning service, the others plain-SQL replays of it
 * (`createFleet`, as the routing benchmark does). Target: RSS < 250 MB after the sign-ins.
 */
import pLimit from 'p-limit';
import type { Tenant } from '../../src/catalog/index.js';
import { BENCH_JWT_SECRET, benchEnv, cpuMsOf, machineFacts, parseArgs, printTable, runLoad, startSilo } from './common.js';
import { createFleet } from './migrate.js';
import { createSigner } from './sign.js';

/** RSS ceiling after the sign-ins, MB (issue 14). */
const RSS_TARGET_MB = 250;
const PASSWORD = 'bench-admin-password-123';

export async function run(argv: string[]): Promise<unknown> {
  const opts = parseArgs(argv, { tenants: 300, concurrency: 20, connections: 50, duration: 10, port: 3712 });
  const b = await benchEnv();
  try {
    await createFleet(b, opts.tenants, 'clone', { slugPrefix: 'mem' });
    const tenants: Tenant[] = (await b.ctx.catalog.tenants.list({ statuses: ['active'] })).sort((x, y) => x.id - y.id);
    const first = tenants[0]!;
    await b.ctx.admin.withTenantDatabase(first, (k) => k('contacts').insert({ full_name: 'Contact 1', email: 'c1@bench.test', job_title: 'Engineer' }));
    const server = await startSilo({ ...b.env, SILO_LOGIN_RATE_LIMIT: '100000' }, opts.port);
    const rows: Array<{ phase: string; rssMb: number; detail: string }> = [];
    let cpuUsPerRequest = 0;
    try {
      await new Promise((r) => setTimeout(r, 1000));
      rows.push({ phase: 'idle', rssMb: server.rssMb(), detail: '' });

      const sign = createSigner(BENCH_JWT_SECRET);
      const headers = { 'x-tenant': first.slug, authorization: `Bearer ${sign({ aud: 'tenant', sub: '1', tid: first.id, role: 'admin' })}` };
      const url = `${server.url}/api/v1/contacts/1`;
      await runLoad(url, { connections: opts.connections, durationS: 2, headers });
      const cpu0 = cpuMsOf(server.pid);
      const load = await runLoad(url, { connections: opts.connections, durationS: opts.duration, headers });
      const cpuMs = cpuMsOf(server.pid) - cpu0;
      cpuUsPerRequest = Math.round((cpuMs * 1000) / Math.max(1, load.total));
      rows.push({
        phase: 'one-tenant',
        rssMb: server.rssMb(),
        detail: `${load.requestsPerSec} req/s, ${cpuUsPerRequest} µs CPU/request, non-2xx ${load.non2xx}, errors ${load.errors}`,
      });

      const limit = pLimit(opts.concurrency);
      let failed = 0;
      const t0 = performance.now();
      await Promise.all(
        tenants.map((t) =>
          limit(async () => {
            const res = await fetch(`${server.url}/api/v1/auth/login`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', 'x-tenant': t.slug },
              body: JSON.stringify({ email: `admin@${t.slug}.localhost`, password: PASSWORD }),
            });
            await res.arrayBuffer();
            if (res.status !== 200) failed++;
          }),
        ),
      );
      const s = (performance.now() - t0) / 1000;
      rows.push({ phase: 'sign-ins', rssMb: server.rssMb(), detail: `${tenants.length} tenants in ${Math.round(s * 10) / 10} s, ${failed} failed` });
    } finally {
      await server.stop();
    }
    printTable(
      ['phase', 'RSS MB', 'detail'],
      rows.map((r) => [r.phase, r.rssMb, r.detail]),
    );
    const after = rows.find((r) => r.phase === 'sign-ins')!.rssMb;
    const met = after < RSS_TARGET_MB;
    process.stderr.write(`RSS after ${opts.tenants} sign-ins ${after} MB (< ${RSS_TARGET_MB}: ${met ? 'met' : 'missed'})\n`);
    return {
      benchmark: 'memory',
      machine: await machineFacts(b.root),
      options: opts,
      phases: rows,
      cpuUsPerRequest,
      targets: { rssMbAfterSignInsUnder: RSS_TARGET_MB, met: { rssAfterSignIns: met } },
    };
  } finally {
    await b.cleanup();
  }
}
