/**
 * Tenant backups: a consistent logical dump of the tenant database (see `dump.ts`),
 * gzip-compressed and streamed to S3 as a multipart upload, recorded in the catalog
 * `backups` table (size and SHA-256 of the stored object, schema version, kind) and on an
 * operation row. Nothing is held in memory beyond the upload's part buffers
 * (`PART_SIZE x QUEUE_SIZE`, see `storage/s3.ts`) and nothing is written to disk.
 */
import { createHash } from 'node:crypto';
import { pipeline, Transform } from 'node:stream';
import { createGzip } from 'node:zlib';
import pLimit from 'p-limit';
import type { Backup, BackupKind, Tenant, TenantStatus } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { ConflictError, NotFoundError, SiloError, UnavailableError, ValidationError } from '../lib/errors.js';
import { keys, requireStore } from '../storage/s3.js';
import { dumpDatabase, findMysqlTools } from './dump.js';
import { runOperation } from './operation.js';
import { getTenant } from './tenant-lookup.js';
import { safeErrorText } from '../lib/error-text.js';

/**
 * Statuses whose database `backup` takes. Not `maintenance`: the database may be half
 * restored or half migrated, and a later `restore --latest` would pick that copy.
 */
export const BACKUPABLE: readonly TenantStatus[] = ['active', 'suspended'];

/** A transform that counts bytes and hashes them (SHA-256) on their way through. */
export class HashMeter extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
  /** Hex digest (call once, after the stream ended). */
  digest(): string {
    return this.hash.digest('hex');
  }
}

/** Thrown when a backup could not be taken; destructive actions stop on it (HTTP 503). */
export class BackupFailedError extends UnavailableError {
  constructor(message: string, cause?: unknown) {
    super(message, 'BACKUP_FAILED', 30, undefined, cause);
  }
}

/**
 * Dumps a tenant database to S3 and records the backup. Takes no lock and opens no
 * operation: callers hold the tenant lock and pass their operation id.
 * @returns the completed backup row
 * @throws StorageNotConfiguredError when S3 is not set up
 * @throws BackupFailedError `BACKUP_FAILED` when the dump or the upload fails (the row is
 *         `failed`, no object is left behind)
 */
export async function takeBackup(ctx: SiloContext, tenant: Tenant, kind: BackupKind, operationId: number | null): Promise<Backup> {
  const store = requireStore(ctx.storage, `a ${kind} backup`);
  const tools = findMysqlTools(ctx.config);
  const { url, sql } = await ctx.admin.server(tenant.databaseServerId);
  if (!(await sql.databaseExists(tenant.databaseName))) {
    throw new BackupFailedError(`${kind} backup of tenant "${tenant.slug}" failed: database ${tenant.databaseName} does not exist`);
  }
  const backup = await ctx.catalog.backups.start({ tenantId: tenant.id, operationId, kind, schemaVersion: tenant.schemaVersion }, (id, at) =>
    keys.backup(tenant.id, id, at),
  );
  const started = performance.now();
  const dump = dumpDatabase(tools, url, tenant.databaseName);
  const meter = new HashMeter();
  let dumpBytes = 0;
  dump.stdout.on('data', (c: Buffer) => (dumpBytes += c.length));
  const piped = new Promise<void>((resolve, reject) => {
    pipeline(dump.stdout, createGzip({ level: 6 }), meter, (err) => (err ? reject(err) : resolve()));
  });
  piped.catch(() => undefined);
  try {
    await store.upload(backup.storageKey, meter, {
      contentType: 'application/gzip',
      metadata: {
        'silo-tenant-id': String(tenant.id),
        'silo-backup-id': String(backup.id),
        'silo-kind': kind,
        'silo-schema-version': tenant.schemaVersion ?? '',
      },
    });
    // The upload only proves bytes arrived: the dump must also have ended well.
    await Promise.all([dump.done, piped]);
    const facts = { sizeBytes: meter.bytes, sha256: meter.digest() };
    await ctx.catalog.backups.complete(backup.id, facts);
    ctx.log.info({ tenant: tenant.slug, backup: backup.id, kind, ...facts, dumpBytes, ms: Math.round(performance.now() - started) }, 'backup completed');
    return { ...backup, ...facts, status: 'completed', finishedAt: new Date() };
  } catch (err) {
    dump.child.kill('SIGTERM');
    const reason = err instanceof Error ? err.message : String(err);
    await store.delete(backup.storageKey).catch(() => undefined);
    await ctx.catalog.backups.fail(backup.id, reason).catch(() => undefined);
    throw new BackupFailedError(`${kind} backup of tenant "${tenant.slug}" failed: ${reason}`, err);
  }
}

