/**
 * Tenant backups and restores through the real `silo` CLI, against MariaDB and a local S3
 * (s3rver): backup -> change data -> restore gives back every table's CHECKSUM TABLE;
 * the stored object's SHA-256 is the recorded one; a corrupted object is refused before
 * anything is dropped; recreate and delete refuse when S3 is down and keep a pre-* backup
 * when it is up; a deleted tenant comes back from its pre-delete backup; a backup older
 * than the code is migrated on restore; a restore killed after it dropped the database is
 * finished by `repair`; bad input exits 2 (or 1) and changes nothing.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Tenant } from '../src/catalog/index.js';
import { makeTenant } from './fixtures/app.js';
import { rootKnex, runCli, runCliJson, setupSilo } from './fixtures/env.js';
import { mysqlState } from './fixtures/mysql-state.js';
import { setupS3 } from './fixtures/s3.js';

const s3 = await setupS3(t);
const { ctx, env, names } = await setupSilo(t, s3.env);
const root = rootKnex();
t.teardown(() => root.destroy());
/** Scratch database for checksum copies (the test prefix: dropped at teardown). */
const CHECK_DB = `${names.prefix}checks`;
const s3Down = { ...env, SILO_S3_ENDPOINT: 'http://127.0.0.1:9', SILO_S3_TIMEOUT_MS: '1000' };

const acme = await makeTenant(ctx, 'bk-acme');
const other = await makeTenant(ctx, 'bk-other');

/** Adds companies and contacts (and their activity) straight into a tenant database. */
async function addData(tenant: Tenant, tag: string, n = 20): Promise<void> {
  await ctx.admin.withTenantDatabase(tenant, async (k) => {
    for (let i = 0; i < n; i++) {
      const [companyId] = await k('companies').insert({ name: `${tag} company ${i} — ünïcødé ✓ 'quoted' "double" \\ back` });
      await k('contacts').insert({ company_id: companyId, full_name: `${tag} person ${i}`, email: `p${i}@${tag}.test` });
      await k('activity_log').insert({ entity: 'company', entity_id: companyId, action: 'create', user_id: null });
    }
  });
}

/**
 * CHECKSUM TABLE of every base table of a tenant database, by table name, plus a SHA-256
 * of every row read in primary-key order (`<table>#rows`).
 *
 * MariaDB 10.11, seen here: CHECKSUM TABLE of a table with STORED generated columns
 * (companies has one, contacts two) is not a function of its rows: the same rows gave
 * 3087637444 or 2653428244 depending on what the session had read before, and two
 * back-to-back runs with no write in between differed (the generated columns' bytes seem
 * to be taken from a stale row buffer). For those tables the checksum is taken of a plain
 * copy (`CREATE TABLE ... AS SELECT *`: the same values, generated columns as ordinary
 * ones), which is deterministic; other tables are checksummed directly.
 */
async function checksums(tenant: Tenant): Promise<Record<string, string>> {
  const tables: Array<{ TABLE_NAME: string }> = await root('information_schema.TABLES')
    .where({ TABLE_SCHEMA: tenant.databaseName, TABLE_TYPE: 'BASE TABLE' })
    .select('TABLE_NAME');
  const generated = new Set(
    (await root('information_schema.COLUMNS').where({ TABLE_SCHEMA: tenant.databaseName }).andWhere('EXTRA', 'like', '%GENERATED%').select('TABLE_NAME')).map(
      (r: { TABLE_NAME: string }) => r.TABLE_NAME,
    ),
  );
  await root.raw('CREATE DATABASE IF NOT EXISTS ??', [CHECK_DB]);
  const out: Record<string, string> = {};
  for (const { TABLE_NAME } of tables) {
    const name = `${tenant.databaseName}.${TABLE_NAME}`;
    const [keyCols] = (await root.raw(
      "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
      [tenant.databaseName, TABLE_NAME],
    )) as [Array<{ COLUMN_NAME: string }>];
    const rows = await root(name)
      .select('*')
      .orderBy(keyCols.map((c) => c.COLUMN_NAME));
    out[`${TABLE_NAME}#rows`] = createHash('sha256').update(JSON.stringify(rows)).digest('hex');
    let target = name;
    if (generated.has(TABLE_NAME)) {
      target = `${CHECK_DB}.${TABLE_NAME}`;
      await root.raw('DROP TABLE IF EXISTS ??', [target]);
      await root.raw('CREATE TABLE ?? AS SELECT * FROM ??', [target, name]);
    }
    const [sum] = await root.raw('CHECKSUM TABLE ??', [target]);
    out[TABLE_NAME] = String(sum[0].Checksum);
  }
  return out;
}

