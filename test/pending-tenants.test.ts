/**
 * Pending tenants (issue 15): `silo tenants pending fill`, `tenants list` showing them
 * apart, fleet migrations including them, a kill while one is provisioned (repair
 * finishes it as pending, with no admin), a kill inside a claim after the admin was
 * written (the tenant stays pending and the next claim leaves exactly its own admin),
 * concurrent fills never passing the target, and `silo serve` refilling the pool.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import t from 'tap';
import { claimPendingTenant, countPendingTenants, fillPendingTenants } from '../src/provisioning/pending-tenants.js';
import { hashPassword } from '../src/lib/passwords.js';
import { ROOT, runCli, runCliJson, setupSilo } from './fixtures/env.js';
import { TEST_JWT_SECRET } from './fixtures/app.js';

const { ctx, env } = await setupSilo(t, { SILO_JWT_SECRET: TEST_JWT_SECRET });
const claimInput = async (slug: string) => ({
  slug,
  name: slug,
  plan: 'standard',
  adminEmail: `owner@${slug}.test`,
  adminFullName: null,
  passwordHash: await hashPassword('violet-tractor-orbit-91'),
  unverified: false,
});
const usersOf = async (slug: string) => {
  const tenant = (await ctx.catalog.tenants.findBySlug(slug))!;
  return ctx.admin.withTenantDatabase(tenant, (k) => k('users').orderBy('id').pluck('email'));
};

t.test('silo tenants pending fill provisions pending tenants; list shows them apart; bad --count is refused', async (t) => {
  const bad = await runCli(['tenants', 'pending', 'fill', '--count', '-1'], env);
  t.equal(bad.code, 2, bad.stderr);
  t.same(await countPendingTenants(ctx), { pending: 0, provisioning: 0 }, 'nothing made');
  const { result, json } = await runCliJson<any>(['tenants', 'pending', 'fill', '--count', '2'], env);
  t.equal(result.code, 0, result.stderr);
  t.match(json, { target: 2, ran: true, created: 2, pending: 2 });
  const again = await runCliJson<any>(['tenants', 'pending', 'fill', '--count', '2'], env);
  t.match(again.json, { created: 0, pending: 2 }, 'already full: nothing more');
  const list = await runCli(['tenants', 'list'], env);
  t.match(list.stdout, /Pending \(provisioned ahead, waiting for a signup\)/);
  t.match(list.stdout, /2 pending tenant\(s\)/);
  const pending = await ctx.catalog.tenants.list({ statuses: ['pending'] });
  t.equal(pending.length, 2);
  for (const p of pending) {
    t.match(p.slug, /^_pending_[a-z2-7]{10}$/);
    t.equal(p.adminEmail, null);
    const users = await ctx.admin.withTenantDatabase(p, (k) => k('users').count({ n: '*' }).first());
    t.equal(Number(users?.n), 0, 'no admin in a pending tenant');
  }
  const migrate = await runCliJson<{ tenants: any[] }>(['tenants', 'migrate', '--all'], env);
  t.equal(migrate.result.code, 0, migrate.result.stderr);
  t.same(migrate.json.tenants.map((r) => r.slug).sort(), pending.map((p) => p.slug).sort(), 'fleet migrations include pending tenants');
  t.ok(migrate.json.tenants.every((r) => r.outcome === 'up-to-date'));
});

t.test('a kill while a pending tenant is provisioned: repair finishes it as pending, without an admin', async (t) => {
  const killed = await runCli(['tenants', 'pending', 'fill', '--count', '3'], { ...env, SILO_ENABLE_FAULTS: '1', SILO_FAULT_KILL_AFTER: 'create:user' });
  t.equal(killed.signal, 'SIGKILL', killed.stderr);
  t.same(await countPendingTenants(ctx), { pending: 2, provisioning: 1 });
  const repaired = await runCliJson<any>(['tenants', 'repair', '--all'], env);
  t.equal(repaired.result.code, 0, repaired.result.stderr);
  t.same(await countPendingTenants(ctx), { pending: 3, provisioning: 0 });
  for (const p of await ctx.catalog.tenants.list({ statuses: ['pending'] })) {
    const users = await ctx.admin.withTenantDatabase(p, (k) => k('users').count({ n: '*' }).first());
    t.equal(Number(users?.n), 0, `${p.slug}: no admin`);
    t.equal(p.schemaVersion !== null, true);
  }
});

/** A free TCP port on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Starts `silo serve` as a child process; resolves once it answers /health. */
async function serve(extra: Record<string, string>) {
  const port = await freePort();
  const child = spawn(process.execPath, [`${ROOT}bin/silo.js`, 'serve'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env, PORT: String(port), LOG_LEVEL: 'warn', ...extra },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`silo serve exited: ${stderr}`);
    const ok = await fetch(`${base}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { base, child, exited, stderr: () => stderr };
}

t.test('a kill inside a claim, after the admin was written: the tenant stays pending; the next claim leaves only its own admin', async (t) => {
  const before = new Set((await ctx.catalog.tenants.list({ statuses: ['pending'] })).map((p) => p.id));
  const s = await serve({ SILO_SIGNUP_ENABLED: '1', SILO_ENABLE_FAULTS: '1', SILO_FAULT_KILL_AFTER: 'signup:admin' });
  const res = await fetch(`${s.base}/platform/v1/signup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ slug: 'killed-co', name: 'Killed', email: 'owner@killed-co.test', password: 'violet-tractor-orbit-91' }),
  }).catch((err: Error) => err);
  t.ok(res instanceof Error, 'the server died before answering');
  t.match(await s.exited, { signal: 'SIGKILL' });
  t.notOk(await ctx.catalog.tenants.findBySlug('killed-co'), 'the claim did not commit');
  const after = await ctx.catalog.tenants.list({ statuses: ['pending'] });
  t.same(new Set(after.map((p) => p.id)), before, 'every pending tenant is still pending');
  const strays = await Promise.all(after.map((p) => ctx.admin.withTenantDatabase(p, (k) => k('users').pluck('email'))));
  t.same(strays.flat(), ['owner@killed-co.test'], 'one pending tenant holds the stray admin the kill left');
  // The next claims (every pending tenant, so also the one with the stray admin) leave exactly their own admin.
  for (const [i] of after.entries()) {
    const c = await claimPendingTenant(ctx, await claimInput(`after-kill-${i}`), 'test');
    t.ok(c, 'claimed');
    t.same(await usersOf(`after-kill-${i}`), [`owner@after-kill-${i}.test`]);
  }
  t.same(await countPendingTenants(ctx), { pending: 0, provisioning: 0 });
  t.same(
    (await ctx.catalog.operations.list({ kind: 'signup' })).filter((o) => o.status === 'running'),
    [],
    'no signup operation was left running (the killed one never committed)',
  );
});

