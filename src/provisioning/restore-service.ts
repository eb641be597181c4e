/**
 * Restoring a tenant from a backup in S3.
 *
 * Steps (each recorded on the `restore` operation):
 * 1. `backup`: a `pre-restore` backup of the current database (skipped when there is no
 *    database, e.g. a deleted tenant); if it fails, nothing changes.
 * 2. `maintenance`: the tenant goes to `maintenance` (the API answers 503 + Retry-After
 *    for it alone) and its account is fenced (`account-fence.ts`: locked, its sessions
 *    killed), so that no API process, even one that never heard of the change, can write.
 * 3. `verify`: the object is read once from S3 and its SHA-256 and size compared with the
 *    catalog's; a corrupted or replaced object is refused before anything is dropped.
 * 4. `replace`: the intent, recorded before the first destructive statement: from here on
 *    repair loads the backup again, whatever the database holds.
 * 5. `database`: a new token generation starts (tokens of before the restore, and the
 *    refresh tokens the backup brings back, are refused), then the database is dropped and
 *    created empty; the account and its grant are ensured.
 * 6. `load`: the object is streamed again (S3 -> SHA-256 -> gunzip -> client program);
 *    the digest of what was read is checked again at the end.
 * 7. `migrations`: pending migrations run if the backup is older than the code.
 * 8. `activate`: the account is unlocked and the tenant returns to its settled status
 *    (`active`, or `suspended` if it was; a deleted tenant comes back `active`).
 * A failure after step 2 leaves the tenant in `maintenance` (account locked) with the
 * reason and the pre-restore backup named; `repair` re-runs steps 3-8 from the same
 * backup when the replacement had begun (step 4 reached), and otherwise just reopens the
 * tenant (and unlocks its account), whose data was not touched.
 */
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Backup, Tenant } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { ConflictError, SiloError } from '../lib/errors.js';
import { faultPoint } from '../lib/faults.js';
import { requireStore, type ObjectStore } from '../storage/s3.js';
import { fenceAccount, unfenceAccount } from './account-fence.js';
import { backupFacts, findRestorableBackup, HashMeter, takeBackup } from './backup-service.js';
import { findMysqlTools, loadDatabase } from './dump.js';
import { runOperation, type OperationHandle } from './operation.js';
import { applyMigrations, ensureAccount, settledStatus, tenantAccount } from './steps.js';
import { tenantMigrations } from './tenant-schema.js';
import { getTenant } from './tenant-lookup.js';
import { safeErrorText } from '../lib/error-text.js';

/** Options of {@link restoreTenant}: which backup (exactly one of the two). */
export interface RestoreOptions {
  backupId?: number;
  latest?: boolean;
  /** Called once the operation row exists (the API answers 202 with it). */
  onOperation?: (operationId: number) => void;
}

/** Result of a restore. */
export interface RestoreResult {
  tenant: Tenant;
  operationId: number;
  backup: Backup;
  /** The `pre-restore` backup of the state replaced (absent when there was no database). */
  preRestoreBackup?: Backup;
  /** Migrations applied after loading (the backup was older than the code). */
  migrationsApplied: string[];
}

/** Thrown when a stored backup does not match its recorded SHA-256 or size. */
export class BackupCorruptedError extends SiloError {
  constructor(message: string, details: Record<string, unknown>) {
    super(message, { code: 'BACKUP_CORRUPTED', status: 409, details });
  }
}

/**
 * Refuses backups made by newer code (a migration this code does not know).
 * @throws ConflictError `BACKUP_SCHEMA_NEWER`
 */
async function assertKnownSchema(ctx: SiloContext, backup: Backup): Promise<void> {
  if (!backup.schemaVersion) return;
  const names = (await tenantMigrations(ctx.config)).map((m) => m.name);
  if (!names.includes(backup.schemaVersion)) {
    throw new ConflictError(
      `backup ${backup.id} was made at schema ${backup.schemaVersion}, which this version of Silo does not know: restore it with a newer Silo`,
      'BACKUP_SCHEMA_NEWER',
      { schemaVersion: backup.schemaVersion },
    );
  }
}

