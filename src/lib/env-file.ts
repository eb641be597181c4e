/**
 * `silo init`: writes the secrets a Silo installation needs into a `.env` file, without
 * ever replacing a value that is already there. The logic is here, as a function that
 * returns what it did; `cli/init.ts` prints it.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseDotenv } from 'dotenv';

/** The variables `silo init` provides, with how a fresh value is made. */
export const INIT_SECRETS = {
  /** 32 random bytes, base64: the AES-256-GCM key of secrets at rest. */
  SILO_SECRET_KEY: () => randomBytes(32).toString('base64'),
  /** 48 random bytes, base64url (64 characters): the HS256 signing key of tokens (>= 32 bytes). */
  SILO_JWT_SECRET: () => randomBytes(48).toString('base64url'),
} as const;

/** A variable `silo init` provides. */
export type InitSecret = keyof typeof INIT_SECRETS;

/** What {@link initEnvFile} did. Never carries a secret value. */
export interface InitReport {
  /** Absolute path of the `.env` file. */
  path: string;
  /** True when the file did not exist before. */
  created: boolean;
  /** Variables given a fresh value now. */
  written: InitSecret[];
  /** Variables that already had a value in the file (left as they were). */
  kept: InitSecret[];
  /** Variables set in the environment: not written, so the file cannot disagree with them. */
  fromEnvironment: InitSecret[];
  /** True when the file's mode was narrowed to 0600. */
  madePrivate: boolean;
}

const ASSIGNMENT = (name: string) => new RegExp(`^[ \\t]*(?:export[ \\t]+)?${name}[ \\t]*=[ \\t]*(?:""|'')?[ \\t]*$`, 'm');

/**
 * Ensures `<cwd>/.env` has `SILO_SECRET_KEY` and `SILO_JWT_SECRET`. A variable with a
 * value in the file is kept; a variable set (non-empty) in `env` is not written; any
 * other is generated and appended (or fills its empty `NAME=` line). Every other byte of
 * an existing file is kept. The file is written as a temporary file with mode 0600, then
 * renamed over `.env` (so no other process ever reads a half-written file), and an
 * existing file holding secrets is narrowed to 0600.
 * @param cwd directory of the `.env` file
 * @param env the process environment (only whether the variables are set is read)
 * @throws the `fs` error when the file cannot be read or written
 */
export function initEnvFile(cwd: string, env: Record<string, string | undefined>): InitReport {
  const path = resolve(cwd, '.env');
  const created = !existsSync(path);
  const before = created ? '' : readFileSync(path, 'utf8');
  const looseMode = !created && (statSync(path).mode & 0o077) !== 0;
  const values = parseDotenv(before);
  const report: InitReport = { path, created, written: [], kept: [], fromEnvironment: [], madePrivate: false };
  let text = before;
  const appended: string[] = [];
  for (const name of Object.keys(INIT_SECRETS) as InitSecret[]) {
    if (env[name]) {
      report.fromEnvironment.push(name);
    } else if (values[name]) {
      report.kept.push(name);
    } else {
      const line = `${name}=${INIT_SECRETS[name]()}`;
      const empty = ASSIGNMENT(name);
      if (empty.test(text)) text = text.replace(empty, line);
      else appended.push(line);
      report.written.push(name);
    }
  }
  if (appended.length) {
    const sep = text === '' || text.endsWith('\n') ? '' : '\n';
    text = `${text}${sep}# Written by \`silo init\`: secrets, keep this file private and out of version control.\n${appended.join('\n')}\n`;
  }
  if (report.written.length) {
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    writeFileSync(tmp, text, { mode: 0o600, flag: 'wx' });
    renameSync(tmp, path);
    report.madePrivate = looseMode;
  } else if (looseMode && report.kept.length) {
    chmodSync(path, 0o600);
    report.madePrivate = true;
  }
  return report;
}
