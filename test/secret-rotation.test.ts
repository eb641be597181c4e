/**
 * Rotating secrets (issue 12, item 7).
 *
 * `silo secrets rotate` re-encrypts every stored secret (every `*_enc` column of the
 * catalog) under the current `SILO_SECRET_KEY`, reading with `SILO_SECRET_KEY_PREVIOUS`;
 * it is resumable (rows already under the new key are skipped) and a process configured
 * with both keys reads every row before, during and after it.
 *
 * `silo tenants rotate-credentials` gives tenant MySQL accounts a new password while an
 * API serves them, with no failed request: the API (which is not told: no change polling,
 * long tenant cache) keeps its authenticated connections, and a new connection refused
 * with the old password reloads the tenant row and retries. Bursts of requests above the
 * open connections, with a 1 s pool idle time, make new connections during and after the
 * rotation.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { ConfigError, loadConfig, parseMysqlUrl } from '../src/config.js';
import { buildApp } from '../src/http/app.js';
import { createMysqlKnex, mysqlErrno } from '../src/lib/knex.js';
import { decryptSecret } from '../src/lib/secrets.js';
import { login, makeTenant, TEST_JWT_SECRET } from './fixtures/app.js';
import { MYSQL_URL, rootKnex, runCli, setupSilo } from './fixtures/env.js';

const OLD = randomBytes(32);
const NEW = randomBytes(32);
const root = rootKnex();
t.teardown(() => root.destroy());

/** Every `*_enc` value of the catalog, keyed `table.column#id`. */
async function storedSecrets(knex: import('knex').Knex, catalog: string): Promise<Map<string, string>> {
  const [cols] = (await knex.raw(
    "SELECT TABLE_NAME AS t, COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND COLUMN_NAME LIKE '%\\_enc'",
    [catalog],
  )) as [Array<{ t: string; c: string }>];
  const out = new Map<string, string>();
  for (const { t: table, c } of cols) {
    const rows: Array<Record<string, unknown>> = await knex(table).whereNotNull(c).select('id', c);
    for (const r of rows) out.set(`${table}.${c}#${String(r.id)}`, String(r[c]));
  }
  return out;
}

