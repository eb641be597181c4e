/**
 * The destructive actions: recreate and delete. Each takes a `pre-*` backup first unless
 * told not to, reads the tenant again once it holds the tenant's lock (a recreate queued
 * behind a delete sees the tenant deleted), and fences the tenant account
 * (`account-fence.ts`) before its database is dropped.
 */
import type { Tenant } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { assertAcceptablePassword } from '../lib/passwords.js';
import { emailSchema, parseInput } from '../lib/validation.js';
import { requireStore } from '../storage/s3.js';
import { fenceAccount } from './account-fence.js';
import { BackupFailedError, backupFacts, takeBackup } from './backup-service.js';
import { findMysqlTools } from './dump.js';
import { runOperation, type OperationHandle } from './operation.js';
import { defaultAdminEmail, provision, tenantAccount } from './steps.js';
import { markFailed, type ProvisionResult } from './tenant-create.js';
import { assertLockHeld } from './tenant-lock.js';
import { getTenant } from './tenant-lookup.js';

/** Options of destructive actions (recreate, delete). */
export interface DestructiveOptions {
  /**
   * Take a `pre-recreate`/`pre-delete` backup to S3 first and stop if it fails (default
   * true). `false` destroys the data without a copy: callers must have asked for it
   * explicitly (`--no-backup`).
   */
  backup?: boolean;
}

/**
 * Checks, before anything is written, that a destructive action's backup can be taken.
 * @throws StorageNotConfiguredError / SiloError `DUMP_TOOL_MISSING`
 */
function assertBackupPossible(ctx: SiloContext, opts: DestructiveOptions, action: string): void {
  if (opts.backup === false) return;
  requireStore(ctx.storage, `${action} (it takes a backup first; pass --no-backup to go on without one)`);
  findMysqlTools(ctx.config);
}

/**
 * Step `backup` of a destructive action: the pre-* backup, recorded on the operation.
 * Skipped (and noted) when `backup` is false or the database is already gone.
 */
async function backupBeforeDestroy(
  ctx: SiloContext,
  op: OperationHandle,
  tenant: Tenant,
  kind: 'pre-recreate' | 'pre-delete',
  opts: DestructiveOptions,
): Promise<void> {
  if (opts.backup === false) {
    await op.note({ backup: 'skipped (--no-backup)' });
  } else {
    const { sql } = await ctx.admin.server(tenant.databaseServerId);
    if (await sql.databaseExists(tenant.databaseName)) {
      let b;
      try {
        b = await takeBackup(ctx, tenant, kind, op.id);
      } catch (err) {
        if (!(err instanceof BackupFailedError)) throw err;
        throw new BackupFailedError(`${err.message}; tenant "${tenant.slug}" was not changed (pass --no-backup to go on without a backup)`, err.cause);
      }
      await op.note(backupFacts(b));
    } else {
      await op.note({ backup: `skipped: database ${tenant.databaseName} does not exist` });
    }
  }
  await op.step('backup');
}

/**
 * Fences the tenant account (locked, sessions killed) after checking the caller still
 * holds the tenant lock: what runs right before a tenant database is dropped.
 * @throws LockLostError `LOCK_LOST`
 */
async function fenceBeforeDrop(ctx: SiloContext, tenant: Tenant): Promise<void> {
  await assertLockHeld();
  await fenceAccount((await ctx.admin.server(tenant.databaseServerId)).knex, tenantAccount(ctx, tenant));
}

/**
 * Recreates a tenant: takes a `pre-recreate` backup (unless `backup: false`), starts a
 * new token generation (every earlier token is refused), fences the account, drops its
 * database and account, then provisions it afresh (empty data, current schema, a new
 * first admin).
 * @throws NotFoundError `TENANT_NOT_FOUND`, also when the tenant was deleted while this waited for its lock
 * @throws StorageNotConfiguredError before anything is written when a backup is wanted and S3 is not set up
 * @throws BackupFailedError `BACKUP_FAILED` when the backup fails: nothing was dropped
 * @throws LockLostError `LOCK_LOST` when the tenant lock was lost: it stopped before its next step
 * @param adminEmail the new first admin (default: the tenant's admin email)
 */
