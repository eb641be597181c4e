/**
 * A tenant's pooled connections killed on the server (KILL, a restart, a network cut)
 * do not break the tenant: the next requests get fresh connections and answer 200,
 * without rebuilding the app.
 */
import t from 'tap';
import { login, makeTenant, setupApp } from './fixtures/app.js';
import { rootKnex } from './fixtures/env.js';

const { app, ctx } = await setupApp(t, { SILO_TENANT_CHANGE_POLL_MS: '0' });
const tenant = await makeTenant(ctx, 'phoenix');
const { accessToken } = await login(app, 'phoenix');
const root = rootKnex();
t.teardown(() => root.destroy());

const me = () => app.inject({ url: '/api/v1/auth/me', headers: { 'x-tenant': 'phoenix', authorization: `Bearer ${accessToken}` } });

/** Ids of the server threads of the tenant's MySQL account. */
async function tenantThreads(): Promise<number[]> {
  const rows: Array<{ ID: number | string }> = await root('information_schema.PROCESSLIST').where('USER', tenant.dbUser).select('ID');
  return rows.map((r) => Number(r.ID));
}

/** Kills every connection of the tenant's account; returns how many. */
async function killTenantConnections(): Promise<number> {
  const ids = await tenantThreads();
  for (const id of ids) await root.raw('KILL ?', [id]);
  return ids.length;
}

/** Fills the tenant's pool (2 connections): four requests at once need both. */
async function warm(): Promise<void> {
  const res = await Promise.all([me(), me(), me(), me()]);
  if (res.some((r) => r.statusCode !== 200)) throw new Error(`warm-up failed: ${res.map((r) => r.statusCode).join(',')}`);
}

t.test('requests succeed after every connection of the tenant was killed', async (t) => {
  await warm();
  const killed = await killTenantConnections();
  t.ok(killed > 0, `killed ${killed} pooled connection(s)`);
  for (let i = 0; i < 5; i++) {
    const res = await me();
    t.equal(res.statusCode, 200, `request ${i + 1} after the kill: ${res.body}`);
  }
  t.ok((await tenantThreads()).length > 0, 'the pool opened new connections');
});

t.test('concurrent requests right after the kill all succeed', async (t) => {
  await warm();
  t.ok((await killTenantConnections()) > 0);
  const res = await Promise.all(Array.from({ length: 6 }, () => me()));
  t.same(
    res.map((r) => r.statusCode),
    Array(6).fill(200),
    res.map((r) => r.body).join('\n'),
  );
});

t.test('concurrent writes right after the kill all succeed, each exactly once', async (t) => {
  await warm();
  t.ok((await killTenantConnections()) > 0);
  const names = Array.from({ length: 4 }, (_, i) => `Burst ${i}`);
  const res = await Promise.all(
    names.map((name) =>
      app.inject({ method: 'POST', url: '/api/v1/companies', headers: { 'x-tenant': 'phoenix', authorization: `Bearer ${accessToken}` }, payload: { name } }),
    ),
  );
  t.same(
    res.map((r) => r.statusCode),
    Array(4).fill(201),
    res.map((r) => r.body).join('\n'),
  );
  const list = await app.inject({ url: '/api/v1/companies?pageSize=100&q=Burst', headers: { 'x-tenant': 'phoenix', authorization: `Bearer ${accessToken}` } });
  t.same(
    list
      .json()
      .data.map((c: { name: string }) => c.name)
      .filter((n: string) => n.startsWith('Burst'))
      .sort(),
    names,
  );
});

t.test("the tenant's pool retries reads and unstarted transactions once on a fresh connection", async (t) => {
  const lease = await app.tenantConnections.acquire(tenant);
  t.teardown(() => lease.release());
  const k = lease.knex;
  await Promise.all([k('users').count({ n: '*' }), k('users').count({ n: '*' })]);
  t.ok((await killTenantConnections()) > 0);
  const reads = await Promise.all([k('users').where({ id: 1 }).first('email'), k('users').pluck('email')]);
  t.same(reads, [{ email: 'admin@phoenix.test' }, ['admin@phoenix.test']], 'reads on killed connections are answered');

  await Promise.all([k('users').count({ n: '*' }), k('users').count({ n: '*' })]);
  t.ok((await killTenantConnections()) > 0);
  let calls = 0;
  const names = ['Trx A', 'Trx B'];
  await Promise.all(
    names.map((name) =>
      k.transaction(async (trx) => {
        calls++;
        await trx('companies').insert({ name });
      }),
    ),
  );
  t.equal(calls, 2, 'each transaction callback ran once');
  t.same((await k('companies').whereIn('name', names).pluck('name')).sort(), names, 'each transaction committed once');

  await Promise.all([k('users').count({ n: '*' }), k('users').count({ n: '*' })]);
  t.ok((await killTenantConnections()) > 0);
  const once = ['Once A', 'Once B'];
  const writes = await Promise.allSettled(once.map((name) => k('companies').insert({ name })));
  const written = writes.filter((w) => w.status === 'fulfilled').length;
  t.comment(`plain writes on killed connections: ${written} of ${once.length} succeeded (they are not retried)`);
  t.equal((await k('companies').whereIn('name', once).pluck('name')).length, written, 'a plain write is never repeated: rows = successful inserts');
});

t.test('writes and sign-in also recover', async (t) => {
  for (let round = 0; round < 3; round++) {
    await warm();
    t.ok((await killTenantConnections()) > 0);
    const created = await app.inject({
      method: 'POST',
      url: '/api/v1/companies',
      headers: { 'x-tenant': 'phoenix', authorization: `Bearer ${accessToken}` },
      payload: { name: `Phoenix ${round}` },
    });
    t.equal(created.statusCode, 201, `create after kill ${round + 1}: ${created.body}`);
    await warm();
    await killTenantConnections();
    await t.resolves(login(app, 'phoenix'), `sign-in after kill ${round + 1}`);
  }
  const list = await app.inject({ url: '/api/v1/companies?pageSize=100', headers: { 'x-tenant': 'phoenix', authorization: `Bearer ${accessToken}` } });
  const phoenix = list
    .json()
    .data.map((c: { name: string }) => c.name)
    .filter((n: string) => n.startsWith('Phoenix'));
  t.same(phoenix.sort(), ['Phoenix 0', 'Phoenix 1', 'Phoenix 2'], 'each write happened exactly once');
});