t.test('secrets rotate: every stored secret moves to the new key, resumably, readable throughout', async (t) => {
  const { ctx, env, names } = await setupSilo(t, { SILO_SECRET_KEY: OLD.toString('base64'), SILO_JWT_SECRET: TEST_JWT_SECRET });
  for (const slug of ['rot-a', 'rot-b', 'rot-c', 'rot-d']) await makeTenant(ctx, slug);
  const before = await storedSecrets(ctx.catalog.knex, names.catalog);
  t.ok(before.size >= 5, `${before.size} stored secrets (4 tenants, 1 server)`);
  const plain = new Map([...before].map(([k, v]) => [k, decryptSecret(v, OLD)]));

  const both = { ...env, SILO_SECRET_KEY: NEW.toString('base64'), SILO_SECRET_KEY_PREVIOUS: OLD.toString('base64') };
  const bothConfig = loadConfig(both);
  const newOnly = loadConfig({ ...env, SILO_SECRET_KEY: NEW.toString('base64') });
  const oldOnly = loadConfig({ ...env, SILO_SECRET_KEY: OLD.toString('base64') });

  // An API process with both keys, deployed before the rotation, serves the tenants.
  const { createContext } = await import('../src/context.js');
  const { pino } = await import('pino');
  const apiCtx = createContext(bothConfig, pino({ level: 'silent' }));
  const app = await buildApp({ ctx: apiCtx });
  t.teardown(async () => {
    await app.close();
    await apiCtx.close();
  });
  const serve = async () => {
    for (const slug of ['rot-a', 'rot-b', 'rot-c', 'rot-d']) {
      const { accessToken } = await login(app, slug);
      const res = await app.inject({ method: 'GET', url: '/api/v1/companies', headers: { 'x-tenant': slug, authorization: `Bearer ${accessToken}` } });
      t.equal(res.statusCode, 200, `${slug} is served (${res.body.slice(0, 200)})`);
    }
  };
  await serve();

  const dry = await runCli(['secrets', 'rotate', '--dry-run', '--json'], both);
  t.equal(dry.code, 0, dry.stderr);
  const dryJson = JSON.parse(dry.stdout) as { dryRun: boolean; total: { rows: number; rotate: number; current: number; unreadable: number } };
  t.equal(dryJson.dryRun, true);
  t.equal(dryJson.total.rotate, before.size, 'the dry run counts every row to rotate');
  t.same(await storedSecrets(ctx.catalog.knex, names.catalog), before, 'the dry run changes nothing');

  // Interrupted half way: some rows were already re-encrypted under the new key.
  const done = [...before.keys()].filter((_, i) => i % 2 === 0);
  for (const k of done) {
    const [, table, column, id] = /^(\w+)\.(\w+)#(\d+)$/.exec(k)!;
    await ctx.catalog
      .knex(table!)
      .where({ id: Number(id) })
      .update({ [column!]: bothConfig.secrets.encrypt(plain.get(k)!) });
  }
  await serve();

  const run = await runCli(['secrets', 'rotate', '--json'], both);
  t.equal(run.code, 0, run.stderr);
  const summary = JSON.parse(run.stdout) as { total: { rows: number; rotated: number; current: number; unreadable: number } };
  t.equal(summary.total.rotated, before.size - done.length, 'the rest is rotated');
  t.equal(summary.total.current, done.length, 'rows already under the new key are skipped');
  t.equal(summary.total.unreadable, 0);

  const after = await storedSecrets(ctx.catalog.knex, names.catalog);
  t.same([...after.keys()].sort(), [...before.keys()].sort());
  for (const [k, v] of after) {
    t.equal(newOnly.secrets.decrypt(v), plain.get(k), `${k} reads with the new key alone`);
    t.throws(() => oldOnly.secrets.decrypt(v), `${k} no longer reads with the old key`);
    t.equal(v.split('.')[1], newOnly.secrets.currentKeyId, `${k} names the new key`);
    if (plain.get(k)) t.notOk(v.includes(plain.get(k)!), 'never the clear value');
  }
  await serve();

  const again = await runCli(['secrets', 'rotate', '--json'], both);
  t.equal(again.code, 0, again.stderr);
  const againJson = JSON.parse(again.stdout) as { total: { rotated: number; current: number } };
  t.equal(againJson.total.rotated, 0, 'a re-run is a no-op');
  t.equal(againJson.total.current, before.size);
  t.same(await storedSecrets(ctx.catalog.knex, names.catalog), after);

  // The output names no secret.
  for (const out of [dry.stdout, dry.stderr, run.stdout, run.stderr]) {
    for (const p of plain.values()) if (p) t.notOk(out.includes(p), 'no clear secret in the output');
  }
  t.throws(() => loadConfig({ ...env, SILO_SECRET_KEY: '' }).secrets.decrypt([...after.values()][0]!), ConfigError);
});

