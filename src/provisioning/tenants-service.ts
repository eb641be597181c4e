/**
 * The tenant lifecycle: create, recreate, delete, suspend, resume, custom domains.
 * One implementation, called by the CLI and the platform API. Every action is an
 * operation row; every step is idempotent (see `steps.ts`), so `repair` can finish
 * what a crash interrupted.
 */
import { z } from 'zod';
import type { Tenant, TenantDomain } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { ConflictError, NotFoundError, SiloError } from '../lib/errors.js';
import { faultPoint } from '../lib/faults.js';
import { assertValidSlug, tenantDatabaseName, tenantUserName } from '../lib/identifiers.js';
import { assertAcceptablePassword } from '../lib/passwords.js';
import { encryptSecret, generatePassword } from '../lib/secrets.js';
import { domainSchema, emailSchema, parseInput } from '../lib/validation.js';
import { requireStore } from '../storage/s3.js';
import { BackupFailedError, backupFacts, takeBackup } from './backup-service.js';
import { findMysqlTools } from './dump.js';
import { runOperation, type OperationHandle } from './operation.js';
import { defaultAdminEmail, provision, tenantAccount, type SeedOutcome } from './steps.js';
import { MAX_ERROR_TEXT, safeErrorText } from '../lib/error-text.js';

/** Input of {@link createTenant}. */
export const createTenantInput = z
  .object({
    slug: z.string(),
    name: z.string().trim().min(1).max(200).optional(),
    plan: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'must be 1-32 lower-case letters, digits or hyphens')
      .default('standard'),
    adminEmail: emailSchema.optional(),
    adminPassword: z.string().optional(),
  })
  .strict();
export type CreateTenantInput = z.input<typeof createTenantInput>;

/** Result of create/recreate: the tenant, its operation, and the admin's password when generated now (shown once). */
export interface ProvisionResult {
  tenant: Tenant;
  operationId: number;
  admin: SeedOutcome;
}

/**
 * Loads a tenant by slug.
 * @throws ValidationError for a malformed slug; NotFoundError `TENANT_NOT_FOUND`
 */
export async function getTenant(ctx: SiloContext, slug: string, opts: { includeDeleted?: boolean } = {}): Promise<Tenant> {
  assertValidSlug(slug);
  const tenant = await ctx.catalog.tenants.findBySlug(slug);
  if (!tenant || (tenant.status === 'deleted' && !opts.includeDeleted)) {
    throw new NotFoundError(`tenant "${slug}" not found`, 'TENANT_NOT_FOUND', { slug });
  }
  return tenant;
}

/** Picks the active database server with the fewest live tenants. */
async function pickServer(ctx: SiloContext): Promise<number> {
  const servers = (await ctx.catalog.servers.list()).filter((s) => s.status === 'active');
  if (!servers.length)
    throw new SiloError('no active database server in the catalog: run `silo catalog migrate` first', { code: 'NO_DATABASE_SERVER', status: 503 });
  const counts = await ctx.catalog.tenants.countByServer();
  servers.sort((a, b) => (counts.get(a.id) ?? 0) - (counts.get(b.id) ?? 0) || a.id - b.id);
  return servers[0]!.id;
}

/**
 * Creates a tenant: catalog row (`provisioning`) -> database -> account + grant ->
 * migrations -> first admin -> `active`.
 * @throws ValidationError before anything is written (bad slug, email, password, plan)
 * @throws ConflictError `TENANT_EXISTS` when the slug is taken (nothing is written)
 * @throws OperationFailedError when a step fails: the tenant is `failed` and `repair` resumes it
 */
export async function createTenant(ctx: SiloContext, raw: CreateTenantInput, actor: string): Promise<ProvisionResult> {
  const input = parseInput(createTenantInput, raw);
  assertValidSlug(input.slug);
  if (input.adminPassword !== undefined) assertAcceptablePassword(input.adminPassword);
  const { tenantDbPrefix: prefix } = ctx.config;
  const databaseServerId = await pickServer(ctx);
  const adminEmail = input.adminEmail ?? defaultAdminEmail(input.slug);
  const { tenantId, operationId } = await ctx.catalog.knex.transaction(async (trx) => {
    const tenantId = await ctx.catalog.tenants.insert(
      {
        slug: input.slug,
        name: input.name ?? input.slug,
        plan: input.plan,
        databaseServerId,
        databaseName: tenantDatabaseName(prefix, input.slug),
        dbUser: tenantUserName(prefix, input.slug),
        dbPasswordEnc: encryptSecret(generatePassword(), ctx.config.secrets),
        adminEmail,
      },
      trx,
    );
    const operationId = await ctx.catalog.operations.start({ kind: 'create', tenantId, actor, details: { slug: input.slug, adminEmail } }, trx);
    await ctx.catalog.operations.step(operationId, 'catalog', trx);
    return { tenantId, operationId };
  });
  faultPoint(ctx.config, 'create', 'catalog');
  const tenant = (await ctx.catalog.tenants.findById(tenantId))!;
  const admin = await ctx.locks.withLock(tenant, () =>
    runOperation(
      ctx,
      { existingId: operationId, kind: 'create' },
      (op) => provision(ctx, op, tenant, { email: adminEmail, ...(input.adminPassword ? { password: input.adminPassword } : {}) }),
      markFailed(ctx, tenant),
    ),
  );
  return { tenant, operationId, admin };
}

