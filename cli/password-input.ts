/**
 * How a password reaches `silo` without the command line (where `ps` and shell history
 * show it): `--password-stdin` reads it from standard input, as `docker login
 * --password-stdin` does. From a pipe or a file, the whole input is the password, less one
 * trailing newline (`\n` or `\r\n`); on a terminal, the operator types it twice at a prompt
 * that does not echo. The prompt and the stdin reader are this one helper.
 */
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { ValidationError } from '../src/lib/errors.js';

/** Help text of a `--password <password>`-style option. */
export const UNSAFE_PASSWORD_HELP = 'UNSAFE on shared machines: visible to other users in `ps` and kept in shell history; prefer';

/** Reads all of stdin as UTF-8, less one trailing newline. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Asks once on stderr with echo off (readline over a muted output). */
function askHidden(question: string): Promise<string> {
  let muted = false;
  const output = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (!muted) process.stderr.write(chunk);
      cb();
    },
  });
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  return new Promise((resolve, reject) => {
    rl.once('close', () => reject(new ValidationError('no password was typed', { field: 'password' }, 'PASSWORD_REQUIRED')));
    rl.question(question, (answer) => {
      rl.removeAllListeners('close');
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    });
    muted = true;
  });
}

/**
 * The password a command was given: the option's value, or stdin with `fromStdin`.
 * @param o.given value of `--password`/`--admin-password` (unsafe, still accepted)
 * @param o.fromStdin `--password-stdin`/`--admin-password-stdin` was given
 * @param o.option the option's name, for messages (e.g. `--password`)
 * @returns undefined when neither was given (the command then generates one)
 * @throws ValidationError (exit 2) `PASSWORD_OPTIONS_CONFLICT` when both are given;
 *         `PASSWORD_REQUIRED` when stdin is empty or the prompt is left; `PASSWORD_MISMATCH`
 *         when the two typed passwords differ
 */
export async function passwordFrom(o: { given?: string; fromStdin?: boolean; option: string }): Promise<string | undefined> {
  if (!o.fromStdin) return o.given;
  if (o.given !== undefined) throw new ValidationError(`give ${o.option} or ${o.option}-stdin, not both`, { field: o.option }, 'PASSWORD_OPTIONS_CONFLICT');
  let password: string;
  if (process.stdin.isTTY) {
    password = await askHidden('Password: ');
    if ((await askHidden('Password again: ')) !== password) throw new ValidationError('the two passwords differ', { field: o.option }, 'PASSWORD_MISMATCH');
  } else {
    password = await readStdin();
  }
  if (password === '') throw new ValidationError(`${o.option}-stdin: standard input held no password`, { field: o.option }, 'PASSWORD_REQUIRED');
  return password;
}