/** Reads the object once and checks its SHA-256 and size against the catalog. @throws BackupCorruptedError */
async function verifyObject(store: ObjectStore, backup: Backup): Promise<void> {
  const { body } = await store.download(backup.storageKey);
  const meter = new HashMeter();
  await new Promise<void>((resolve, reject) => {
    pipeline(body, meter, (err) => (err ? reject(err) : resolve()));
    meter.resume();
  });
  const sha256 = meter.digest();
  if (sha256 !== backup.sha256 || meter.bytes !== backup.sizeBytes) {
    throw new BackupCorruptedError(
      `backup ${backup.id} is corrupted: its object has SHA-256 ${sha256} (${meter.bytes} bytes), the catalog recorded ${backup.sha256} (${backup.sizeBytes} bytes); nothing was restored`,
      { backupId: backup.id, expected: backup.sha256, actual: sha256 },
    );
  }
}

/**
 * Steps 3-8 (verify, replace, database, load, migrations, activate) on a tenant in maintenance.
 * Shared by restore and by repair of an interrupted restore.
 * @returns migrations applied after the load
 */
export async function loadBackupInto(ctx: SiloContext, tenant: Tenant, backup: Backup, op: OperationHandle): Promise<string[]> {
  const store = requireStore(ctx.storage, 'a restore');
  const tools = findMysqlTools(ctx.config);
  await verifyObject(store, backup);
  await op.step('verify');

  const { sql, url, knex } = await ctx.admin.server(tenant.databaseServerId);
  const account = tenantAccount(ctx, tenant);
  // Before the first destructive statement (and again when repair resumes: harmless):
  // the fence, the intent in the journal, the new token generation.
  await fenceAccount(knex, account);
  await op.step('replace');
  await ctx.catalog.tenants.bumpGeneration(tenant.id);
  await sql.dropDatabase(tenant.databaseName);
  faultPoint(ctx.config, 'restore', 'database-dropped');
  await sql.createDatabase(tenant.databaseName);
  await ensureAccount(ctx, tenant);
  await op.step('database');

  const { body } = await store.download(backup.storageKey);
  const meter = new HashMeter();
  const gunzip = createGunzip();
  const piped = new Promise<void>((resolve, reject) => pipeline(body, meter, gunzip, (err) => (err ? reject(err) : resolve())));
  await Promise.all([loadDatabase(tools, url, tenant.databaseName, gunzip), piped]);
  const sha256 = meter.digest();
  if (sha256 !== backup.sha256) {
    throw new BackupCorruptedError(`backup ${backup.id} changed while it was being restored (SHA-256 ${sha256}); the database holds what was read`, {
      backupId: backup.id,
      actual: sha256,
    });
  }
  await op.step('load');

  const applied = await applyMigrations(ctx, tenant);
  await op.note({ migrationsApplied: applied, schemaVersion: tenant.schemaVersion });
  await op.step('migrations');

  // A deleted tenant comes back active. When repair resumes its restore, its status is
  // already `maintenance`: `deletedAt` is what still says it was deleted.
  const wasDeleted = tenant.status === 'deleted' || tenant.deletedAt !== null;
  const status = wasDeleted ? 'active' : settledStatus(tenant);
  await unfenceAccount(knex, account);
  await ctx.catalog.tenants.update(tenant.id, { status, statusReason: null, ...(wasDeleted ? { deletedAt: null } : {}) });
  tenant.status = status;
  ctx.events.emit('tenantChanged', tenant.slug);
  await op.step('activate');
  return applied;
}

/**
 * `silo tenants restore <slug> --backup <id> | --latest`: see the module comment.
 * @throws ValidationError `BACKUP_REQUIRED`; NotFoundError `TENANT_NOT_FOUND`/`BACKUP_NOT_FOUND`;
 *         ConflictError `BACKUP_NOT_RESTORABLE`/`BACKUP_SCHEMA_NEWER`/`TENANT_BUSY`;
 *         StorageNotConfiguredError; BackupFailedError (pre-restore backup failed: nothing changed);
 *         BackupCorruptedError or OperationFailedError (tenant left in maintenance with the reason)
 */