/** onFailure hook: the tenant becomes `failed` with the step and reason. */
function markFailed(ctx: SiloContext, tenant: Tenant) {
  return async (err: unknown, step: string | null) => {
    const reason = `failed after step ${step ?? '(none)'}: ${safeErrorText(err)}`.slice(0, MAX_ERROR_TEXT);
    await ctx.catalog.tenants.update(tenant.id, { status: 'failed', statusReason: reason });
    ctx.events.emit('tenantChanged', tenant.slug);
  };
}

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
 * Recreates a tenant: takes a `pre-recreate` backup (unless `backup: false`), starts a
 * new token generation (every earlier token is refused), drops its database and account,
 * then provisions it afresh (empty data, current schema, a new first admin).
 * @throws StorageNotConfiguredError before anything is written when a backup is wanted and S3 is not set up
 * @throws BackupFailedError `BACKUP_FAILED` when the backup fails: nothing was dropped
 * @param adminEmail the new first admin (default: the tenant's admin email)
 */
export async function recreateTenant(
  ctx: SiloContext,
  slug: string,
  actor: string,
  opts: DestructiveOptions & { adminEmail?: string; adminPassword?: string } = {},
): Promise<ProvisionResult> {
  const tenant = await getTenant(ctx, slug);
  const adminEmail = opts.adminEmail ? parseInput(emailSchema, opts.adminEmail) : (tenant.adminEmail ?? defaultAdminEmail(slug));
  if (opts.adminPassword !== undefined) assertAcceptablePassword(opts.adminPassword);
  assertBackupPossible(ctx, opts, 'recreate');
  let operationId = 0;
  const admin = await ctx.locks.withLock(tenant, async () => {
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
  return { tenant: (await ctx.catalog.tenants.findById(tenant.id))!, operationId, admin };
}

/**
 * Deletes a tenant: takes a `pre-delete` backup (unless `backup: false`; restoring it
 * brings the tenant back), marks it `deleted` and starts a new token generation (the slug
 * stays reserved; its domains are released), then drops its database and account.
 * @throws StorageNotConfiguredError / BackupFailedError as {@link recreateTenant}: nothing was deleted A crash after the mark is finished
 * by `repair`, which drops what is left.
 */
export async function deleteTenant(
  ctx: SiloContext,
  slug: string,
  actor: string,
  opts: DestructiveOptions = {},
): Promise<{ tenant: Tenant; operationId: number }> {
  const tenant = await getTenant(ctx, slug);
  assertBackupPossible(ctx, opts, 'delete');
  let operationId = 0;
  await ctx.locks.withLock(tenant, async () => {
    operationId = await ctx.catalog.operations.start({ kind: 'delete', tenantId: tenant.id, actor, details: { slug } });
    await runOperation(ctx, { existingId: operationId, kind: 'delete' }, async (op) => {
      await backupBeforeDestroy(ctx, op, tenant, 'pre-delete', opts);
      await ctx.catalog.knex.transaction(async (trx) => {
        await ctx.catalog.tenants.update(tenant.id, { status: 'deleted', statusReason: null, deletedAt: new Date() }, trx);
        await ctx.catalog.tenants.bumpGeneration(tenant.id, trx);
        await trx('tenant_domains').where({ tenant_id: tenant.id }).delete();
      });
      ctx.events.emit('tenantChanged', slug);
      await op.step('catalog');
      await dropTenantResources(ctx, tenant, op.step);
    });
  });
  return { tenant: (await ctx.catalog.tenants.findById(tenant.id))!, operationId };
}

/** Drops a tenant's database then its account (idempotent), recording steps `database` and `user`. */
export async function dropTenantResources(ctx: SiloContext, tenant: Tenant, step: (s: string) => Promise<void>): Promise<void> {
  const { sql } = await ctx.admin.server(tenant.databaseServerId);
  await sql.dropDatabase(tenant.databaseName);
  await step('database');
  await sql.dropUser(tenantAccount(ctx, tenant));
  await step('user');
}

/**
 * Suspends an active tenant: the API answers 403 for it; data stays. Suspending a
 * suspended tenant changes nothing (idempotent).
 * @throws ConflictError `INVALID_STATE` when the tenant is neither active nor suspended
 */
export async function suspendTenant(ctx: SiloContext, slug: string, actor: string, reason?: string): Promise<Tenant> {
  const tenant = await getTenant(ctx, slug);
  if (tenant.status === 'suspended') return tenant;
  await ctx.locks.withLock(tenant, async () => {
    const operationId = await ctx.catalog.operations.start({ kind: 'suspend', tenantId: tenant.id, actor, details: { slug, reason: reason ?? null } });
    await runOperation(ctx, { existingId: operationId, kind: 'suspend' }, async (op) => {
      const ok = await ctx.catalog.knex.transaction(async (trx) => {
        const changed = await ctx.catalog.tenants.transition(tenant.id, ['active'], 'suspended', reason ?? null, trx);
        if (changed) await ctx.catalog.tenants.update(tenant.id, { suspendedAt: new Date() }, trx);
        return changed;
      });
      if (!ok)
        throw new ConflictError(`tenant "${slug}" is ${tenant.status}; only an active tenant can be suspended`, 'INVALID_STATE', { status: tenant.status });
      await op.step('suspended');
    });
  });
  ctx.events.emit('tenantChanged', slug);
  return (await ctx.catalog.tenants.findById(tenant.id))!;
}

/**
 * Resumes a suspended tenant. Resuming an active tenant changes nothing (idempotent).
 * @throws ConflictError `INVALID_STATE` when the tenant is neither suspended nor active
 */
export async function resumeTenant(ctx: SiloContext, slug: string, actor: string): Promise<Tenant> {
  const tenant = await getTenant(ctx, slug);
  if (tenant.status === 'active') return tenant;
  await ctx.locks.withLock(tenant, async () => {
    const operationId = await ctx.catalog.operations.start({ kind: 'resume', tenantId: tenant.id, actor, details: { slug } });
    await runOperation(ctx, { existingId: operationId, kind: 'resume' }, async (op) => {
      const ok = await ctx.catalog.knex.transaction(async (trx) => {
        const changed = await ctx.catalog.tenants.transition(tenant.id, ['suspended'], 'active', null, trx);
        if (changed) await ctx.catalog.tenants.update(tenant.id, { suspendedAt: null }, trx);
        return changed;
      });
      if (!ok)
        throw new ConflictError(`tenant "${slug}" is ${tenant.status}; only a suspended tenant can be resumed`, 'INVALID_STATE', { status: tenant.status });
      await op.step('active');
    });
  });
  ctx.events.emit('tenantChanged', slug);
  return (await ctx.catalog.tenants.findById(tenant.id))!;
}

/**
 * Adds a custom domain to a tenant (RFC 1123 host name, unique across tenants).
 * @throws ValidationError; ConflictError `DOMAIN_TAKEN`
 */
export async function addDomain(ctx: SiloContext, slug: string, rawDomain: string, actor: string): Promise<TenantDomain[]> {
  const domain = parseInput(domainSchema, rawDomain);
  const tenant = await getTenant(ctx, slug);
  const operationId = await ctx.catalog.operations.start({ kind: 'domain-add', tenantId: tenant.id, actor, details: { slug, domain } });
  await runOperation(ctx, { existingId: operationId, kind: 'domain-add' }, async (op) => {
    await ctx.catalog.tenants.addDomain(tenant.id, domain);
    await op.step('added');
  });
  ctx.events.emit('tenantChanged', slug);
  return ctx.catalog.tenants.listDomains(tenant.id);
}

/**
 * Removes a custom domain of a tenant.
 * @throws NotFoundError `DOMAIN_NOT_FOUND`
 */
export async function removeDomain(ctx: SiloContext, slug: string, rawDomain: string, actor: string): Promise<TenantDomain[]> {
  const domain = parseInput(domainSchema, rawDomain);
  const tenant = await getTenant(ctx, slug);
  const existing = await ctx.catalog.tenants.listDomains(tenant.id);
  if (!existing.some((d) => d.domain === domain)) throw new NotFoundError(`tenant "${slug}" has no domain ${domain}`, 'DOMAIN_NOT_FOUND');
  const operationId = await ctx.catalog.operations.start({ kind: 'domain-remove', tenantId: tenant.id, actor, details: { slug, domain } });
  await runOperation(ctx, { existingId: operationId, kind: 'domain-remove' }, async (op) => {
    await ctx.catalog.tenants.removeDomain(tenant.id, domain);
    await op.step('removed');
  });
  ctx.events.emit('tenantChanged', slug);
  return ctx.catalog.tenants.listDomains(tenant.id);
}