t.test('concurrent fills never pass the target (one process at a time)', async (t) => {
  const results = await Promise.all([fillPendingTenants(ctx, 3, 'a'), fillPendingTenants(ctx, 3, 'b'), fillPendingTenants(ctx, 3, 'c')]);
  t.equal(results.filter((r) => r.ran).length >= 1, true);
  t.equal((await countPendingTenants(ctx)).pending, 3, 'exactly the target');
  t.equal(
    results.reduce((n, r) => n + r.created, 0),
    3,
  );
});

t.test('silo serve keeps SILO_PENDING_TENANTS pending: a claimed one is replaced', async (t) => {
  const s = await serve({ SILO_SIGNUP_ENABLED: '1', SILO_PENDING_TENANTS: '4' });
  t.teardown(() => s.child.kill('SIGKILL'));
  const waitPending = async (n: number) => {
    for (let i = 0; i < 300 && (await countPendingTenants(ctx)).pending !== n; i++) await new Promise((r) => setTimeout(r, 50));
    return (await countPendingTenants(ctx)).pending;
  };
  t.equal(await waitPending(4), 4, 'filled up to 4 at start');
  const res = await fetch(`${s.base}/platform/v1/signup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ slug: 'served-co', name: 'Served', email: 'owner@served-co.test', password: 'violet-tractor-orbit-91' }),
  });
  t.equal(res.status, 201, await res.clone().text());
  t.equal(await waitPending(4), 4, 'refilled after the claim');
  s.child.kill('SIGTERM');
  t.match(await s.exited, { code: 0 }, s.stderr());
});