t.test('tenants rotate-credentials under load: zero failed requests; the old password is refused after, the new one works', async (t) => {
  const { ctx, env } = await setupSilo(t, {
    SILO_SECRET_KEY: OLD.toString('base64'),
    SILO_JWT_SECRET: TEST_JWT_SECRET,
    SILO_LOGIN_RATE_LIMIT: '1000',
    SILO_TENANT_CHANGE_POLL_MS: '0',
    SILO_TENANT_CACHE_TTL_MS: '3600000',
    SILO_POOL_MAX_PER_TENANT: '3',
    SILO_POOL_IDLE_MS: '1000',
  });
  const slugs = ['cred-a', 'cred-b', 'cred-c'];
  const tenants = [];
  for (const slug of slugs) tenants.push(await makeTenant(ctx, slug));
  const oldPasswords = new Map(tenants.map((x) => [x.slug, decryptSecret(x.dbPasswordEnc, OLD)]));

  const app = await buildApp({ ctx });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const tokens = new Map<string, string>();
  for (const slug of slugs) tokens.set(slug, (await login(app, slug)).accessToken);

  let stop = false;
  let phase: 'before' | 'during' | 'after' = 'before';
  const counts = { before: 0, during: 0, after: 0 };
  const failures: string[] = [];
  const request = async (slug: string) => {
    const p = phase;
    try {
      const res = await fetch(`${base}/api/v1/companies?pageSize=5`, { headers: { 'x-tenant': slug, authorization: `Bearer ${tokens.get(slug)!}` } });
      const body = await res.text();
      if (res.status !== 200) failures.push(`${p} ${slug} ${res.status} ${body.slice(0, 200)}`);
    } catch (err) {
      failures.push(`${p} ${slug} ${(err as Error).message}`);
    }
    counts[p]++;
  };
  // One steady client per tenant keeps a connection busy; bursts of 6 more need more
  // connections than are open, and the pool closes them after 1 s idle: new connections
  // are opened before, during and after the rotation.
  const steady = async (slug: string) => {
    while (!stop) await request(slug);
  };
  const bursts = async () => {
    while (!stop) {
      const until = Date.now() + 300;
      await Promise.all(
        Array.from({ length: 6 }, async (_, i) => {
          let n = i;
          while (!stop && Date.now() < until) await request(slugs[n++ % slugs.length]!);
        }),
      );
      await new Promise((r) => setTimeout(r, 1500));
    }
  };
  // Connection ids of the tenant accounts as the server lists them, per phase (read only).
  const users = tenants.map((x) => x.dbUser);
  const seen = { before: new Set<number>(), during: new Set<number>(), after: new Set<number>() };
  const watcher = async () => {
    while (!stop) {
      const p = phase;
      const [rows] = (await root.raw('SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER IN (?)', [users])) as [Array<{ id: number }>];
      for (const r of rows) seen[p].add(Number(r.id));
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const load = [...slugs.map((s) => steady(s)), bursts(), watcher()];
  await new Promise((r) => setTimeout(r, 2000));

  phase = 'during';
  const rotated = await runCli(['tenants', 'rotate-credentials', ...slugs, '--json'], env);
  phase = 'after';
  // Connections are shared across tenants and reused while busy: close the tenants' own so new ones log in (with the stale cached password first).
  for (const x of tenants) await app.tenantConnections.drop(x.id);
  await new Promise((r) => setTimeout(r, 4000));
  stop = true;
  await Promise.all(load);

  const opened = (p: 'during' | 'after') => [...seen[p]].filter((id) => !seen.before.has(id) && (p === 'during' || !seen.during.has(id))).length;
  t.equal(rotated.code, 0, `rotate-credentials succeeded (${rotated.stderr}${rotated.stdout})`);
  t.comment(`requests: ${JSON.stringify(counts)}; connections opened during the rotation: ${opened('during')}, after: ${opened('after')}`);
  t.ok(counts.after > 20 && opened('after') > 0, 'requests were served on new connections after the rotation');
  t.same(failures, [], 'zero failed requests');

  const server = parseMysqlUrl(MYSQL_URL);
  for (const tenant of tenants) {
    const row = (await ctx.catalog.tenants.findById(tenant.id))!;
    const fresh = ctx.config.secrets.decrypt(row.dbPasswordEnc);
    const old = oldPasswords.get(tenant.slug)!;
    t.not(fresh, old, `${tenant.slug} has a new password`);
    for (const out of [rotated.stdout, rotated.stderr]) t.notOk(out.includes(fresh) || out.includes(old), 'no password in the output');
    const ops = await ctx.catalog.operations.list({ tenantId: tenant.id, limit: 5 });
    t.ok(
      ops.some((o) => o.kind === 'rotate-credentials' && o.status === 'succeeded'),
      'journaled as a succeeded operation',
    );
    t.notOk(JSON.stringify(ops).includes(fresh), 'no password in the operations');

    const connect = async (password: string) => {
      const k = createMysqlKnex({ host: server.host, port: server.port, user: tenant.dbUser, password, database: tenant.databaseName }, { min: 0, max: 1 });
      try {
        await k.raw('SELECT 1');
        return 'ok';
      } catch (err) {
        return mysqlErrno(err);
      } finally {
        await k.destroy();
      }
    };
    t.equal(await connect(old), 1045, `${tenant.slug}: the old password is refused (ER_ACCESS_DENIED_ERROR)`);
    t.equal(await connect(fresh), 'ok', `${tenant.slug}: the new password works`);
  }
});

t.test('rotate-credentials killed after each step: the API is never locked out, and repair (or a new rotation) converges', async (t) => {
  const { ctx, env } = await setupSilo(t, { SILO_SECRET_KEY: OLD.toString('base64'), SILO_JWT_SECRET: TEST_JWT_SECRET });
  const { TenantConnections } = await import('../src/tenancy/connections.js');
  const server = parseMysqlUrl(MYSQL_URL);
  const connect = async (tenant: { dbUser: string; databaseName: string }, password: string) => {
    const k = createMysqlKnex({ host: server.host, port: server.port, user: tenant.dbUser, password, database: tenant.databaseName }, { min: 0, max: 1 });
    try {
      await k.raw('SELECT 1');
      return 'ok';
    } catch (err) {
      return mysqlErrno(err);
    } finally {
      await k.destroy();
    }
  };
  for (const [i, step] of ['catalog', 'server', 'verify'].entries()) {
    for (const finish of ['repair', 'rotate-credentials'] as const) {
      const slug = `crash-${i}-${finish === 'repair' ? 'r' : 'c'}`;
      const tenant = await makeTenant(ctx, slug);
      const killed = await runCli(['tenants', 'rotate-credentials', slug], {
        ...env,
        SILO_ENABLE_FAULTS: '1',
        SILO_FAULT_KILL_AFTER: `rotate-credentials:${step}`,
      });
      t.equal(killed.signal, 'SIGKILL', `killed after ${step} (${killed.stderr.trim()})`);
      const op = (await ctx.catalog.operations.list({ tenantId: tenant.id, limit: 1 }))[0]!;
      t.match(op, { kind: 'rotate-credentials', status: 'running', step }, 'the operation says how far it got');

      // A process that starts now, from the catalog row as it is, is served.
      const pools = new TenantConnections(ctx.catalog, ctx.config);
      const lease = await pools.acquire((await ctx.catalog.tenants.findById(tenant.id))!);
      await t.resolves(lease.knex.raw('SELECT 1'), `after a crash at ${step}, a new pool from the catalog row connects`);
      lease.release();
      await pools.close();

      const fin = await runCli(finish === 'repair' ? ['tenants', 'repair', slug, '--json'] : ['tenants', 'rotate-credentials', slug, '--json'], env);
      t.equal(fin.code, 0, `${finish} after a crash at ${step} succeeds (${fin.stderr}${fin.stdout.slice(0, 300)})`);
      const row: { db_password_enc: string; db_password_prev_enc: string | null } = await ctx.catalog
        .knex('tenants')
        .where({ id: tenant.id })
        .first('db_password_enc', 'db_password_prev_enc');
      t.equal(row.db_password_prev_enc, null, 'no previous password is kept');
      t.equal(await connect(tenant, ctx.config.secrets.decrypt(row.db_password_enc)), 'ok', 'the server has the catalog password');
      t.equal(await connect(tenant, decryptSecret(tenant.dbPasswordEnc, OLD)), 1045, 'the password before the rotation is refused');
      const running = await ctx.catalog.operations.running(tenant.id);
      t.same(running, [], 'no operation is left running');
    }
  }
});