async function sha256Of(key: string): Promise<{ sha256: string; size: number }> {
  const { body } = await ctx.storage!.download(key);
  const buf = Buffer.concat(await body.toArray());
  return { sha256: createHash('sha256').update(buf).digest('hex'), size: buf.length };
}

async function tenantRow(slug: string): Promise<Tenant> {
  return (await ctx.catalog.tenants.findBySlug(slug))!;
}

await addData(acme, 'first');
let manualId = 0;

t.test('backup: a consistent dump in S3 whose SHA-256 and size are the recorded ones', async (t) => {
  const { result, json } = await runCliJson<any>(['tenants', 'backup', 'bk-acme'], env);
  t.equal(result.code, 0, result.stderr);
  t.match(json.summary, { total: 1, completed: 1, failed: 0 });
  const [r] = json.tenants;
  manualId = r.backupId;
  const backup = (await ctx.catalog.backups.get(manualId))!;
  t.match(backup, { kind: 'manual', status: 'completed', tenantId: acme.id, schemaVersion: acme.schemaVersion });
  t.match(backup.storageKey, new RegExp(`^tenants/${acme.id}/backups/\\d{8}T\\d{6}Z-${manualId}\\.sql\\.gz$`));
  t.same(await sha256Of(backup.storageKey), { sha256: backup.sha256, size: backup.sizeBytes }, 'the object is exactly what the catalog recorded');
  const op = (await ctx.catalog.operations.get(r.operationId))!;
  t.match(op, { kind: 'backup', status: 'succeeded', step: 'recorded', details: { backupId: manualId, backupKind: 'manual', sha256: backup.sha256 } });

  const list = await runCliJson<any[]>(['tenants', 'backups', 'bk-acme'], env);
  t.equal(list.result.code, 0);
  t.same(
    list.json.map((b) => b.id),
    [manualId],
  );
  const human = await runCli(['tenants', 'backups', 'bk-acme'], env);
  t.match(human.stdout, /manual.*completed/);
});

t.test('restore: after changes, every table checksums as at backup time; a pre-restore backup keeps the replaced state', async (t) => {
  const atBackup = await checksums(acme);
  await addData(acme, 'second', 5);
  await ctx.admin.withTenantDatabase(acme, async (k) => {
    await k('contacts').where('id', '<', 5).update({ full_name: 'changed' });
    await k('activity_log').where('id', '<', 3).delete();
  });
  const changed = await checksums(acme);
  t.not(JSON.stringify(changed), JSON.stringify(atBackup), 'the data did change');

  const refused = await runCli(['tenants', 'restore', 'bk-acme', '--backup', String(manualId)], env, 'bk-acme\n');
  t.equal(refused.code, 2, 'no terminal and no --yes or --confirm: refused');
  t.same(await checksums(acme), changed, 'nothing restored without confirmation');

  const { result, json } = await runCliJson<any>(['tenants', 'restore', 'bk-acme', '--backup', String(manualId), '--yes'], env);
  t.equal(result.code, 0, result.stderr);
  t.equal(json.tenant.status, 'active');
  t.notOk('dbPasswordEnc' in json.tenant, 'no secret in the output');
  t.same(await checksums(acme), atBackup, 'CHECKSUM TABLE of every table equals the value at backup time');
  const pre = (await ctx.catalog.backups.get(json.preRestoreBackup.id))!;
  t.match(pre, { kind: 'pre-restore', status: 'completed', operationId: json.operationId });
  const op = (await ctx.catalog.operations.get(json.operationId))!;
  t.match(op, { kind: 'restore', status: 'succeeded', step: 'activate', details: { backupId: manualId, preRestoreBackupId: pre.id } });

  // The pre-restore backup undoes the restore.
  const undo = await runCliJson<any>(['tenants', 'restore', 'bk-acme', '--backup', String(pre.id), '--yes'], env);
  t.equal(undo.result.code, 0, undo.result.stderr);
  t.same(await checksums(acme), changed, 'the pre-restore backup gives back the replaced state');
  t.same(
    await mysqlState(acme.databaseName, acme.dbUser).then((s) => s.privileges),
    ['DELETE', 'INSERT', 'SELECT', 'UPDATE'],
    'the tenant account keeps its grant',
  );
});

