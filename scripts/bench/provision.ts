/**
 * `npm run bench -- provision [--tenants 100] [--concurrencies 1,4]`: how fast Silo
 * creates tenants, against plain SQL doing the same DDL.
 *
 * - silo: at each concurrency (p-limit), `--tenants` tenants are created through
 *   `createTenant` (the service behind `silo tenants create`), with an admin password,
 *   which is hashed with argon2id as in production. Each call is timed: p50/p95/max ms per
 *   tenant, and tenants/s over the wall time of the batch. The operation steps are timed
 *   too (catalog, database, user, migrations, seed, activate, finish = closing the
 *   operation), by wrapping `operations.step` of the bench's context, so every tenant
 *   says where its time went; and CPU used per tenant by this process and by MySQL.
 * - raw: the final state of one tenant Silo made (`SHOW CREATE TABLE` of every table,
 *   `schema_migrations` and the rows its migrations wrote; not the seeded admin, whose
 *   cost is the argon2 hash) is replayed on `--tenants` fresh databases
 *   `<prefix>raw_c<c>_<i>`: CREATE DATABASE, the CREATE TABLEs and INSERTs between
 *   FOREIGN_KEY_CHECKS=0/1, CREATE USER with a random password, GRANT SELECT, INSERT,
 *   UPDATE, DELETE; one admin connection per worker, at the same concurrencies.
 * - `silo_vs_raw_p50`: silo p50 / raw p50 at concurrency 1 (target <= 2, issue 14; it was 3 before);
 *   `secondsFor1000AtC4`: measured when `--tenants 1000`, else 1000 / `tenantsPerSecAtC4`
 *   (target < 60 s); `argon2HashMs`: median of 5 `hashPassword` calls alone.
 * Everything lives under a private `bench_<id>` prefix, dropped at the end.
 */
import pLimit from 'p-limit';
import type { SiloContext } from '../../src/context.js';
import { hashPassword } from '../../src/lib/passwords.js';
import { generatePassword } from '../../src/lib/secrets.js';
import { createTenant } from '../../src/provisioning/tenants-service.js';
import { benchEnv, cpuMsOf, type BenchEnv, latencies, machineFacts, mysqlPid, parseArgs, printTable, round1 } from './common.js';
import { adminConnection, applyTemplate, readTemplate, type DatabaseTemplate } from './raw-tenant.js';

const ADMIN_PASSWORD = 'bench-admin-password-123';
/** Steps of a create operation, in order, then `finish` (closing the operation, releasing the lock). */
const STEPS = ['catalog', 'database', 'user', 'migrations', 'seed', 'activate', 'finish'] as const;

/** What one batch (one kind, one concurrency) measured. */
interface Batch {
  concurrency: number;
  n: number;
  p50: number | null;
  p95: number | null;
  max: number | null;
  tenantsPerSec: number;
  wallMs: number;
  failures: number;
  firstError?: string;
  /** CPU ms per tenant of this process (all threads: argon2 runs on libuv's pool) and of MySQL (null when not local). */
  cpuMsPerTenant: { bench: number; mysql: number | null };
}

/** Target of silo p50 / raw DDL p50 per tenant at concurrency 1 (issue 14). */
const RATIO_TARGET = 2;

export async function run(argv: string[]): Promise<unknown> {
  const opts = parseArgs(argv, { tenants: 100, concurrencies: '1,4' });
  const concurrencies = opts.concurrencies.split(',').map(Number);
  if (!(opts.tenants >= 1) || concurrencies.some((c) => !Number.isInteger(c) || c < 1))
    throw new Error('--tenants and --concurrencies must be positive integers');
  const b = await benchEnv();
  try {
    const dbPid = mysqlPid();
    const marks = recordSteps(b.ctx);
    const silo: Batch[] = [];
    const steps: Record<string, Record<string, number | null>> = {};
    let firstDatabase: string | undefined;
    for (const c of concurrencies) {
      const perStep = new Map<string, number[]>(STEPS.map((s) => [s, []]));
      const batch = await timeBatch(opts.tenants, c, dbPid, b.signal, async (i) => {
        const t0 = performance.now();
        const r = await createTenant(b.ctx, { slug: `c${c}-t${String(i).padStart(4, '0')}`, adminPassword: ADMIN_PASSWORD }, 'bench');
        const end = performance.now();
        let prev = t0;
        for (const [step, at] of marks.get(r.operationId) ?? []) {
          perStep.get(step)?.push(at - prev);
          prev = at;
        }
        perStep.get('finish')!.push(end - prev);
        marks.delete(r.operationId);
        firstDatabase ??= r.tenant.databaseName;
        return end - t0;
      });
      silo.push(batch);
      steps[`c${c}`] = Object.fromEntries([...perStep].map(([s, ms]) => [s, latencies(ms).p50]));
    }
    if (!firstDatabase) throw new Error('no tenant was created: nothing to read the schema from');
    const template = await withConnection((conn) => readTemplate(conn, firstDatabase!, (table) => table !== 'users'));
    const raw: Batch[] = [];
    for (const c of concurrencies) raw.push(await rawBatch(b, template, opts.tenants, c, dbPid));
    const hashes: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await hashPassword(ADMIN_PASSWORD);
      hashes.push(performance.now() - t0);
    }
    const argon2HashMs = latencies(hashes).p50;

    const at = (list: Batch[], c: number) => list.find((x) => x.concurrency === c);
    const s1 = at(silo, 1);
    const r1 = at(raw, 1);
    const s4 = at(silo, 4);
    const ratio = s1?.p50 && r1?.p50 ? Math.round((s1.p50 / r1.p50) * 100) / 100 : null;
    const measured1000 = opts.tenants === 1000 && s4 !== undefined;
    const secondsFor1000AtC4 = s4 ? round1(measured1000 ? s4.wallMs / 1000 : 1000 / s4.tenantsPerSec) : null;
    const out = {
      benchmark: 'provision',
      machine: await machineFacts(b.root),
      options: { ...opts, concurrencies },
      schema: {
        tables: template.tables.length,
        migrations: template.tables.find((t) => t.name === 'schema_migrations')?.rows.length ?? 0,
        rowsCopiedByRaw: template.tables.reduce((n, t) => n + t.rows.length, 0),
      },
      silo,
      raw,
      silo_vs_raw_p50: ratio,
      tenantsPerSecAtC4: s4?.tenantsPerSec ?? null,
      secondsFor1000AtC4,
      secondsFor1000AtC4Measured: measured1000,
      stepsMsP50: steps,
      argon2HashMs,
      targets: {
        silo_vs_raw_p50: { bound: RATIO_TARGET, met: ratio !== null && ratio <= RATIO_TARGET },
        secondsFor1000AtC4: { bound: 60, met: secondsFor1000AtC4 !== null && secondsFor1000AtC4 < 60, measured: measured1000 },
      },
    };
    const row = (kind: string, x: Batch) => [
      kind,
      x.concurrency,
      x.n,
      x.p50,
      x.p95,
      x.max,
      x.tenantsPerSec,
      round1(x.wallMs / 1000),
      x.failures,
      x.cpuMsPerTenant.bench,
      x.cpuMsPerTenant.mysql,
    ];
    printTable(
      ['kind', 'conc.', 'tenants', 'p50 ms', 'p95 ms', 'max ms', 'tenants/s', 'wall s', 'failed', 'CPU ms/tenant bench', 'CPU ms/tenant MySQL'],
      [...silo.map((x) => row('silo', x)), ...raw.map((x) => row('raw', x))],
    );
    printTable(
      ['step (p50 ms)', ...Object.keys(steps)],
      STEPS.map((s) => [s, ...Object.values(steps).map((v) => v[s] ?? null)]),
    );
    process.stderr.write(
      `silo/raw p50 at c=1: ${ratio ?? 'n/a'} (target <= ${RATIO_TARGET}: ${ratio !== null && ratio <= RATIO_TARGET ? 'met' : 'missed'}); 1,000 tenants at c=4: ${secondsFor1000AtC4 ?? 'n/a'} s ${measured1000 ? 'measured' : 'projected'} (target < 60); argon2 hash alone: ${argon2HashMs} ms\n`,
    );
    return out;
  } finally {
    await b.cleanup();
  }
}

