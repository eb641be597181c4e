/**
 * What every `silo` command shares: building the services from the configuration,
 * output (JSON on stdout with `--json`; tables on stdout; logs, progress and prompts on
 * stderr), confirmation prompts, and mapping errors to exit codes (0 ok, 1 failed, 2 usage).
 */
import { createRequire } from 'node:module';
import { userInfo } from 'node:os';
import { createInterface } from 'node:readline/promises';
import type TableType from 'cli-table3';
import { z } from 'zod';
import type { Config } from '../src/config.js';
import type { SiloContext } from '../src/context.js';
import { SiloError, ValidationError } from '../src/lib/errors.js';
import { parseInput } from '../src/lib/validation.js';
import { EXIT } from './exit.js';

export { EXIT };

/** Who runs the command, as recorded on operations: `cli:<os user>`. */
export function cliActor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli:unknown';
  }
}

/**
 * Loads the configuration (exit 2 with one line naming the variable when invalid).
 * The configuration, the context and the logger are imported when a command first needs
 * them, so that `silo --help` and usage errors load none of them (start-up time).
 */
export async function cliConfig(): Promise<Config> {
  const { loadConfig } = await import('../src/config.js');
  return loadConfig();
}

/**
 * Runs `fn` with the shared services, closing them afterwards.
 * The logger defaults to `warn` in the CLI (`LOG_LEVEL` overrides).
 */
export async function withContext<T>(fn: (ctx: SiloContext) => Promise<T>): Promise<T> {
  const config = await cliConfig();
  const [{ createLogger }, { createContext }] = await Promise.all([import('../src/lib/logger.js'), import('../src/context.js')]);
  const log = createLogger(config.logLevel ?? 'warn');
  const ctx = createContext(config, log);
  try {
    return await fn(ctx);
  } finally {
    await ctx.close();
  }
}

/** Parses command options with a zod schema (ValidationError -> exit 2). */
export function parseOptions<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  return parseInput(schema, value);
}

/** Writes one JSON document to stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Writes a line for people to stdout. */
export function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

/** Writes a line for people to stderr (notes, warnings). */
export function note(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** cli-table3 (CommonJS), loaded by the first table printed: `--json` output never loads it. */
let Table: typeof TableType | undefined;

/** Renders rows as a table on stdout. */
export function printTable(head: string[], rows: Array<Array<string | number | null | undefined>>): void {
  Table ??= createRequire(import.meta.url)('cli-table3') as typeof TableType;
  const table = new Table({ head, style: { compact: true, head: process.stdout.isTTY ? ['cyan'] : [], border: process.stdout.isTTY ? ['grey'] : [] } });
  for (const r of rows) table.push(r.map((c) => (c === null || c === undefined ? '' : String(c))));
  say(table.toString());
}

/** ISO-8601 UTC without ms for tables; empty for null. */
export function fmtTime(d: Date | null | undefined): string {
  return d ? d.toISOString().replace(/\.\d{3}Z$/, 'Z') : '';
}

/**
 * Asks the operator to type `expected` back (destructive actions).
 * @param skip the option that skips the question, for the refusal message (default `--yes`)
 * @throws SiloError `NOT_CONFIRMED` (exit 1) when the answer differs or stdin ends
 */
export async function confirmTyped(question: string, expected: string, skip = '--yes'): Promise<void> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: Boolean(process.stdin.isTTY) });
  let answer: string | undefined;
  try {
    answer = await new Promise<string | undefined>((resolve) => {
      rl.once('close', () => resolve(undefined));
      rl.question(`${question}\nType "${expected}" to confirm: `).then(resolve, () => resolve(undefined));
    });
  } finally {
    rl.close();
  }
  if (answer?.trim() !== expected) {
    throw new SiloError(`not confirmed: nothing was changed (use ${skip} to skip the question)`, { code: 'NOT_CONFIRMED', status: 400, exitCode: EXIT.failed });
  }
}

/**
 * Reports an error the way the caller asked (JSON on stdout with `--json`, else one line on
 * stderr) and returns the exit code.
 */
export async function reportError(err: unknown, json: boolean): Promise<number> {
  const [{ ConfigError }, { isConnectionError, MysqlErrno, mysqlErrno }] = await Promise.all([import('../src/config.js'), import('../src/lib/knex.js')]);
  let code = 'INTERNAL';
  let message = err instanceof Error ? err.message : String(err);
  let exitCode: number = EXIT.failed;
  let details: unknown;
  if (err instanceof ConfigError) {
    code = 'INVALID_CONFIGURATION';
    exitCode = EXIT.usage;
  } else if (err instanceof SiloError) {
    code = err.code;
    exitCode = err.exitCode;
    details = err.details;
  } else if (isConnectionError(err) || mysqlErrno(err) === MysqlErrno.ACCESS_DENIED) {
    code = 'DATABASE_UNREACHABLE';
    message = `cannot reach MySQL: ${message}`;
  } else if (mysqlErrno(err) === MysqlErrno.BAD_DB || mysqlErrno(err) === MysqlErrno.NO_SUCH_TABLE) {
    code = 'CATALOG_NOT_MIGRATED';
    message = `${message.replace(/^.* - /, '')}: is the catalog migrated? run \`silo catalog migrate\``;
  }
  if (json) printJson({ error: { code, message, ...(details ? { details } : {}) } });
  else process.stderr.write(`silo: ${message}${err instanceof ValidationError ? '' : code !== 'INTERNAL' ? ` [${code}]` : ''}\n`);
  return exitCode;
}

/** Shared zod pieces for options. */
export const opt = {
  /** A positive integer option given as a string. */
  int: (min: number, max: number) => z.coerce.number({ message: 'must be a number' }).int('must be a whole number').min(min).max(max),
};