t.test('a corrupted backup object is refused by SHA-256 before anything is dropped', async (t) => {
  const backup = (await ctx.catalog.backups.get(manualId))!;
  const { body } = await ctx.storage!.download(backup.storageKey);
  const original = Buffer.concat(await body.toArray());
  const corrupted = Buffer.from(original);
  corrupted[Math.floor(corrupted.length / 2)]! ^= 0xff;
  await ctx.storage!.upload(backup.storageKey, corrupted, { contentType: 'application/gzip' });
  const before = await checksums(acme);
  const { result, json } = await runCliJson<any>(['tenants', 'restore', 'bk-acme', '--backup', String(manualId), '--yes'], env);
  t.equal(result.code, 1);
  t.equal(json.error.code, 'BACKUP_CORRUPTED');
  t.match(json.error.message, /SHA-256/);
  t.same(await checksums(acme), before, 'the database was not touched');
  const tenant = await tenantRow('bk-acme');
  t.equal(tenant.status, 'maintenance', 'a failed restore leaves the tenant in maintenance');
  t.match(tenant.statusReason, /backup \d+ \(pre-restore\)/, 'naming the pre-restore backup');
  const repaired = await runCliJson<any>(['tenants', 'repair', 'bk-acme'], env);
  t.equal(repaired.result.code, 0, repaired.result.stderr);
  t.equal((await tenantRow('bk-acme')).status, 'active', 'repair reopens it: its data was never touched');
  t.same(await checksums(acme), before);
  await ctx.storage!.upload(backup.storageKey, original, { contentType: 'application/gzip' });
});

t.test('bad restore and backup input exits non-zero and changes nothing', async (t) => {
  const before = await checksums(acme);
  const ops = (await ctx.catalog.operations.list({ limit: 1000 })).length;
  for (const [args, code, pattern] of [
    [['tenants', 'restore', 'bk-acme', '--yes'], 2, /--backup <id>.*--latest/],
    [['tenants', 'restore', 'bk-acme', '--backup', 'abc', '--yes'], 2, /must be a number/],
    [['tenants', 'restore', 'bk-acme', '--backup', '0', '--yes'], 2, /backup/],
    [['tenants', 'restore', 'bk-acme', '--backup', '1', '--latest', '--yes'], 2, /not both/],
    [['tenants', 'restore', 'Bad_Slug', '--latest', '--yes'], 2, /slug/],
    [['tenants', 'restore', 'no-such-tenant', '--latest', '--yes'], 1, /TENANT_NOT_FOUND/],
    [['tenants', 'restore', 'bk-other', '--backup', String(manualId), '--yes'], 1, /BACKUP_NOT_FOUND/],
    [['tenants', 'restore', 'bk-other', '--latest', '--yes'], 1, /BACKUP_NOT_FOUND/],
    [['tenants', 'backup'], 2, /--all/],
    [['tenants', 'backup', 'no-such-tenant'], 1, /TENANT_NOT_FOUND/],
    [['tenants', 'backup', '--all', 'bk-acme'], 2, /not both/],
    [['tenants', 'backup', '--all', '--concurrency', '99'], 2, /concurrency/],
    [['tenants', 'backups', 'no-such-tenant'], 1, /TENANT_NOT_FOUND/],
  ] as Array<[string[], number, RegExp]>) {
    const r = await runCli(args, env);
    t.equal(r.code, code, `silo ${args.join(' ')}`);
    t.match(r.stderr, pattern);
  }
  const noS3 = await runCli(['tenants', 'backup', 'bk-acme'], { ...env, SILO_S3_BUCKET: '' });
  t.equal(noS3.code, 1);
  t.match(noS3.stderr, /STORAGE_NOT_CONFIGURED/);
  t.same(await checksums(acme), before);
  t.equal((await ctx.catalog.operations.list({ limit: 1000 })).length, ops, 'no operation was even started');
  t.equal((await tenantRow('bk-acme')).status, 'active');
});

