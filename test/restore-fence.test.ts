/**
 * The fence of a restore (issue 13 item 3), against MariaDB and a local S3:
 * - a restore killed the moment its DROP DATABASE returned (fault point
 *   `restore:database-dropped`, no journal step in between) is finished by `repair` with
 *   the backup's rows, not reopened over an empty database;
 * - an API process that never heard of the restore (tenant cache TTL one hour, change
 *   polling off, its own context) cannot write while the restore runs: its writes answer
 *   503 (neither 500 nor success) both before the DROP and while the backup loads, and
 *   once the restore is done the data is exactly the backup's and the account serves again.
 */
import { pino } from 'pino';
import t from 'tap';
import type { Tenant } from '../src/catalog/index.js';
import { createContext } from '../src/context.js';
import { backupTenant } from '../src/provisioning/backup-service.js';
import type { RepairReport } from '../src/provisioning/repair-service.js';
import { restoreTenant } from '../src/provisioning/restore-service.js';
import { login, makeTenant, setupApp } from './fixtures/app.js';
import { rootKnex, runCli, runCliJson } from './fixtures/env.js';
import { setupS3 } from './fixtures/s3.js';
import { addData, rowsDigest } from './fixtures/tenant-data.js';

const s3 = await setupS3(t);
// The API process of this file is the stale one: it keeps tenant rows an hour and never polls for changes.
const { ctx, env, config, app } = await setupApp(t, { ...s3.env, SILO_TENANT_CHANGE_POLL_MS: '0', SILO_TENANT_CACHE_TTL_MS: '3600000' });
const root = rootKnex();
t.teardown(() => root.destroy());

const companies = async (tenant: Tenant) => Number((await root(`${tenant.databaseName}.companies`).count({ n: '*' }).first())?.n);

t.test('a restore killed right after its DROP DATABASE: repair loads the backup (all 30 companies), not an empty database', async (t) => {
  const slug = 'fence-kill';
  const tenant = await makeTenant(ctx, slug);
  await addData(ctx, tenant, 'backed-up', 30);
  const atBackup = await rowsDigest(root, tenant);
  const { backup } = await backupTenant(ctx, slug, 'test');
  await addData(ctx, tenant, 'later', 3);

  const killed = await runCli(['tenants', 'restore', slug, '--backup', String(backup.id), '--yes'], {
    ...env,
    SILO_ENABLE_FAULTS: '1',
    SILO_FAULT_KILL_AFTER: 'restore:database-dropped',
  });
  t.equal(killed.signal, 'SIGKILL', 'the restore was killed right after the DROP', { stderr: killed.stderr });
  t.notOk((await root('information_schema.SCHEMATA').where('SCHEMA_NAME', tenant.databaseName)).length, 'the database is gone');

  const { result, json } = await runCliJson<{ tenants: RepairReport[] }>(['tenants', 'repair', slug], env);
  t.equal(result.code, 0, 'repair exits 0', { stderr: result.stderr });
  t.match(json.tenants[0], { outcome: 'repaired', status: 'active' }, 'repair finishes it');
  t.ok(json.tenants[0]!.actions.includes('resume-restore'), 'by loading the backup again');
  t.notOk(json.tenants[0]!.admin, 'no new admin is seeded');
  t.equal(await companies(tenant), 30, 'the 30 companies of the backup are back');
  t.equal(await rowsDigest(root, tenant), atBackup, "the rows are the backup's");
  await t.resolves(login(app, slug), 'the admin signs in');
});

t.test('an API process with a stale cache cannot write during a restore (503), and the data ends equal to the backup', async (t) => {
  const slug = 'fence-stale';
  const tenant = await makeTenant(ctx, slug);
  await addData(ctx, tenant, 'backed-up', 10);
  const atBackup = await rowsDigest(root, tenant);
  const { backup } = await backupTenant(ctx, slug, 'test');
  await addData(ctx, tenant, 'later', 2);

  const { accessToken } = await login(app, slug);
  let n = 0;
  const write = () =>
    app.inject({
      method: 'POST',
      url: '/api/v1/companies',
      headers: { 'x-tenant': slug, authorization: `Bearer ${accessToken}` },
      payload: { name: `stale write ${n++}` },
    });
  t.equal((await write()).statusCode, 201, 'before the restore the stale process writes (its pool is open)');

  // Another process restores: its own context, so this API process hears nothing of it.
  const restorer = createContext(config, pino({ level: 'silent' }));
  t.teardown(() => restorer.close());
  const seen: Array<{ phase: string; status: number; code?: string }> = [];
  const store = restorer.storage!;
  const download = store.download.bind(store);
  let downloads = 0;
  // The restore reads the object twice: to verify it (before the DROP) and to load it (after).
  store.download = async (key) => {
    const phase = ++downloads === 1 ? 'before the drop' : 'while the backup loads';
    for (let i = 0; i < 3; i++) {
      const res = await write();
      seen.push({ phase, status: res.statusCode, code: res.json<{ code?: string }>().code });
    }
    return download(key);
  };
  await restoreTenant(restorer, slug, 'test', { backupId: backup.id });

  t.equal(downloads, 2, 'writes were tried at both points of the restore');
  t.same(
    seen.filter((s) => s.status !== 503),
    [],
    'every write during the restore answered 503',
  );
  t.ok(
    seen.every((s) => s.code === 'TENANT_UNAVAILABLE' || s.code === 'DATABASE_UNAVAILABLE'),
    'as the tenant (or its database) being unavailable',
    { seen },
  );
  t.ok(
    seen.some((s) => s.code === 'TENANT_UNAVAILABLE'),
    'a login refused to the locked account answers 503 TENANT_UNAVAILABLE',
    { seen },
  );
  t.equal(await rowsDigest(root, tenant), atBackup, "afterwards the rows are exactly the backup's");
  t.equal((await write()).statusCode, 201, 'and once the restore is done the tenant account serves again');
});
