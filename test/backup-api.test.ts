/**
 * Backups and restore through the platform API: operators start them (202 with the
 * running operation, followed at /platform/v1/operations/:id), support staff only read;
 * during a restore the tenant answers 503 + Retry-After and other tenants are unaffected;
 * bad input is 4xx and starts nothing.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { login, makeTenant, platformLogin, setupApp } from './fixtures/app.js';
import { isProblem } from './fixtures/problem.js';
import { setupS3 } from './fixtures/s3.js';

const s3 = await setupS3(t);
const { app, ctx } = await setupApp(t, { ...s3.env, SILO_TENANT_CHANGE_POLL_MS: '200' });
const operator = await platformLogin(app, ctx, 'operator');
const support = await platformLogin(app, ctx, 'support');
await makeTenant(ctx, 'bka-one');
await makeTenant(ctx, 'bka-two');
const one = await login(app, 'bka-one');
const two = await login(app, 'bka-two');

type Method = 'GET' | 'POST';
const as = (token: string) => (method: Method, url: string, payload?: object) =>
  app.inject({ method, url: `/platform/v1${url}`, ...(payload ? { payload } : {}), headers: { authorization: `Bearer ${token}` } });
const op = as(operator);
const sup = as(support);
const me = (slug: string, token: string) =>
  app.inject({ method: 'GET', url: '/api/v1/auth/me', headers: { 'x-tenant': slug, authorization: `Bearer ${token}` } });

/** Polls an operation until it is no longer running (at most ~30 s). */
async function finished(id: number): Promise<any> {
  for (let i = 0; i < 300; i++) {
    const res = await op('GET', `/operations/${id}`);
    if (res.json().status !== 'running') return res.json();
    await sleep(100);
  }
  throw new Error(`operation ${id} still running`);
}

let backupId = 0;

t.test('POST /tenants/:slug/backups answers 202 with the operation; it completes and the backup is listed', async (t) => {
  const res = await op('POST', '/tenants/bka-one/backups');
  t.equal(res.statusCode, 202, res.body);
  const { operation } = res.json();
  t.match(operation, { kind: 'backup', status: 'running', tenantSlug: 'bka-one' });
  const done = await finished(operation.id);
  t.equal(done.status, 'succeeded', done.error);
  backupId = done.details.backupId;
  const list = await sup('GET', '/tenants/bka-one/backups');
  t.equal(list.statusCode, 200);
  t.match(list.json().data, [{ id: backupId, kind: 'manual', status: 'completed', operationId: operation.id }]);
  t.match(list.json().data[0].sha256, /^[0-9a-f]{64}$/);
});

t.test('support staff may list but not back up or restore; bad input starts nothing', async (t) => {
  const before = (await ctx.catalog.operations.list({ limit: 1000 })).length;
  isProblem(t, await sup('POST', '/tenants/bka-one/backups'), 403, 'FORBIDDEN');
  isProblem(t, await sup('POST', '/tenants/bka-one/restore', { latest: true, confirm: 'bka-one' }), 403, 'FORBIDDEN');
  isProblem(t, await op('POST', '/tenants/no-such/backups'), 404, 'TENANT_NOT_FOUND');
  isProblem(t, await op('GET', '/tenants/no-such/backups'), 404, 'TENANT_NOT_FOUND');
  isProblem(t, await op('POST', '/tenants/bka-one/restore', { latest: true }), 400, 'VALIDATION_FAILED');
  isProblem(t, await op('POST', '/tenants/bka-one/restore', { latest: true, confirm: 'bka-two' }), 400, 'CONFIRMATION_REQUIRED');
  isProblem(t, await op('POST', '/tenants/bka-one/restore', { confirm: 'bka-one' }), 400, 'BACKUP_REQUIRED');
  isProblem(t, await op('POST', '/tenants/bka-one/restore', { backupId: 1, latest: true, confirm: 'bka-one' }), 400, 'VALIDATION_FAILED');
  isProblem(t, await op('POST', '/tenants/bka-two/restore', { backupId, confirm: 'bka-two' }), 404, 'BACKUP_NOT_FOUND');
  isProblem(t, await op('POST', '/tenants/bka-two/restore', { latest: true, confirm: 'bka-two' }), 404, 'BACKUP_NOT_FOUND');
  isProblem(t, await op('POST', '/tenants/bka-one/restore', { backupId: 'x', confirm: 'bka-one' }), 400, 'VALIDATION_FAILED');
  isProblem(t, await op('POST', '/tenants/bka-one/restore', { latest: true, confirm: 'bka-one', extra: 1 }), 400, 'VALIDATION_FAILED');
  isProblem(t, await op('GET', '/tenants/bka-one/backups?limit=0'), 400, 'VALIDATION_FAILED');
  t.equal((await ctx.catalog.operations.list({ limit: 1000 })).length, before, 'no operation started');
});

t.test('during a restore the tenant answers 503 + Retry-After; the other tenant is served; afterwards it is back', async (t) => {
  const res = await op('POST', '/tenants/bka-one/restore', { backupId, confirm: 'bka-one' });
  t.equal(res.statusCode, 202, res.body);
  const { operation } = res.json();
  t.match(operation, { kind: 'restore', status: 'running' });
  let saw503 = false;
  for (let i = 0; i < 200 && !saw503; i++) {
    const r = await me('bka-one', one.accessToken);
    if (r.statusCode === 503) {
      saw503 = true;
      t.equal(r.json().code, 'TENANT_UNAVAILABLE');
      t.ok(Number(r.headers['retry-after']) > 0, 'with Retry-After');
      t.equal((await me('bka-two', two.accessToken)).statusCode, 200, 'the other tenant is unaffected');
    } else {
      await sleep(20);
    }
  }
  t.ok(saw503, 'the tenant was in maintenance during the restore');
  const done = await finished(operation.id);
  t.equal(done.status, 'succeeded', done.error);
  t.match(done.details, { backupId, preRestoreBackupId: Number });
  const stale = await me('bka-one', one.accessToken);
  t.equal(stale.statusCode, 401, 'a token from before the restore is revoked (a restore starts a new token generation)');
  t.equal(stale.json().code, 'TOKEN_REVOKED');
  t.equal((await me('bka-one', (await login(app, 'bka-one')).accessToken)).statusCode, 200, 'served again after the restore');
  const list = (await op('GET', '/tenants/bka-one/backups')).json().data;
  t.same(
    list.map((b: any) => b.kind),
    ['pre-restore', 'manual'],
  );
});

t.test('a second action on a busy tenant is 409 TENANT_BUSY', async (t) => {
  const first = await op('POST', '/tenants/bka-two/backups');
  t.equal(first.statusCode, 202);
  const second = await op('POST', '/tenants/bka-two/backups');
  t.ok([409, 202].includes(second.statusCode), 'busy, or the first one was already done');
  if (second.statusCode === 409) t.equal(second.json().code, 'TENANT_BUSY');
  await finished(first.json().operation.id);
  if (second.statusCode === 202) await finished(second.json().operation.id);
});
