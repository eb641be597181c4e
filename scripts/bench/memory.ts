/**
 * `npm run bench -- memory`: the resident memory of `silo serve`, phase after phase of one
 * server's life, and the API CPU one request costs with one tenant:
 *
 * 1. `idle`: once `GET /health` answers (and a second has passed);
 * 2. `one-tenant`: after `--duration` seconds of `GET /api/v1/contacts/1` on one tenant
 *    (JWT, `X-Tenant`, history and metrics on), with the server's CPU time per request
 *    read from /proc (µs, user + system, 10 ms clock ticks);
 * 3. `sign-ins`: after `--sign-ins` (default 300) different tenants' admins signed in with
 *    their password (`POST /api/v1/auth/login`, one argon2id verification each),
 *    `--concurrency` at a time;
 * 4. `served`: after one authenticated `GET /api/v1/contacts/1` to each of `--tenants`
 *    (default 10,000; cloned in 431 s and the whole run ~8 min on the shared 2-core machine), tenants,
 *    `--concurrency` at a time, each with its own token.
 *
 * Each phase shows RSS (/proc/<pid>/status), the anonymous part of it (smaps_rollup: what
 * is not the mapped node binary and libraries) and the V8 heap and external memory the
 * server reports on `GET /metrics` (prom-client defaults; not collected after a forced GC,
 * so they move by a few MB between reads). `perTenantKb` is what one more tenant that was
 * served costs, from the `served` phase (RSS and heap growth over the tenants that had not
 * been seen before it): the figure to compare when the pool manager changes.
 *
 * Tenants: the first through the provisioning service (with one contact), the others
 * plain-SQL replays of it (`createFleet`, as the routing benchmark does). Cloned admins are
 * `admin@<slug>.localhost` with the first one's password. Targets (issue 14): RSS < 250 MB
 * after the sign-ins and after the tenants served.
 */
import { readFileSync } from 'node:fs';
import pLimit from 'p-limit';
import type { Tenant } from '../../src/catalog/index.js';
import { BENCH_JWT_SECRET, benchEnv, cpuMsOf, machineFacts, metric, parseArgs, printTable, round1, runLoad, startSilo, type ServerProcess } from './common.js';
import { createFleet } from './migrate.js';
import { createSigner } from './sign.js';

/** RSS ceiling after the sign-ins and after the tenants served, MB (issue 14). */
const RSS_TARGET_MB = 250;
/** The password of the first tenant's admin, copied to every clone. */
const PASSWORD = 'bench-admin-password-123';

/** Memory of the server at the end of one phase. MB. */
interface Phase {
  phase: string;
  rssMb: number;
  anonMb: number;
  heapUsedMb: number;
  externalMb: number;
  detail: string;
}

