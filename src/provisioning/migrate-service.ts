/**
 * Tenant schema migrations across the fleet: migrate, rollback, status (with drift).
 * Each tenant is migrated under its own advisory lock, with bounded concurrency; a
 * failing tenant does not stop the others. A tenant being migrated is in `maintenance`
 * (the API answers 503 + Retry-After for it alone) and returns to its settled status.
 */
import pLimit from 'p-limit';
import type { Tenant, TenantStatus } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { ConflictError, ValidationError } from '../lib/errors.js';
import { runOperation } from './operation.js';
import { interruptedRestore } from './restore-service.js';
import { recordSchemaVersion, settledStatus } from './steps.js';
import { latestTenantVersion, migrationLockName, readSchemaState, tenantMigrator, withAdvisoryLock, type TenantSchemaState } from './tenant-schema.js';
import { getTenant } from './tenants-service.js';
import { MAX_ERROR_TEXT, safeErrorText } from '../lib/error-text.js';

/** Statuses whose databases are migrated by `migrate --all`. */
export const MIGRATABLE: readonly TenantStatus[] = ['active', 'suspended', 'maintenance', 'pending'];

/**
 * Outcome for one tenant. `up-to-date` is decided from the schema version the catalog
 * recorded (one catalog query for the whole run, no tenant connection), unless
 * {@link MigrateOptions.verify} asks for each tenant's own migrations table.
 */
export interface MigrateResult {
  slug: string;
  outcome: 'up-to-date' | 'migrated' | 'would-migrate' | 'failed' | 'skipped';
  applied: string[];
  pending: string[];
  schemaVersion: string | null;
  error?: string;
  operationId?: number;
  /** Wall time for this tenant, in ms. */
  durationMs: number;
}

/** Options of {@link migrateTenants}. */
export interface MigrateOptions {
  /** Slugs to migrate; ignored with `all`. */
  slugs?: string[];
  all?: boolean;
  /** Tenants migrated at once (1-64, default 4). */
  concurrency?: number;
  /** List what would be applied, change nothing. */
  dryRun?: boolean;
  /**
   * Read each tenant's migrations table (under its locks) even when the catalog records it
   * at the newest version: finds a database changed behind the catalog's back. The
   * catalog's version is written only when it differs from what the database holds.
   */
  verify?: boolean;
  /** Called once per tenant as it finishes. */
  onResult?: (r: MigrateResult) => void;
  /** Called once with the number of tenants to visit. */
  onStart?: (total: number) => void;
}

async function selectTenants(ctx: SiloContext, opts: MigrateOptions): Promise<Tenant[]> {
  if (opts.all) return ctx.catalog.tenants.list({ statuses: MIGRATABLE });
  if (!opts.slugs?.length) throw new ValidationError('name at least one tenant, or use --all');
  const tenants: Tenant[] = [];
  for (const slug of [...new Set(opts.slugs)]) tenants.push(await getTenant(ctx, slug));
  return tenants;
}

/**
 * Migrates tenants to the newest tenant migration.
 * @returns one result per tenant, in slug order
 * @throws ValidationError/NotFoundError for bad or unknown slugs (before any tenant is touched)
 */
export async function migrateTenants(ctx: SiloContext, actor: string, opts: MigrateOptions): Promise<MigrateResult[]> {
  const concurrency = opts.concurrency ?? 4;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new ValidationError('concurrency must be an integer from 1 to 64');
  const tenants = await selectTenants(ctx, opts);
  const latest = await latestTenantVersion(ctx.config);
  opts.onStart?.(tenants.length);
  const limit = pLimit(concurrency);
  return Promise.all(
    tenants.map((tenant) =>
      limit(async () => {
        const result = await migrateOne(ctx, tenant, latest, actor, opts.dryRun ?? false, opts.verify ?? false);
        opts.onResult?.(result);
        return result;
      }),
    ),
  );
}

