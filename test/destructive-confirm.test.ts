/**
 * Destructive commands without a terminal (`delete`, `recreate`, `restore`): a script
 * names the tenant it means with `--confirm <slug>`; `--yes` is enough only when a backup
 * is taken first; a wrong `--confirm` or a missing flag is refused at once (exit 2) with
 * nothing changed, and no command ever waits for input it cannot get (stdin open, no TTY).
 */
import { spawn } from 'node:child_process';
import t from 'tap';
import { makeTenant } from './fixtures/app.js';
import { ROOT, runCli, runCliJson, setupSilo, type CliResult } from './fixtures/env.js';
import { mysqlState } from './fixtures/mysql-state.js';
import { setupS3 } from './fixtures/s3.js';

const s3 = await setupS3(t);
const { ctx, env, names } = await setupSilo(t, s3.env);
const envNoS3 = { ...env, SILO_S3_BUCKET: '' };

/** Runs the CLI with stdin left open and never written (a CI job without a terminal); killed after `limitMs`. */
function runCliStdinOpen(args: string[], e: Record<string, string>, limitMs = 15_000): Promise<CliResult & { killed: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [`${ROOT}bin/silo.js`, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...e },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, limitMs);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      child.stdin.destroy();
      resolve({ code, signal, stdout, stderr, killed });
    });
  });
}

const state = async (slug: string) => {
  const tenant = (await ctx.catalog.tenants.findBySlug(slug))!;
  const s = await mysqlState(tenant.databaseName, tenant.dbUser);
  const users = s.database ? Number((await ctx.admin.withTenantDatabase(tenant, (k) => k('users').count({ n: '*' }).first()))?.n) : 0;
  return { status: tenant.status, generation: tenant.generation, database: s.database, user: s.user, users };
};

await makeTenant(ctx, 'cf-del');
await makeTenant(ctx, 'cf-rec');
await makeTenant(ctx, 'cf-rst');
void names;

for (const verb of ['delete', 'recreate'] as const) {
  const slug = verb === 'delete' ? 'cf-del' : 'cf-rec';
  t.test(`${verb} --no-backup: refused at once (exit 2) unless --confirm names the tenant; nothing changed`, async (t) => {
    const before = await state(slug);
    t.ok(before.database);

    const yesOnly = await runCli(['tenants', verb, slug, '--yes', '--no-backup'], envNoS3);
    t.equal(yesOnly.code, 2, `--yes --no-backup: exit 2\n${yesOnly.stderr}`);
    t.match(yesOnly.stderr, new RegExp(`--confirm ${slug}`), 'the message names the missing flag with the slug');
    t.notMatch(yesOnly.stderr, /use --yes to skip/);
    t.notMatch(yesOnly.stderr, /Type "/, 'no question asked');

    const wrong = await runCli(['tenants', verb, slug, '--no-backup', '--confirm', 'cf-other'], envNoS3);
    t.equal(wrong.code, 2, `wrong --confirm: exit 2\n${wrong.stderr}`);
    t.match(wrong.stderr, /--confirm/);
    const wrongJson = await runCliJson<{ error: { code: string } }>(['tenants', verb, slug, '--no-backup', '--yes', '--confirm', 'CF-DEL'], envNoS3);
    t.equal(wrongJson.result.code, 2);
    t.equal(wrongJson.json.error.code, 'CONFIRMATION_MISMATCH');

    const open = await runCliStdinOpen(['tenants', verb, slug, '--no-backup'], envNoS3);
    t.notOk(open.killed, 'no TTY, stdin open: does not wait for input');
    t.equal(open.code, 2, open.stderr);
    t.match(open.stderr, new RegExp(`--confirm ${slug}`));

    t.same(await state(slug), before, 'nothing changed by any refused run');

    const ok = await runCliJson<any>(['tenants', verb, slug, '--no-backup', '--confirm', slug], envNoS3);
    t.equal(ok.result.code, 0, ok.result.stderr);
    const after = await state(slug);
    if (verb === 'delete') t.match(after, { status: 'deleted', database: false, user: false });
    else t.match(after, { status: 'active', database: true, users: 1, generation: before.generation + 1 });
  });
}

t.test('recreate --yes with a backup still runs without a prompt', async (t) => {
  const r = await runCliJson<any>(['tenants', 'recreate', 'cf-rec', '--yes'], env);
  t.equal(r.result.code, 0, r.result.stderr);
  t.equal(r.json.tenant.status, 'active');
});

t.test('restore: --yes or --confirm <slug>; no terminal and neither flag, or a wrong slug, is refused at once with nothing changed', async (t) => {
  const backup = await runCliJson<any>(['tenants', 'backup', 'cf-rst'], env);
  t.equal(backup.result.code, 0, backup.result.stderr);
  const before = await state('cf-rst');

  const open = await runCliStdinOpen(['tenants', 'restore', 'cf-rst', '--latest'], env);
  t.notOk(open.killed, 'no TTY, stdin open: does not wait for input');
  t.equal(open.code, 2, open.stderr);
  t.match(open.stderr, /--yes|--confirm cf-rst/);

  const wrong = await runCli(['tenants', 'restore', 'cf-rst', '--latest', '--confirm', 'cf-del'], env);
  t.equal(wrong.code, 2, wrong.stderr);
  t.same(await state('cf-rst'), before, 'nothing changed');
  t.equal(
    (await ctx.catalog.operations.list({ tenantId: (await ctx.catalog.tenants.findBySlug('cf-rst'))!.id })).filter((o) => o.kind === 'restore').length,
    0,
  );

  const ok = await runCliJson<any>(['tenants', 'restore', 'cf-rst', '--latest', '--confirm', 'cf-rst'], env);
  t.equal(ok.result.code, 0, ok.result.stderr);
  t.ok(ok.json.preRestoreBackup, 'the pre-restore backup is always taken');
});
