/**
 * `npm run bench -- cli [--runs 10]`: wall time of the `silo` CLI as operators run it,
 * each command a fresh `node bin/silo.js` process (start-up, loading, connecting, work,
 * exit), `--runs` times in a row, in a scratch folder (no `.env` read):
 * - `silo --help` (target p50 < 150 ms);
 * - `silo tenants list --json` over the tenants created below;
 * - `silo tenants create <slug> --admin-password ... --json`, a new tenant each run
 *   (target p50 < 300 ms). The first create of a migration set builds the tenant schema
 *   script (src/provisioning/schema-script.ts) and stores it in the catalog; it runs once
 *   before the timed runs, as any installation's first create does, and is reported apart.
 * p50/p95/max ms per command, each target met/missed. The targets are for an idle
 * machine: on a shared one, compare runs of the same moment. Everything lives under a
 * private `bench_<id>` prefix, dropped at the end.
 */
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { benchEnv, latencies, machineFacts, parseArgs, printTable, ROOT } from './common.js';

const ADMIN_PASSWORD = 'bench-admin-password-123';
const TARGETS = { helpMsP50: 150, createMsP50: 300 };

/** What one `silo` process did: exit code, wall ms, output. */
export interface CliRun {
  code: number | null;
  wallMs: number;
  stdout: string;
  stderr: string;
}

/** Runs the `silo` CLI with `env` only (in a scratch folder: no `.env` file is read); times the process; killed on `signal`. */
export function runCli(args: string[], env: Record<string, string>, signal: AbortSignal): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [`${ROOT}bin/silo.js`, ...args], {
      cwd: tmpdir(),
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      signal,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-8000)));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, wallMs: Math.round((performance.now() - t0) * 10) / 10, stdout, stderr }));
  });
}

export async function run(argv: string[]): Promise<unknown> {
  const opts = parseArgs(argv, { runs: 10 });
  if (!Number.isInteger(opts.runs) || opts.runs < 1) throw new Error('--runs must be a positive integer');
  const b = await benchEnv();
  try {
    /** Runs `args(i)` `opts.runs` times; a run that exits non-zero stops the benchmark. */
    const timed = async (args: (i: number) => string[]) => {
      const ms: number[] = [];
      for (let i = 0; i < opts.runs; i++) {
        const r = await runCli(args(i), b.env, b.signal);
        if (r.code !== 0) throw new Error(`silo ${args(i).join(' ')} exited ${r.code}: ${r.stderr.slice(-500)}`);
        ms.push(r.wallMs);
      }
      return latencies(ms);
    };
    const create = (slug: string) => ['tenants', 'create', slug, '--admin-password', ADMIN_PASSWORD, '--json'];
    const first = await runCli(create('cli-first'), b.env, b.signal);
    if (first.code !== 0) throw new Error(`the first create exited ${first.code}: ${first.stderr.slice(-500)}`);
    const help = await timed(() => ['--help']);
    const createMs = await timed((i) => create(`cli-t${String(i).padStart(4, '0')}`));
    const list = await timed(() => ['tenants', 'list', '--json']);
    const verdict = (p50: number | null, target: number) => (p50 !== null && p50 < target ? 'met' : 'missed');
    const out = {
      benchmark: 'cli',
      machine: await machineFacts(b.root),
      options: opts,
      firstCreateMs: first.wallMs,
      help,
      tenantsList: list,
      tenantsCreate: createMs,
      targets: TARGETS,
      met: { help: verdict(help.p50, TARGETS.helpMsP50), create: verdict(createMs.p50, TARGETS.createMsP50) },
    };
    printTable(
      ['command (wall ms)', 'runs', 'p50', 'p95', 'max', 'target p50', 'verdict'],
      [
        ['silo --help', help.n, help.p50, help.p95, help.max, `< ${TARGETS.helpMsP50}`, out.met.help],
        ['silo tenants list --json', list.n, list.p50, list.p95, list.max, '-', '-'],
        ['silo tenants create', createMs.n, createMs.p50, createMs.p95, createMs.max, `< ${TARGETS.createMsP50}`, out.met.create],
        ['first create (builds the schema script)', 1, first.wallMs, null, null, '-', '-'],
      ],
    );
    return out;
  } finally {
    await b.cleanup();
  }
}