export async function restoreTenant(ctx: SiloContext, slug: string, actor: string, opts: RestoreOptions): Promise<RestoreResult> {
  const tenant = await getTenant(ctx, slug, { includeDeleted: true });
  requireStore(ctx.storage, 'a restore');
  findMysqlTools(ctx.config);
  const backup = await findRestorableBackup(ctx, tenant, opts);
  await assertKnownSchema(ctx, backup);
  return ctx.locks.withLock(tenant, async () => {
    const fresh = (await ctx.catalog.tenants.findById(tenant.id))!;
    Object.assign(tenant, fresh);
    const operationId = await ctx.catalog.operations.start({
      kind: 'restore',
      tenantId: tenant.id,
      actor,
      details: { slug, backupId: backup.id, backupKind: backup.kind, backupCreatedAt: backup.createdAt, statusBefore: tenant.status },
    });
    opts.onOperation?.(operationId);
    let preRestore: Backup | undefined;
    let inMaintenance = false;
    const migrationsApplied = await runOperation(
      ctx,
      { existingId: operationId, kind: 'restore' },
      async (op) => {
        const { sql } = await ctx.admin.server(tenant.databaseServerId);
        if (tenant.status !== 'deleted' && (await sql.databaseExists(tenant.databaseName))) {
          preRestore = await takeBackup(ctx, tenant, 'pre-restore', operationId);
          await op.note({ preRestoreBackupId: preRestore.id, preRestore: backupFacts(preRestore) });
        }
        await op.step('backup');
        await ctx.catalog.tenants.update(tenant.id, { status: 'maintenance', statusReason: `restoring backup ${backup.id}` });
        inMaintenance = true;
        ctx.events.emit('tenantChanged', slug);
        // The fence: API processes that missed the change can no longer reach the database.
        const killed = await fenceAccount((await ctx.admin.server(tenant.databaseServerId)).knex, tenantAccount(ctx, tenant));
        await op.note({ fencedSessions: killed });
        await op.step('maintenance');
        return loadBackupInto(ctx, tenant, backup, op);
      },
      async (err, step) => {
        if (!inMaintenance) return;
        const pre = preRestore ? `; the state before the restore is backup ${preRestore.id} (pre-restore)` : '';
        const reason = `restore of backup ${backup.id} failed after step ${step ?? '(none)'}: ${safeErrorText(err)}${pre}`;
        await ctx.catalog.tenants.update(tenant.id, { status: 'maintenance', statusReason: reason.slice(0, 1000) });
        ctx.events.emit('tenantChanged', slug);
      },
    );
    return {
      tenant: (await ctx.catalog.tenants.findById(tenant.id))!,
      operationId,
      backup,
      ...(preRestore ? { preRestoreBackup: preRestore } : {}),
      migrationsApplied,
    };
  });
}

/**
 * For `repair`: the restore to resume on a tenant in maintenance, when its newest restore
 * did not succeed once the replacement had begun (step `replace`, `database` or `load` reached), or
 * was bringing back a deleted tenant (whose database is gone anyway). A repair that
 * resumed a restore and did not finish is resumed again.
 * @returns the backup to load again, or undefined (the data was not touched: reopen it)
 */
export async function interruptedRestore(ctx: SiloContext, tenant: Tenant): Promise<Backup | undefined> {
  if (tenant.status !== 'maintenance') return undefined;
  const op = await ctx.catalog.operations.latest(tenant.id, ['restore', 'repair']);
  if (!op || op.status === 'succeeded') return undefined;
  let backupId: number;
  if (op.kind === 'restore') {
    const replaced = ['replace', 'database', 'load'].includes(op.step ?? '');
    const wasDeleted = op.details?.statusBefore === 'deleted' && ['maintenance', 'verify'].includes(op.step ?? '');
    if (!replaced && !wasDeleted) return undefined;
    backupId = Number(op.details?.backupId);
  } else {
    if (op.step === 'activate' || op.step === 'migrations') return undefined;
    backupId = Number(op.details?.resumedRestoreBackupId);
  }
  if (!Number.isInteger(backupId) || backupId <= 0) return undefined;
  const backup = await ctx.catalog.backups.get(backupId);
  return backup?.status === 'completed' ? backup : undefined;
}