/** Result of {@link backupTenant}. */
export interface BackupResult {
  slug: string;
  backup: Backup;
  operationId: number;
}

/** Options of {@link backupTenant}. */
export interface BackupOptions {
  /** Called once the operation row exists (the API answers 202 with it). */
  onOperation?: (operationId: number) => void;
}

/**
 * `silo tenants backup <slug>`: a `manual` backup as its own `backup` operation, under the
 * tenant lock (steps: `dump` once the object is stored, `recorded` once the row is complete).
 * @throws NotFoundError; StorageNotConfiguredError; ConflictError `TENANT_BUSY`;
 *         BackupFailedError (the operation is `failed`)
 */
export async function backupTenant(ctx: SiloContext, slug: string, actor: string, opts: BackupOptions = {}): Promise<BackupResult> {
  const tenant = await getTenant(ctx, slug);
  requireStore(ctx.storage, 'a backup');
  if (!BACKUPABLE.includes(tenant.status)) {
    throw new ConflictError(
      `tenant "${slug}" is ${tenant.status}; only active or suspended tenants can be backed up (a tenant in maintenance: finish or repair it first)`,
      'INVALID_STATE',
      { status: tenant.status },
    );
  }
  return ctx.locks.withLock(tenant, async () => {
    const operationId = await ctx.catalog.operations.start({ kind: 'backup', tenantId: tenant.id, actor, details: { slug, kind: 'manual' } });
    opts.onOperation?.(operationId);
    const backup = await runOperation(ctx, { existingId: operationId, kind: 'backup' }, async (op) => {
      const b = await takeBackup(ctx, tenant, 'manual', operationId);
      await op.step('dump');
      await op.note(backupFacts(b));
      await op.step('recorded');
      return b;
    });
    return { slug, backup, operationId };
  });
}

/** What an operation row records about a backup. */
export function backupFacts(b: Backup): Record<string, unknown> {
  return { backupId: b.id, backupKind: b.kind, sizeBytes: b.sizeBytes, sha256: b.sha256, schemaVersion: b.schemaVersion, storageKey: b.storageKey };
}

/** One tenant's outcome in {@link backupTenants}. */
export interface FleetBackupResult {
  slug: string;
  outcome: 'completed' | 'failed';
  backupId?: number;
  sizeBytes?: number | null;
  operationId?: number;
  error?: string;
  /** ms */
  durationMs: number;
}

/**
 * Backs up several tenants (every active or suspended tenant with `all`),
 * `concurrency` at a time, going on past failures.
 * @throws ValidationError when neither slugs nor `all` are given, or concurrency is out of 1-16
 */
