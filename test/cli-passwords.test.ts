/**
 * Passwords reach `silo` without the command line: `--password-stdin` (and
 * `--admin-password-stdin`) read the password from standard input, trimming one trailing
 * newline (as `docker login --password-stdin`), so neither `ps` (the process's argv, read
 * here from /proc while the command waits for its input) nor shell history holds it; the
 * password signs in. Without any password option a strong password is still generated
 * and printed once. `--password` still works, and its help says it is unsafe. Giving both,
 * or an empty stdin, is a usage error (exit 2). (The hidden prompt on a TTY is not driven
 * here: the tests have no pseudo-terminal; it is the same reader with echo muted.)
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { ROOT, runCli } from './fixtures/env.js';
import { makeTenant, setupApp } from './fixtures/app.js';

const { app, ctx, env } = await setupApp(t);
await makeTenant(ctx, 'clipw');
const SECRET = 'stdin-only pässword 42';

/** Runs `silo args`, reads its argv from /proc once it waits on stdin, then writes `input`. */
function runWatched(args: string[], input: string): Promise<{ code: number | null; stdout: string; stderr: string; argv: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [`${ROOT}bin/silo.js`, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let argv = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, argv }));
    setTimeout(() => {
      void readFile(`/proc/${child.pid}/cmdline`, 'utf8')
        .then((c) => (argv = c.split('\0').join(' ')))
        .catch(() => (argv = '(gone)'))
        .finally(() => child.stdin.end(input));
    }, 300);
  });
}

const tenantLogin = async (email: string, password: string) =>
  (await app.inject({ method: 'POST', url: '/api/v1/auth/login', headers: { 'x-tenant': 'clipw' }, payload: { email, password } })).statusCode;
const platformLoginStatus = async (email: string, password: string) =>
  (await app.inject({ method: 'POST', url: '/platform/v1/auth/login', payload: { email, password } })).statusCode;

t.test('users add --password-stdin: the password is read from stdin (one trailing newline trimmed), never in argv', async (t) => {
  const r = await runWatched(['users', 'add', 'clipw', 'stdin@clipw.test', '--role', 'staff', '--password-stdin', '--json'], `${SECRET}\n`);
  t.equal(r.code, 0, r.stderr);
  t.match(r.argv, /users add clipw stdin@clipw.test/, 'argv was read while the command ran');
  t.notMatch(r.argv, SECRET, 'argv has no password');
  t.notMatch(r.stdout, SECRET, 'the output has no password');
  t.equal(await tenantLogin('stdin@clipw.test', SECRET), 200, 'the password, without the newline, signs in');
});

t.test('platform-users add --password-stdin and tenants create --admin-password-stdin', async (t) => {
  const p = await runWatched(['platform-users', 'add', 'ops-stdin@silo.test', '--role', 'operator', '--password-stdin', '--json'], `${SECRET}\r\n`);
  t.equal(p.code, 0, p.stderr);
  t.notMatch(p.argv, SECRET);
  t.equal(await platformLoginStatus('ops-stdin@silo.test', SECRET), 200, 'CRLF is trimmed too');
  const c = await runWatched(['tenants', 'create', 'clipw-two', '--admin-email', 'admin@clipw-two.test', '--admin-password-stdin', '--json'], SECRET);
  t.equal(c.code, 0, c.stderr);
  t.notMatch(c.argv, SECRET);
  t.notOk(JSON.parse(c.stdout).admin.password, 'no generated password is printed');
  // Made by another process: this app would learn of it at its next change poll; tell it now.
  app.tenantResolver.invalidate('clipw-two');
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/auth/login',
    headers: { 'x-tenant': 'clipw-two' },
    payload: { email: 'admin@clipw-two.test', password: SECRET },
  });
  t.equal(res.statusCode, 200, 'a stdin without newline is taken whole');
});

t.test('without a password option a password is still generated and printed once', async (t) => {
  const r = await runCli(['users', 'add', 'clipw', 'gen@clipw.test', '--role', 'staff', '--json'], env);
  t.equal(r.code, 0, r.stderr);
  const generated = JSON.parse(r.stdout).generatedPassword as string;
  t.ok(generated.length >= 12);
  t.equal(await tenantLogin('gen@clipw.test', generated), 200);
});

t.test('--password still works, and its help says it is unsafe; both at once or an empty stdin is a usage error', async (t) => {
  const r = await runCli(['users', 'add', 'clipw', 'argv@clipw.test', '--role', 'staff', '--password', SECRET, '--json'], env);
  t.equal(r.code, 0, r.stderr);
  t.equal(await tenantLogin('argv@clipw.test', SECRET), 200);
  for (const args of [
    ['users', 'add', '--help'],
    ['platform-users', 'add', '--help'],
    ['tenants', 'create', '--help'],
    ['tenants', 'recreate', '--help'],
  ]) {
    const help = (await runCli(args, env)).stdout.replace(/\s+/g, ' ');
    t.match(help, /password-stdin/, `${args.join(' ')} offers --…password-stdin`);
    t.match(help, /unsafe.*ps.*history/i, `${args.join(' ')} says --…password is unsafe`);
  }
  const both = await runCli(['users', 'add', 'clipw', 'both@clipw.test', '--role', 'staff', '--password', SECRET, '--password-stdin'], env, SECRET);
  t.equal(both.code, 2, both.stderr);
  const empty = await runCli(['users', 'add', 'clipw', 'empty@clipw.test', '--role', 'staff', '--password-stdin'], env, '\n');
  t.equal(empty.code, 2, empty.stderr);
  t.equal(await tenantLogin('empty@clipw.test', SECRET), 401, 'no user was made');
});