export async function recreateTenant(
  ctx: SiloContext,
  slug: string,
  actor: string,
  opts: DestructiveOptions & { adminEmail?: string; adminPassword?: string } = {},
): Promise<ProvisionResult> {
  const found = await getTenant(ctx, slug);
  const chosenEmail = opts.adminEmail ? parseInput(emailSchema, opts.adminEmail) : undefined;
  if (opts.adminPassword !== undefined) assertAcceptablePassword(opts.adminPassword);
  assertBackupPossible(ctx, opts, 'recreate');
  let operationId = 0;
  const admin = await ctx.locks.withLock(found, async () => {
    // Decided on what the catalog says now, under the lock.
    const tenant = await getTenant(ctx, slug);
    const adminEmail = chosenEmail ?? tenant.adminEmail ?? defaultAdminEmail(slug);
    operationId = await ctx.catalog.operations.start({ kind: 'recreate', tenantId: tenant.id, actor, details: { slug, adminEmail } });
    return runOperation(
      ctx,
      { existingId: operationId, kind: 'recreate' },
      async (op) => {
        await backupBeforeDestroy(ctx, op, tenant, 'pre-recreate', opts);
        // The new database starts its user ids again: a new token generation keeps earlier tokens out.
        await ctx.catalog.knex.transaction(async (trx) => {
          await ctx.catalog.tenants.update(tenant.id, { status: 'provisioning', statusReason: 'recreating', adminEmail, schemaVersion: null }, trx);
          await ctx.catalog.tenants.bumpGeneration(tenant.id, trx);
        });
        tenant.status = 'provisioning';
        ctx.events.emit('tenantChanged', slug);
        await op.step('provisioning');
        await fenceBeforeDrop(ctx, tenant);
        const { sql } = await ctx.admin.server(tenant.databaseServerId);
        await sql.dropDatabase(tenant.databaseName);
        await op.step('drop-database');
        await sql.dropUser(tenantAccount(ctx, tenant));
        await op.step('drop-user');
        return provision(ctx, op, tenant, { email: adminEmail, ...(opts.adminPassword ? { password: opts.adminPassword } : {}) });
      },
      // A failed backup changed nothing: the tenant stays as it was.
      async (err, step) => (step === null || step === 'backup' ? undefined : markFailed(ctx, tenant)(err, step)),
    );
  });
  return { tenant: (await ctx.catalog.tenants.findById(found.id))!, operationId, admin };
}

/**
 * Deletes a tenant: takes a `pre-delete` backup (unless `backup: false`; restoring it
 * brings the tenant back), marks it `deleted` and starts a new token generation (the slug
 * stays reserved; its domains are released), then fences the account and drops its
 * database and account. A crash after the mark is finished by `repair`, which drops what
 * is left.
 * @throws NotFoundError `TENANT_NOT_FOUND`, also when another process deleted it while this waited for its lock
 * @throws StorageNotConfiguredError / BackupFailedError as {@link recreateTenant}: nothing was deleted
 */
export async function deleteTenant(
  ctx: SiloContext,
  slug: string,
  actor: string,
  opts: DestructiveOptions = {},
): Promise<{ tenant: Tenant; operationId: number }> {
  const found = await getTenant(ctx, slug);
  assertBackupPossible(ctx, opts, 'delete');
  let operationId = 0;
  await ctx.locks.withLock(found, async () => {
    const tenant = await getTenant(ctx, slug);
    operationId = await ctx.catalog.operations.start({ kind: 'delete', tenantId: tenant.id, actor, details: { slug } });
    await runOperation(ctx, { existingId: operationId, kind: 'delete' }, async (op) => {
      await backupBeforeDestroy(ctx, op, tenant, 'pre-delete', opts);
      await markDeleted(ctx, tenant);
      await op.step('catalog');
      await dropTenantResources(ctx, tenant, (s) => op.step(s));
    });
  });
  return { tenant: (await ctx.catalog.tenants.findById(found.id))!, operationId };
}

/**
 * Marks a tenant deleted in one catalog transaction: status `deleted`, a new token
 * generation (every token refused), its custom domains released; every API process is told.
 * @param reason the status reason (null for an operator's delete)
 */
export async function markDeleted(ctx: SiloContext, tenant: Tenant, reason: string | null = null): Promise<void> {
  await ctx.catalog.knex.transaction(async (trx) => {
    await ctx.catalog.tenants.update(tenant.id, { status: 'deleted', statusReason: reason, deletedAt: new Date() }, trx);
    await ctx.catalog.tenants.bumpGeneration(tenant.id, trx);
    await trx('tenant_domains').where({ tenant_id: tenant.id }).delete();
  });
  ctx.events.emit('tenantChanged', tenant.slug);
}

/**
 * Fences the tenant account, then drops its database and its account (idempotent),
 * recording steps `database` and `user`.
 * @throws LockLostError `LOCK_LOST` (checked before the drop)
 */
export async function dropTenantResources(ctx: SiloContext, tenant: Tenant, step: (s: string) => Promise<void>): Promise<void> {
  await fenceBeforeDrop(ctx, tenant);
  const { sql } = await ctx.admin.server(tenant.databaseServerId);
  await sql.dropDatabase(tenant.databaseName);
  await step('database');
  await sql.dropUser(tenantAccount(ctx, tenant));
  await step('user');
}