export async function backupTenants(
  ctx: SiloContext,
  actor: string,
  opts: { slugs?: string[]; all?: boolean; concurrency?: number; onResult?: (r: FleetBackupResult) => void; onStart?: (total: number) => void },
): Promise<FleetBackupResult[]> {
  const concurrency = opts.concurrency ?? 2;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 16) throw new ValidationError('concurrency must be an integer from 1 to 16');
  if (!opts.all && !opts.slugs?.length) throw new ValidationError('name at least one tenant, or use --all');
  requireStore(ctx.storage, 'a backup');
  findMysqlTools(ctx.config);
  const slugs = opts.all ? (await ctx.catalog.tenants.list({ statuses: BACKUPABLE })).map((t) => t.slug) : [...new Set(opts.slugs)];
  if (!opts.all) for (const s of slugs) await getTenant(ctx, s);
  opts.onStart?.(slugs.length);
  const limit = pLimit(concurrency);
  return Promise.all(
    slugs.map((slug) =>
      limit(async (): Promise<FleetBackupResult> => {
        const started = performance.now();
        let result: FleetBackupResult;
        try {
          const r = await backupTenant(ctx, slug, actor);
          result = {
            slug,
            outcome: 'completed',
            backupId: r.backup.id,
            sizeBytes: r.backup.sizeBytes,
            operationId: r.operationId,
            durationMs: Math.round(performance.now() - started),
          };
        } catch (err) {
          const operationId = (err as SiloError).details?.operationId as number | undefined;
          result = {
            slug,
            outcome: 'failed',
            error: safeErrorText(err),
            ...(operationId ? { operationId } : {}),
            durationMs: Math.round(performance.now() - started),
          };
        }
        opts.onResult?.(result);
        return result;
      }),
    ),
  );
}

/**
 * Backups of a tenant (deleted tenants too: their `pre-delete` backup is how they come back), newest first.
 * @throws NotFoundError `TENANT_NOT_FOUND`
 */
export async function listBackups(ctx: SiloContext, slug: string, limit = 100): Promise<{ tenant: Tenant; backups: Backup[] }> {
  const tenant = await getTenant(ctx, slug, { includeDeleted: true });
  return { tenant, backups: await ctx.catalog.backups.list(tenant.id, { limit }) };
}

/**
 * Finds the backup to restore: by id (it must belong to the tenant and be completed) or the newest completed one.
 * @throws NotFoundError `BACKUP_NOT_FOUND`; ConflictError `BACKUP_NOT_RESTORABLE`
 */
export async function findRestorableBackup(ctx: SiloContext, tenant: Tenant, which: { backupId?: number; latest?: boolean }): Promise<Backup> {
  if (which.backupId !== undefined && which.latest) throw new ValidationError('give either a backup id or latest, not both');
  if (which.backupId === undefined && !which.latest)
    throw new ValidationError('name the backup to restore (--backup <id>) or use --latest', { field: 'backup' }, 'BACKUP_REQUIRED');
  const backup = which.backupId !== undefined ? await ctx.catalog.backups.get(which.backupId) : await ctx.catalog.backups.latestCompleted(tenant.id);
  if (!backup || backup.tenantId !== tenant.id) {
    throw new NotFoundError(
      which.backupId !== undefined ? `tenant "${tenant.slug}" has no backup ${which.backupId}` : `tenant "${tenant.slug}" has no completed backup`,
      'BACKUP_NOT_FOUND',
    );
  }
  if (backup.status !== 'completed' || !backup.sha256) {
    throw new ConflictError(`backup ${backup.id} is ${backup.status}; only completed backups can be restored`, 'BACKUP_NOT_RESTORABLE', {
      status: backup.status,
    });
  }
  return backup;
}

/**
 * Closes backups left `running` by a crashed process (caller holds the tenant lock): each
 * becomes `failed` and its partial object, if any, is deleted.
 * @returns ids closed
 */
export async function closeInterruptedBackups(ctx: SiloContext, tenant: Tenant): Promise<number[]> {
  const stale = await ctx.catalog.backups.running(tenant.id);
  for (const b of stale) {
    if (ctx.storage && b.storageKey) await ctx.storage.delete(b.storageKey).catch(() => undefined);
    await ctx.catalog.backups.fail(b.id, 'interrupted: its process stopped before the backup was recorded');
  }
  return stale.map((b) => b.id);
}
