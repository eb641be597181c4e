/**
 * Shared machinery of the benchmarks (`npm run bench -- <name>`): a private catalog and
 * tenant prefix named `bench_*` (dropped at the end, also on Ctrl-C), Silo servers run
 * as child processes (`silo serve`), load from autocannon in a separate process, MySQL
 * figures, and the output contract: a human table on stderr, exactly one JSON object on
 * stdout.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Table from 'cli-table3';
import type { Knex } from 'knex';
import { pino } from 'pino';
import { migrateCatalog } from '../../src/catalog/db.js';
import { DEFAULT_SERVER_NAME } from '../../src/catalog/servers.js';
import { loadConfig, parseMysqlUrl, type Config } from '../../src/config.js';
import { createContext, type SiloContext } from '../../src/context.js';
import { createMysqlKnex } from '../../src/lib/knex.js';

/** What Silo reads of autocannon's `--json` summary. */
interface AutocannonSummary {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}
/** Repository root. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** MySQL server the benchmarks use (admin). */
export const MYSQL_URL = 'mysql://root:@127.0.0.1:3306';
/** JWT secret of benchmark servers. */
export const BENCH_JWT_SECRET = 'bench-jwt-secret-0123456789-abcdefghijklmnop';

/** A private Silo environment for one benchmark run. */
export interface BenchEnv {
  id: string;
  env: Record<string, string>;
  config: Config;
  ctx: SiloContext;
  root: Knex;
  /** Aborted on Ctrl-C or SIGTERM, while cleanup runs: loops stop starting new work. */
  signal: AbortSignal;
  /** Drops everything `bench_<id>*`; calling it again waits for the same cleanup. */
  cleanup(): Promise<void>;
}