export async function run(argv: string[]): Promise<unknown> {
  const opts = parseArgs(argv, { tenants: 10_000, signIns: 300, concurrency: 20, connections: 50, duration: 10, port: 3712 });
  const fleetSize = Math.max(opts.tenants, opts.signIns, 1);
  const b = await benchEnv();
  try {
    const fleet = await createFleet(b, fleetSize, 'clone', {
      slugPrefix: 'mem',
      prepareFirst: (t) =>
        b.ctx.admin.withTenantDatabase(t, (k) => k('contacts').insert({ full_name: 'Contact 1', email: 'c1@bench.test', job_title: 'Engineer' })),
    });
    process.stderr.write(`${fleetSize} tenants in ${round1(fleet.wallMs / 1000)} s\n`);
    const tenants: Tenant[] = (await b.ctx.catalog.tenants.list({ statuses: ['active'] })).sort((x, y) => x.id - y.id);
    const first = tenants[0]!;
    const server = await startSilo({ ...b.env, SILO_LOGIN_RATE_LIMIT: '100000' }, opts.port);
    const rows: Phase[] = [];
    let cpuUsPerRequest = 0;
    const sign = createSigner(BENCH_JWT_SECRET);
    const tokenOf = (t: Tenant) => `Bearer ${sign({ aud: 'tenant', sub: '1', tid: t.id, role: 'admin' })}`;
    try {
      await new Promise((r) => setTimeout(r, 1000));
      rows.push({ phase: 'idle', ...(await memoryOf(server)), detail: '' });

      const headers = { 'x-tenant': first.slug, authorization: tokenOf(first) };
      const url = `${server.url}/api/v1/contacts/1`;
      await runLoad(url, { connections: opts.connections, durationS: 2, headers });
      const cpu0 = cpuMsOf(server.pid);
      const load = await runLoad(url, { connections: opts.connections, durationS: opts.duration, headers });
      const cpuMs = cpuMsOf(server.pid) - cpu0;
      cpuUsPerRequest = Math.round((cpuMs * 1000) / Math.max(1, load.total));
      rows.push({
        phase: 'one-tenant',
        ...(await memoryOf(server)),
        detail: `${load.requestsPerSec} req/s, ${cpuUsPerRequest} µs CPU/request, non-2xx ${load.non2xx}, errors ${load.errors}`,
      });

      const signIns = await eachTenant(tenants.slice(0, opts.signIns), opts.concurrency, (t) =>
        fetch(`${server.url}/api/v1/auth/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-tenant': t.slug },
          body: JSON.stringify({ email: `admin@${t.slug}.localhost`, password: PASSWORD }),
        }),
      );
      rows.push({ phase: 'sign-ins', ...(await memoryOf(server)), detail: `${signIns.n} tenants in ${signIns.s} s, ${signIns.failed} failed` });

      const served = await eachTenant(tenants.slice(0, opts.tenants), opts.concurrency, (t) =>
        fetch(url, { headers: { 'x-tenant': t.slug, authorization: tokenOf(t) } }),
      );
      rows.push({ phase: 'served', ...(await memoryOf(server)), detail: `${served.n} tenants in ${served.s} s, ${served.failed} failed` });
    } finally {
      await server.stop();
    }
    printTable(
      ['phase', 'RSS MB', 'anon MB', 'heap used MB', 'external MB', 'detail'],
      rows.map((r) => [r.phase, r.rssMb, r.anonMb, r.heapUsedMb, r.externalMb, r.detail]),
    );
    const at = (phase: string) => rows.find((r) => r.phase === phase)!;
    // Tenants first seen in the `served` phase: those past the ones that signed in.
    const newTenants = Math.max(0, opts.tenants - opts.signIns);
    const perTenantKb = (key: 'rssMb' | 'heapUsedMb') => (newTenants > 0 ? round1(((at('served')[key] - at('sign-ins')[key]) * 1024) / newTenants) : null);
    const perTenant = { rss: perTenantKb('rssMb'), heapUsed: perTenantKb('heapUsedMb'), tenants: newTenants };
    const met = { rssAfterSignIns: at('sign-ins').rssMb < RSS_TARGET_MB, rssAfterServed: at('served').rssMb < RSS_TARGET_MB };
    const said = (ok: boolean) => (ok ? 'met' : 'missed');
    process.stderr.write(
      `one more tenant served: ${perTenant.rss ?? '-'} KB of RSS, ${perTenant.heapUsed ?? '-'} KB of heap (over ${newTenants} tenants)\n` +
        `RSS after ${opts.signIns} sign-ins ${at('sign-ins').rssMb} MB (< ${RSS_TARGET_MB}: ${said(met.rssAfterSignIns)})\n` +
        `RSS after ${opts.tenants} tenants served ${at('served').rssMb} MB (< ${RSS_TARGET_MB}: ${said(met.rssAfterServed)})\n`,
    );
    return {
      benchmark: 'memory',
      machine: await machineFacts(b.root),
      options: opts,
      fleet,
      phases: rows,
      cpuUsPerRequest,
      perTenantKb: perTenant,
      targets: { rssMbAfterSignInsUnder: RSS_TARGET_MB, rssMbAfterServedUnder: RSS_TARGET_MB, met },
    };
  } finally {
    await b.cleanup();
  }
}

/** Sends one request per tenant, `concurrency` at a time; counts the answers that are not 200. */
async function eachTenant(tenants: Tenant[], concurrency: number, send: (t: Tenant) => Promise<Response>) {
  const limit = pLimit(concurrency);
  let failed = 0;
  const t0 = performance.now();
  await Promise.all(
    tenants.map((t) =>
      limit(async () => {
        const res = await send(t);
        await res.arrayBuffer();
        if (res.status !== 200) failed++;
      }),
    ),
  );
  return { n: tenants.length, failed, s: round1((performance.now() - t0) / 1000) };
}

/** The server's memory now: RSS and its anonymous part from /proc, V8 heap and external from `/metrics`. MB. */
async function memoryOf(server: ServerProcess): Promise<Omit<Phase, 'phase' | 'detail'>> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const mb = (bytes: number) => round1(bytes / 1_048_576);
  let anonKb = 0;
  try {
    anonKb = Number(/^Anonymous:\s+(\d+)/m.exec(readFileSync(`/proc/${server.pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
  } catch {
    /* not Linux */
  }
  return {
    rssMb: server.rssMb(),
    anonMb: round1(anonKb / 1024),
    heapUsedMb: mb(metric(text, 'silo_nodejs_heap_size_used_bytes')),
    externalMb: mb(metric(text, 'silo_nodejs_external_memory_bytes')),
  };
}
