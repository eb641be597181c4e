/**
 * Logical dumps and loads of one tenant database with the server's own client programs:
 * `mariadb-dump`/`mysqldump` and `mariadb`/`mysql`.
 *
 * Why the vendor tools and not a library: they are maintained with the server, know every
 * column type, charset and DDL form it has, and `--single-transaction` gives one
 * consistent InnoDB snapshot without locking tables (MySQL 8.4 §6.5.4 "mysqldump";
 * MariaDB "mariadb-dump"). The dump streams from the child's stdout, so nothing is held
 * in memory or written to disk. No npm package offers the same guarantees.
 *
 * Credentials go to the programs through a private option file (`--defaults-extra-file`,
 * mode 0600 in a 0700 temporary folder, removed when the program ends), never on the
 * command line (visible to `ps`) and never in a log (MySQL 8.4 §8.1.2.1 "End-User
 * Guidelines for Password Security").
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Config, MysqlUrl } from '../config.js';
import { SiloError } from '../lib/errors.js';
import { assertSafeIdentifier } from '../lib/identifiers.js';

/** The client programs in use. */
export interface MysqlTools {
  dump: string;
  client: string;
}

function onPath(names: string[]): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    for (const name of names) {
      const candidate = join(dir, name);
      try {
        accessSync(candidate, constants.X_OK);
        return candidate;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

/**
 * Finds the dump and client programs: `SILO_MYSQLDUMP_PATH`/`SILO_MYSQL_CLIENT_PATH`, else
 * the first of `mariadb-dump`, `mysqldump` (and `mariadb`, `mysql`) on `PATH`.
 * @throws SiloError `DUMP_TOOL_MISSING` naming what to install
 */
export function findMysqlTools(config: Pick<Config, 'mysqldumpPath' | 'mysqlClientPath'>): MysqlTools {
  const dump = config.mysqldumpPath ?? onPath(['mariadb-dump', 'mysqldump']);
  const client = config.mysqlClientPath ?? onPath(['mariadb', 'mysql']);
  if (!dump || !client) {
    throw new SiloError(
      'backups need the MySQL/MariaDB client programs (mariadb-dump or mysqldump, and mariadb or mysql): install the client package (Debian: mariadb-client) or set SILO_MYSQLDUMP_PATH and SILO_MYSQL_CLIENT_PATH',
      { code: 'DUMP_TOOL_MISSING', status: 503 },
    );
  }
  return { dump, client };
}

/** Quotes a value for a MySQL option file (double quotes; `\` and `"` escaped). */
function optionValue(v: string | number): string {
  return `"${String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** Writes a private option file for `url`; returns its path and a remover. */
function optionFile(url: MysqlUrl): { path: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'silo-my-'));
  const path = join(dir, 'client.cnf');
  const lines = [
    '[client]',
    `user=${optionValue(url.user)}`,
    `password=${optionValue(url.password)}`,
    `host=${optionValue(url.host)}`,
    `port=${url.port}`,
    'protocol=TCP',
  ];
  writeFileSync(path, `${lines.join('\n')}\n`, { mode: 0o600 });
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A running program: its output, and a promise of its successful end. */
export interface ToolRun {
  child: ChildProcess;
  /** Resolves when the program exits 0; rejects with its stderr otherwise. */
  done: Promise<void>;
}

function run(program: string, args: string[], url: MysqlUrl, stdio: Array<'pipe' | 'ignore'>): ToolRun {
  const file = optionFile(url);
  // --defaults-extra-file must be the first argument (MySQL 8.4 §6.2.2.3).
  const child = spawn(program, [`--defaults-extra-file=${file.path}`, ...args], { stdio: stdio as ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 8_000) stderr += d;
  });
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (err) => {
      file.remove();
      reject(err);
    });
    child.once('close', (code, signal) => {
      file.remove();
      if (code === 0) resolve();
      else
        reject(
          new Error(`${program.split('/').at(-1)} exited with ${signal ?? `code ${code}`}: ${stderr.trim().split('\n').slice(-3).join(' ') || '(no message)'}`),
        );
    });
  });
  done.catch(() => undefined);
  return { child, done };
}

/**
 * Starts a consistent logical dump of one database to the child's stdout: schema, data,
 * triggers, and every table (umzug's migrations table included). No `CREATE DATABASE`/
 * `USE`, so the dump loads into whatever database the loader names.
 * Options: `--single-transaction` (one snapshot, no table locks; InnoDB), `--quick` (row
 * by row, not buffered), `--hex-blob`, `--skip-dump-date`, utf8mb4.
 */
export function dumpDatabase(tools: MysqlTools, url: MysqlUrl, database: string): ToolRun & { stdout: Readable } {
  const args = [
    '--single-transaction',
    '--skip-lock-tables',
    '--quick',
    '--hex-blob',
    '--triggers',
    '--skip-dump-date',
    '--default-character-set=utf8mb4',
    '--',
    assertSafeIdentifier(database),
  ];
  const r = run(tools.dump, args, url, ['ignore', 'pipe', 'pipe']);
  return { ...r, stdout: r.child.stdout! };
}

/**
 * Loads SQL from `input` into `database` with the client program; resolves when the
 * program has run every statement and exited 0.
 * @throws Error with the client's message when a statement fails (the client stops there)
 */
export async function loadDatabase(tools: MysqlTools, url: MysqlUrl, database: string, input: Readable): Promise<void> {
  const r = run(tools.client, ['--batch', '--binary-mode', '--default-character-set=utf8mb4', `--database=${assertSafeIdentifier(database)}`], url, [
    'pipe',
    'ignore',
    'pipe',
  ]);
  const stdin = r.child.stdin!;
  // The client closing its stdin early (it failed) must not crash the process with EPIPE.
  stdin.on('error', () => undefined);
  input.on('error', (err) => r.child.kill('SIGTERM') && void err);
  input.pipe(stdin);
  const inputDone = new Promise<void>((resolve, reject) => {
    input.once('end', resolve);
    input.once('error', reject);
    input.once('close', () => resolve());
  });
  try {
    await Promise.all([r.done, inputDone]);
  } catch (err) {
    r.child.kill('SIGTERM');
    throw err instanceof Error ? err : new Error(String(err));
  }
}