/** Creates `bench_<id>` catalog and prefix, migrates it, and arranges cleanup on exit and Ctrl-C. */
export async function benchEnv(extra: Record<string, string> = {}): Promise<BenchEnv> {
  const id = randomBytes(3).toString('hex');
  const server = parseMysqlUrl(MYSQL_URL);
  const env = {
    NODE_ENV: 'production',
    SILO_SECRET_KEY: randomBytes(32).toString('base64'),
    SILO_JWT_SECRET: BENCH_JWT_SECRET,
    SILO_CATALOG_URL: `mysql://${server.user}:@${server.host}:${server.port}/bench_${id}`,
    SILO_TENANT_DB_URL: `mysql://${server.user}:@${server.host}:${server.port}`,
    SILO_TENANT_DB_PREFIX: `bench_${id}_`,
    LOG_LEVEL: 'warn',
    ...extra,
  };
  const config = loadConfig(env);
  await migrateCatalog(config);
  const ctx = createContext(config, benchLogger());
  await ctx.catalog.servers.upsert(DEFAULT_SERVER_NAME, config.tenantDb);
  const root = createMysqlKnex(server, { min: 0, max: 2 });
  const aborter = new AbortController();
  const sweep = async () => {
    const dbs: Array<{ SCHEMA_NAME: string }> = await root('information_schema.SCHEMATA').select('SCHEMA_NAME');
    for (const d of dbs)
      if (d.SCHEMA_NAME === `bench_${id}` || d.SCHEMA_NAME.startsWith(`bench_${id}_`)) await root.raw('DROP DATABASE IF EXISTS ??', [d.SCHEMA_NAME]);
    const users: Array<{ User: string; Host: string }> = await root('mysql.user').select('User', 'Host');
    for (const u of users) if (u.User.startsWith(`bench_${id}_`)) await root.raw('DROP USER IF EXISTS ?@?', [u.User, u.Host]);
  };
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      for (const c of children) c.kill('SIGKILL');
      await ctx.close().catch(() => undefined);
      await sweep();
      // Work in flight when the signal came may still have created something: once more.
      if (aborter.signal.aborted) {
        await new Promise((r) => setTimeout(r, 1000));
        await sweep();
      }
      await root.destroy();
    })());
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n${sig}: cleaning up bench_${id}...\n`);
      aborter.abort(new Error(`interrupted by ${sig}`));
      void cleanup().finally(() => process.exit(130));
    });
  }
  return { id, env, config, ctx, root, signal: aborter.signal, cleanup };
}

const children = new Set<ChildProcess>();

/** A Silo API child process (`silo serve`). */
export interface ServerProcess {
  url: string;
  pid: number;
  /** Resident set size of the server, MB (from /proc). */
  rssMb(): number;
  stop(): Promise<void>;
}

/** Starts `silo serve` on `port` with `env` (and node options such as `--cpu-prof`); resolves when it listens. */
export function startSilo(env: Record<string, string>, port: number, nodeArgs: string[] = [], root = ROOT): Promise<ServerProcess> {
  return startProcess(process.execPath, [...nodeArgs, `${root}bin/silo.js`, 'serve'], { ...env, PORT: String(port), HOST: '127.0.0.1' }, port);
}

/** Starts any node script serving HTTP on `port`; resolves when `GET /health` answers. */
export async function startProcess(cmd: string, args: string[], env: Record<string, string>, port: number): Promise<ServerProcess> {
  const child = spawn(cmd, args, { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  const end = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}): ${stderr}`);
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {
      /* not yet listening */
    }
    if (Date.now() > end) throw new Error(`server did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    pid: child.pid!,
    rssMb: () => rssOf(child.pid!),
    stop: () =>
      new Promise<void>((resolve) => {
        children.delete(child);
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
      }),
  };
}

/** CPU time (user + system) a process has used so far, ms (from /proc/<pid>/stat; clock ticks of 10 ms). */
export function cpuMsOf(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return 0;
  }
}

/** Pid of the local MySQL/MariaDB server (mariadbd or mysqld), or 0. */
export function mysqlPid(): number {
  for (const name of ['mariadbd', 'mysqld']) {
    try {
      const out = execFileSync('pidof', ['-s', name], { encoding: 'utf8' }).trim();
      if (out) return Number(out);
    } catch {
      /* not running under that name */
    }
  }
  return 0;
}

function rssOf(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return Math.round(kb / 102.4) / 10;
  } catch {
    return 0;
  }
}

/** What autocannon measured. Latencies in ms. */
export interface LoadResult {
  requestsPerSec: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  total: number;
}

/**
 * Runs autocannon in a separate process (`load.ts`), `headers` sent on every request.
 * @param opts.connections concurrent connections; `durationS` seconds
 */
export function runLoad(url: string, opts: { connections: number; durationS: number; headers?: Record<string, string> }): Promise<LoadResult> {
  return runLoadMulti(url, { connections: opts.connections, durationS: opts.durationS, headerSets: [opts.headers ?? {}] });
}

/**
 * Runs autocannon in a separate process (`load.ts`) with headers picked at random per
 * request from `headerSets` (e.g. one tenant and its token each): uniformly, or with the
 * relative `weights` (one per set) when given.
 */
export async function runLoadMulti(
  url: string,
  opts: { connections: number; durationS: number; headerSets: Array<Record<string, string>>; weights?: number[] },
): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'silo-load-'));
  const file = join(dir, 'load.json');
  writeFileSync(file, JSON.stringify({ url, ...opts }));
  try {
    return await new Promise<LoadResult>((resolve, reject) => {
      const child = spawn(process.execPath, [`${ROOT}dist/scripts/bench/load.js`, file], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      child.on('error', reject);
      child.on('close', (code) => {
        try {
          const j = JSON.parse(out) as AutocannonSummary;
          resolve({
            requestsPerSec: Math.round(j.requests.average),
            p50: j.latency.p50,
            p99: j.latency.p99,
            non2xx: j.non2xx,
            errors: j.errors + j.timeouts,
            total: j.requests.total,
          });
        } catch {
          reject(new Error(`load process failed (${code}): ${out.slice(0, 300)} ${err.slice(0, 500)}`));
        }
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Facts about the machine and versions, for every benchmark's JSON. */
export async function machineFacts(root: Knex) {
  const [rows] = (await root.raw('SELECT VERSION() AS v')) as [Array<{ v: string }>, unknown];
  return { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, mysql: String(rows[0]!.v), date: new Date().toISOString() };
}

/** The logger of bench contexts: warnings and errors only, on stderr (stdout holds the JSON). */
export function benchLogger() {
  return pino({ level: 'warn' }, pino.destination(2));
}

/** Durations summarized: nearest-rank p50/p95 and max, ms with one decimal. */
export function latencies(ms: number[]): { n: number; p50: number | null; p95: number | null; max: number | null } {
  const s = [...ms].sort((a, b) => a - b);
  const at = (p: number) => (s.length ? round1(s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!) : null);
  return { n: s.length, p50: at(50), p95: at(95), max: s.length ? round1(s[s.length - 1]!) : null };
}

/** Rounds to one decimal. */
export function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

/** Prints a table on stderr. */
export function printTable(head: string[], rows: Array<Array<string | number | null>>): void {
  const t = new Table({ head, style: { head: [], border: [] } });
  for (const r of rows) t.push(r.map((c) => (c === null ? '' : String(c))));
  process.stderr.write(`${t.toString()}\n`);
}

/** Parses `--name value` options with defaults (numbers stay numbers). */
export function parseArgs<T extends Record<string, string | number>>(argv: string[], defaults: T): T {
  const out: Record<string, string | number> = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)$/.exec(argv[i]!);
    if (!m) throw new Error(`unexpected argument ${argv[i]}`);
    const key = m[1]!.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!(key in defaults)) throw new Error(`unknown option --${m[1]}; options: ${Object.keys(defaults).join(', ')}`);
    const v = argv[++i];
    if (v === undefined) throw new Error(`--${m[1]} needs a value`);
    out[key] = typeof defaults[key] === 'number' ? Number(v) : v;
    if (Number.isNaN(out[key])) throw new Error(`--${m[1]} must be a number`);
  }
  return out as T;
}

/** Reads one counter from a Prometheus text page. */
export function metric(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}