t.test('recreate and delete refuse when S3 is down, and nothing is dropped', async (t) => {
  await addData(other, 'other', 3);
  const before = await checksums(other);
  for (const args of [
    ['tenants', 'recreate', 'bk-other', '--yes'],
    ['tenants', 'delete', 'bk-other', '--yes'],
  ]) {
    const { result, json } = await runCliJson<any>(args, s3Down);
    t.equal(result.code, 1, args.join(' '));
    t.equal(json.error.code, 'BACKUP_FAILED');
    t.match(json.error.message, /--no-backup/);
  }
  t.same(await checksums(other), before, 'the data is all there');
  const tenant = await tenantRow('bk-other');
  t.equal(tenant.status, 'active', 'and the tenant is still active');
  const ops = await ctx.catalog.operations.list({ tenantId: other.id, limit: 2 });
  t.same(
    ops.map((o) => `${o.kind}:${o.status}:${o.step}`),
    ['delete:failed:null', 'recreate:failed:null'],
    'both journaled as failed before any step',
  );
  const failedBackups = await ctx.catalog.backups.list(other.id);
  t.ok(
    failedBackups.every((b) => b.status === 'failed'),
    'their backup rows are failed',
  );
});

t.test('delete keeps a pre-delete backup, and restoring it brings the tenant back', async (t) => {
  const before = await checksums(other);
  const { result, json } = await runCliJson<any>(['tenants', 'delete', 'bk-other', '--yes'], env);
  t.equal(result.code, 0, result.stderr);
  t.equal(json.tenant.status, 'deleted');
  t.notOk((await mysqlState(other.databaseName, other.dbUser)).database, 'database dropped');
  const op = (await ctx.catalog.operations.get(json.operationId))!;
  const pre = (await ctx.catalog.backups.get(Number(op.details!.backupId)))!;
  t.match(pre, { kind: 'pre-delete', status: 'completed' });

  const back = await runCliJson<any>(['tenants', 'restore', 'bk-other', '--latest', '--yes'], env);
  t.equal(back.result.code, 0, back.result.stderr);
  t.equal(back.json.backup.id, pre.id);
  t.equal(back.json.preRestoreBackup, null, 'no database, so no pre-restore backup');
  const tenant = await tenantRow('bk-other');
  t.equal(tenant.status, 'active');
  t.equal(tenant.deletedAt, null);
  t.same(await checksums(other), before, 'every table as before the delete');
  const state = await mysqlState(other.databaseName, other.dbUser);
  t.ok(state.user, 'the account is back');
  t.same(state.privileges, ['DELETE', 'INSERT', 'SELECT', 'UPDATE']);
});

t.test('recreate keeps a pre-recreate backup', async (t) => {
  const before = await checksums(other);
  const { result, json } = await runCliJson<any>(['tenants', 'recreate', 'bk-other', '--yes'], env);
  t.equal(result.code, 0, result.stderr);
  const op = (await ctx.catalog.operations.get(json.operationId))!;
  t.match(op.details, { backupKind: 'pre-recreate' });
  const r = await runCliJson<any>(['tenants', 'restore', 'bk-other', '--backup', String(op.details!.backupId), '--yes'], env);
  t.equal(r.result.code, 0, r.result.stderr);
  t.same(await checksums(other), before, 'the pre-recreate backup holds the data recreate dropped');
});