async function migrateOne(ctx: SiloContext, tenant: Tenant, latest: string | null, actor: string, dryRun: boolean, verify: boolean): Promise<MigrateResult> {
  const started = performance.now();
  const base = { slug: tenant.slug, applied: [] as string[], pending: [] as string[], schemaVersion: tenant.schemaVersion };
  const done = (r: Partial<MigrateResult> & Pick<MigrateResult, 'outcome'>): MigrateResult => ({
    ...base,
    ...r,
    durationMs: Math.round(performance.now() - started),
  });
  if (!MIGRATABLE.includes(tenant.status)) {
    return done({ outcome: 'skipped', error: `tenant is ${tenant.status}; run \`silo tenants repair ${tenant.slug}\`` });
  }
  if (!verify && tenant.status !== 'maintenance' && tenant.schemaVersion === latest) return done({ outcome: 'up-to-date' });
  try {
    return await ctx.locks.withLock(
      tenant,
      () =>
        ctx.admin.withTenantDatabase(tenant, (knex) =>
          withAdvisoryLock(knex, migrationLockName(tenant), ctx.config.migrationLockTimeoutS, async () => {
            const migrator = await tenantMigrator(knex, ctx.config);
            const pending = (await migrator.pending()).map((m) => m.name);
            // Re-read under the lock: another runner may have finished this tenant meanwhile.
            const fresh = (await ctx.catalog.tenants.findById(tenant.id))!;
            // A restore that stopped after dropping the database left it empty or half-loaded:
            // migrating and reopening it would serve that. Only repair loads the backup again.
            if (fresh.status === 'maintenance' && (await interruptedRestore(ctx, fresh))) {
              return done({
                outcome: 'skipped',
                pending,
                error: `a restore stopped after replacing the database; run \`silo tenants repair ${tenant.slug}\` to load its backup again`,
              });
            }
            if (!pending.length && fresh.status !== 'maintenance') {
              const executed = await migrator.executed();
              const version = executed.at(-1)?.name ?? null;
              if (version !== fresh.schemaVersion) await recordSchemaVersion(ctx, tenant, knex);
              return done({ outcome: 'up-to-date', schemaVersion: version });
            }
            if (dryRun) return done({ outcome: 'would-migrate', pending });
            const operationId = await ctx.catalog.operations.start({ kind: 'migrate', tenantId: tenant.id, actor, details: { slug: tenant.slug, pending } });
            const applied: string[] = [];
            try {
              await runOperation(
                ctx,
                { existingId: operationId, kind: 'migrate' },
                async (op) => {
                  await ctx.catalog.tenants.transition(tenant.id, ['active'], 'maintenance', 'migrating');
                  ctx.events.emit('tenantChanged', tenant.slug);
                  await op.step('maintenance');
                  migrator.on('migrated', ({ name }) => {
                    applied.push(name);
                  });
                  await migrator.up();
                  await recordSchemaVersion(ctx, tenant, knex);
                  await op.note({ applied, schemaVersion: tenant.schemaVersion });
                  await op.step('migrations');
                  await ctx.catalog.tenants.transition(tenant.id, ['maintenance'], settledStatus(fresh), null);
                  ctx.events.emit('tenantChanged', tenant.slug);
                  await op.step('activate');
                },
                async (err) => {
                  // The tenant stays in maintenance with the reason; `migrate` or `repair` resumes it.
                  await recordSchemaVersion(ctx, tenant, knex).catch(() => undefined);
                  await ctx.catalog.tenants.update(tenant.id, { statusReason: `migration failed: ${safeErrorText(err)}`.slice(0, MAX_ERROR_TEXT) });
                },
              );
            } catch (err) {
              return done({ outcome: 'failed', applied, pending, operationId, schemaVersion: tenant.schemaVersion, error: safeErrorText(err) });
            }
            return done({ outcome: 'migrated', applied, pending, operationId, schemaVersion: tenant.schemaVersion });
          }),
        ),
      ctx.config.migrationLockTimeoutS,
    );
  } catch (err) {
    return done({ outcome: 'failed', error: safeErrorText(err) });
  }
}