/**
 * Runs `n` timed jobs at concurrency `c`; a failed job is counted, not timed. Once
 * `signal` is aborted, no job starts.
 * @param job returns the ms the job took
 */
async function timeBatch(n: number, c: number, dbPid: number, signal: AbortSignal, job: (i: number) => Promise<number>): Promise<Batch> {
  const limit = pLimit(c);
  const times: number[] = [];
  const errors: string[] = [];
  const cpu0 = process.cpuUsage();
  const db0 = cpuMsOf(dbPid);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      limit(async () => {
        try {
          signal.throwIfAborted();
          times.push(await job(i));
        } catch (err) {
          errors.push((err as Error).message);
        }
      }),
    ),
  );
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const done = Math.max(times.length, 1);
  return {
    concurrency: c,
    ...latencies(times),
    tenantsPerSec: round1((times.length * 1000) / wallMs),
    wallMs: Math.round(wallMs),
    failures: errors.length,
    ...(errors.length ? { firstError: errors[0]!.slice(0, 300) } : {}),
    cpuMsPerTenant: { bench: round1((cpu.user + cpu.system) / 1000 / done), mysql: dbPid ? round1((cpuMsOf(dbPid) - db0) / done) : null },
  };
}

/** The plain-SQL baseline at concurrency `c`: one admin connection per worker, opened before the clock starts. */
async function rawBatch(b: BenchEnv, template: DatabaseTemplate, n: number, c: number, dbPid: number): Promise<Batch> {
  const conns = await Promise.all(Array.from({ length: Math.min(c, n) }, () => adminConnection()));
  const free = [...conns];
  const stop = () => conns.forEach((conn) => conn.destroy());
  b.signal.addEventListener('abort', stop);
  const host = b.config.tenantDbUserHost;
  try {
    return await timeBatch(n, c, dbPid, b.signal, async (i) => {
      const conn = free.pop()!;
      try {
        const name = `bench_${b.id}_raw_c${c}_${String(i).padStart(4, '0')}`;
        const t0 = performance.now();
        await applyTemplate(conn, { database: name, user: name, host, password: generatePassword() }, template);
        return performance.now() - t0;
      } finally {
        free.push(conn);
      }
    });
  } finally {
    b.signal.removeEventListener('abort', stop);
    if (!b.signal.aborted) await Promise.all(conns.map((conn) => conn.end()));
  }
}

async function withConnection<T>(fn: (conn: Awaited<ReturnType<typeof adminConnection>>) => Promise<T>): Promise<T> {
  const conn = await adminConnection();
  try {
    return await fn(conn);
  } finally {
    await conn.end();
  }
}

/**
 * Notes when each step of each operation completes (after its `operations` row is
 * updated), by wrapping the context's `operations.step`.
 * @returns operation id -> [step, performance.now()] in order
 */
function recordSteps(ctx: SiloContext): Map<number, Array<[string, number]>> {
  const marks = new Map<number, Array<[string, number]>>();
  const ops = ctx.catalog.operations;
  const step = ops.step.bind(ops);
  ops.step = async (id, name, trx) => {
    await step(id, name, trx);
    let list = marks.get(id);
    if (!list) marks.set(id, (list = []));
    list.push([name, performance.now()]);
  };
  return marks;
}