t.test('a backup older than the code is migrated on restore', async (t) => {
  const extra = await mkdtemp(join(tmpdir(), 'silo-mig-'));
  t.teardown(() => rm(extra, { recursive: true, force: true }));
  await writeFile(
    join(extra, '9100-add-contacts-nickname.js'),
    `export async function up({ context: knex }) { await knex.schema.alterTable('contacts', (t) => { t.string('nickname', 50).nullable(); t.index(['nickname'], 'contacts_nickname_idx'); }); }
     export async function down({ context: knex }) { await knex.schema.alterTable('contacts', (t) => { t.dropIndex(['nickname'], 'contacts_nickname_idx'); t.dropColumn('nickname'); }); }`,
  );
  const newer = { ...env, SILO_TENANT_MIGRATIONS_EXTRA_DIR: extra };
  const { result, json } = await runCliJson<any>(['tenants', 'restore', 'bk-acme', '--backup', String(manualId), '--yes'], newer);
  t.equal(result.code, 0, result.stderr);
  t.same(json.migrationsApplied, ['9100-add-contacts-nickname']);
  t.equal(json.tenant.schemaVersion, '9100-add-contacts-nickname');
  const cols: Array<{ COLUMN_NAME: string }> = await root('information_schema.COLUMNS').where({
    TABLE_SCHEMA: acme.databaseName,
    TABLE_NAME: 'contacts',
    COLUMN_NAME: 'nickname',
  });
  t.equal(cols.length, 1, 'the new column exists');

  // A backup made by that newer code is refused by the older code.
  const b = await runCliJson<any>(['tenants', 'backup', 'bk-acme'], newer);
  t.equal(b.result.code, 0, b.result.stderr);
  const old = await runCliJson<any>(['tenants', 'restore', 'bk-acme', '--backup', String(b.json.tenants[0].backupId), '--yes'], env);
  t.equal(old.result.code, 1);
  t.equal(old.json.error.code, 'BACKUP_SCHEMA_NEWER');
  t.equal((await tenantRow('bk-acme')).status, 'active', 'refused before anything changed');
  // Back to the code's schema for the next tests.
  const down = await runCliJson<any>(['tenants', 'restore', 'bk-acme', '--backup', String(manualId), '--yes'], env);
  t.equal(down.result.code, 0, down.result.stderr);
});

t.test('a restore killed right after it replaced the database is finished by repair', async (t) => {
  const atBackup = await checksums(acme);
  await addData(acme, 'third', 2);
  const killed = await runCli(['tenants', 'restore', 'bk-acme', '--backup', String(manualId), '--yes'], {
    ...env,
    SILO_ENABLE_FAULTS: '1',
    SILO_FAULT_KILL_AFTER: 'restore:database',
  });
  t.equal(killed.signal, 'SIGKILL');
  t.equal((await tenantRow('bk-acme')).status, 'maintenance');
  const dry = await runCliJson<any>(['tenants', 'repair', 'bk-acme', '--dry-run'], env);
  t.same(dry.json.tenants?.[0]?.actions ?? dry.json.actions, ['close-interrupted-operations', 'resume-restore'], 'repair plans to load the same backup again');
  const { result } = await runCliJson<any>(['tenants', 'repair', 'bk-acme'], env);
  t.equal(result.code, 0, result.stderr);
  const tenant = await tenantRow('bk-acme');
  t.equal(tenant.status, 'active');
  t.same(await checksums(acme), atBackup, 'the restore was completed from the same backup');
  t.same(await ctx.catalog.backups.running(acme.id), [], 'no backup row is left running');
});

t.test('the test prefix owns nothing unexpected', async (t) => {
  const k = rootKnex();
  try {
    const dbs: Array<{ SCHEMA_NAME: string }> = await k('information_schema.SCHEMATA').select('SCHEMA_NAME');
    t.same(
      dbs
        .map((d) => d.SCHEMA_NAME)
        .filter((d) => d.startsWith(names.prefix))
        .sort(),
      [acme.databaseName, other.databaseName, CHECK_DB].sort(),
    );
  } finally {
    await k.destroy();
  }
});