/**
 * Undoes the newest `step` migrations of one tenant (the tenant is in maintenance meanwhile).
 * @returns names reverted, newest first
 * @throws ValidationError for a bad step count; ConflictError when the tenant cannot be migrated now
 */
export async function rollbackTenant(
  ctx: SiloContext,
  slug: string,
  actor: string,
  step = 1,
): Promise<{ reverted: string[]; schemaVersion: string | null; operationId: number }> {
  if (!Number.isInteger(step) || step < 1) throw new ValidationError('--step must be a positive integer');
  const tenant = await getTenant(ctx, slug);
  if (!MIGRATABLE.includes(tenant.status)) throw new ConflictError(`tenant "${slug}" is ${tenant.status}; run repair first`, 'INVALID_STATE');
  let operationId = 0;
  const reverted = await ctx.locks.withLock(tenant, async () => {
    operationId = await ctx.catalog.operations.start({ kind: 'rollback', tenantId: tenant.id, actor, details: { slug, step } });
    return runOperation(ctx, { existingId: operationId, kind: 'rollback' }, (op) =>
      ctx.admin.withTenantDatabase(tenant, (knex) =>
        withAdvisoryLock(knex, migrationLockName(tenant), ctx.config.migrationLockTimeoutS, async () => {
          const migrator = await tenantMigrator(knex, ctx.config);
          const executed = await migrator.executed();
          if (step > executed.length) throw new ValidationError(`--step ${step} is more than the ${executed.length} applied migrations`);
          await ctx.catalog.tenants.transition(tenant.id, ['active'], 'maintenance', 'rolling back');
          ctx.events.emit('tenantChanged', slug);
          await op.step('maintenance');
          const names = (await migrator.down({ step })).map((m) => m.name);
          await recordSchemaVersion(ctx, tenant, knex);
          await op.note({ reverted: names, schemaVersion: tenant.schemaVersion });
          await op.step('migrations');
          await ctx.catalog.tenants.transition(tenant.id, ['maintenance'], settledStatus(tenant), null);
          ctx.events.emit('tenantChanged', slug);
          await op.step('activate');
          return names;
        }),
      ),
    );
  });
  return { reverted, schemaVersion: tenant.schemaVersion, operationId };
}

/** Schema status of one tenant. `error` is set when its database could not be read. */
export interface TenantStatusReport extends Partial<TenantSchemaState> {
  slug: string;
  status: TenantStatus;
  schemaVersion: string | null;
  error?: string;
}

/**
 * Applied/pending migrations and drift per tenant (all live tenants when `slugs` is empty).
 * @param concurrency tenants read at once (default 4)
 */
export async function tenantsSchemaStatus(ctx: SiloContext, slugs: string[] = [], concurrency = 4): Promise<TenantStatusReport[]> {
  const tenants = slugs.length
    ? await Promise.all([...new Set(slugs)].map((s) => getTenant(ctx, s)))
    : await ctx.catalog.tenants.list({ statuses: ['active', 'suspended', 'maintenance', 'failed', 'provisioning', 'pending'] });
  const limit = pLimit(concurrency);
  return Promise.all(
    tenants.map((t) =>
      limit(async (): Promise<TenantStatusReport> => {
        const head = { slug: t.slug, status: t.status, schemaVersion: t.schemaVersion };
        try {
          const { sql } = await ctx.admin.server(t.databaseServerId);
          if (!(await sql.databaseExists(t.databaseName))) return { ...head, error: `database ${t.databaseName} does not exist` };
          const tables = await sql.listTables(t.databaseName);
          const state = await ctx.admin.withTenantDatabase(t, (knex) => readSchemaState(knex, ctx.config, tables));
          return { ...head, ...state };
        } catch (err) {
          return { ...head, error: safeErrorText(err) };
        }
      }),
    ),
  );
}
