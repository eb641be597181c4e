/**
 * The idempotent steps that bring a tenant's database to life, shared by create,
 * recreate and repair: database -> account and grant -> migrations -> seed -> active.
 * Each step can run again after a crash and converges.
 */
import type { Knex } from 'knex';
import type { Tenant } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { seedTenant } from '../crm/seed.js';
import { isPendingSlug } from '../lib/identifiers.js';
import { hashPassword } from '../lib/passwords.js';
import { decryptSecret, generatePassword } from '../lib/secrets.js';
import { fenceAccount, unfenceAccount } from './account-fence.js';
import { forgetPreviousPassword } from './account-passwords.js';
import type { OperationHandle } from './operation.js';
import { isEmptyDatabase, runScript, schemaScript, resetInterruptedScript } from './schema-script.js';
import { migrationLockName, tenantMigrations, tenantMigrator, withAdvisoryLock } from './tenant-schema.js';

/** The account of a tenant (`'db_user'@'SILO_TENANT_DB_USER_HOST'`). */
export function tenantAccount(ctx: SiloContext, tenant: Pick<Tenant, 'dbUser'>) {
  return { user: tenant.dbUser, host: ctx.config.tenantDbUserHost };
}

/** Step `database`: `CREATE DATABASE IF NOT EXISTS` on the tenant's server. */
export async function ensureDatabase(ctx: SiloContext, tenant: Tenant): Promise<void> {
  const { sql } = await ctx.admin.server(tenant.databaseServerId);
  await sql.createDatabase(tenant.databaseName);
}

/**
 * Step `user`: the tenant account exists, has the stored password and its connection
 * limit, and holds DML on its database only (anything more is revoked).
 * @returns the extra privileges found and revoked (empty for an exact account)
 */
export async function ensureAccount(ctx: SiloContext, tenant: Tenant): Promise<string[]> {
  const { sql } = await ctx.admin.server(tenant.databaseServerId);
  const account = tenantAccount(ctx, tenant);
  const limit = ctx.config.tenantDbMaxUserConnections;
  await sql.ensureUser(account, decryptSecret(tenant.dbPasswordEnc, ctx.config.secrets), limit);
  // The server has the stored password now: what an interrupted rotation kept is dropped.
  await forgetPreviousPassword((await ctx.admin.server(tenant.databaseServerId)).knex, account, ctx.catalog.knex, tenant.id);
  return sql.grantTenant(account, tenant.databaseName, limit);
}

/**
 * Applies pending migrations on a tenant database under its advisory lock, and records
 * the schema version in the catalog. Runs with the server's admin account. An empty
 * database gets the whole set from its schema script in one round trip
 * (`schema-script.ts`: the same tables, rows and bookkeeping as running the migrations);
 * one an interrupted script left is emptied first, then made again.
 * @returns names applied now (empty when up to date)
 */
export async function applyMigrations(ctx: SiloContext, tenant: Tenant, onApplied?: (name: string) => void): Promise<string[]> {
  return ctx.admin.withTenantDatabase(tenant, (knex) =>
    withAdvisoryLock(knex, migrationLockName(tenant), ctx.config.migrationLockTimeoutS, async (lock) => {
      const migrations = await tenantMigrations(ctx.config);
      if (migrations.length && ((await isEmptyDatabase(knex)) || (await resetInterruptedScript(knex, migrations)).length)) {
        const { url } = await ctx.admin.server(tenant.databaseServerId);
        const script = await schemaScript(ctx.catalog.knex, tenant.databaseServerId, url, migrations, ctx.config.tenantDbPrefix);
        if (script) {
          await lock.assertHeld();
          await runScript(url, tenant.databaseName, script, ctx.config.faultKillAfterStatement);
          await lock.assertHeld();
          if (onApplied) script.migrations.forEach(onApplied);
          await ctx.catalog.tenants.update(tenant.id, { schemaVersion: script.latest });
          tenant.schemaVersion = script.latest;
          return [...script.migrations];
        }
      }
      const migrator = await tenantMigrator(knex, ctx.config);
      // Before each migration: the lock is still this runner's (umzug awaits the listener).
      migrator.on('migrating', () => lock.assertHeld());
      if (onApplied) migrator.on('migrated', ({ name }) => onApplied(name));
      const applied = (await migrator.up()).map((m) => m.name);
      await recordSchemaVersion(ctx, tenant, knex);
      return applied;
    }),
  );
}

/** Writes the newest applied migration of a tenant database to `tenants.schema_version`. */
export async function recordSchemaVersion(ctx: SiloContext, tenant: Tenant, knex: Knex): Promise<string | null> {
  const executed = await (await tenantMigrator(knex, ctx.config)).executed();
  const version = executed.at(-1)?.name ?? null;
  await ctx.catalog.tenants.update(tenant.id, { schemaVersion: version });
  tenant.schemaVersion = version;
  return version;
}

/** What the `seed` step did: the admin's password is set only when it was generated now. */
export interface SeedOutcome {
  adminEmail: string;
  adminCreated: boolean;
  generatedPassword?: string;
}

/**
 * Step `seed`: the first admin and default data, unless already there.
 * @param password the admin's password; generated (and returned once) when absent
 * @param passwordHash the hash of `password` already being computed (provisioning starts it early)
 */
export async function seed(ctx: SiloContext, tenant: Tenant, adminEmail: string, password?: string, passwordHash?: Promise<string>): Promise<SeedOutcome> {
  const generated = password ? undefined : generatePassword(18);
  const result = await ctx.admin.withTenantDatabase(tenant, (knex) =>
    seedTenant(knex, { email: adminEmail, password: password ?? generated!, ...(password && passwordHash ? { passwordHash } : {}) }),
  );
  return result.adminCreated ? { adminEmail, adminCreated: true, ...(generated ? { generatedPassword: generated } : {}) } : { adminEmail, adminCreated: false };
}

/** Default admin email of a tenant created without one. */
export function defaultAdminEmail(slug: string): string {
  return `admin@${slug}.localhost`;
}

/**
 * The status a tenant returns to after provisioning or maintenance: `pending` for a tenant
 * provisioned ahead and not yet claimed (its placeholder slug says so), suspended if it
 * was, else active.
 */
export function settledStatus(tenant: Pick<Tenant, 'suspendedAt' | 'slug'>): 'active' | 'suspended' | 'pending' {
  if (isPendingSlug(tenant.slug)) return 'pending';
  return tenant.suspendedAt ? 'suspended' : 'active';
}

/**
 * Runs the provisioning steps from `database` to `activate` on a tenant whose catalog
 * row exists. Each step is recorded on the operation. The account stays fenced
 * (`account-fence.ts`: locked) until `activate`, so that an API process with a stale
 * tenant row cannot reach a database still being built (recreate). A pending tenant
 * (placeholder slug, provisioned ahead for a signup) gets no admin: the claim adds it,
 * and `activate` leaves it `pending`.
 */
export async function provision(ctx: SiloContext, op: OperationHandle, tenant: Tenant, admin: { email: string; password?: string }): Promise<SeedOutcome> {
  const pending = isPendingSlug(tenant.slug);
  // The admin's hash (argon2id, ~10 ms on libuv's thread pool) is computed while the DDL runs.
  const passwordHash = admin.password && !pending ? hashPassword(admin.password) : undefined;
  // Not awaited if a step fails first: its rejection must not go unhandled.
  passwordHash?.catch(() => undefined);
  // The migrations' modules load (main thread) while the first steps wait on the server; cached.
  tenantMigrations(ctx.config).catch(() => undefined);
  await ensureDatabase(ctx, tenant);
  await op.step('database');
  await ensureAccount(ctx, tenant);
  const { knex } = await ctx.admin.server(tenant.databaseServerId);
  await fenceAccount(knex, tenantAccount(ctx, tenant));
  await op.step('user');
  const applied = await applyMigrations(ctx, tenant);
  await op.note({ migrationsApplied: applied.length, schemaVersion: tenant.schemaVersion });
  await op.step('migrations');
  const seeded: SeedOutcome = pending ? { adminEmail: admin.email, adminCreated: false } : await seed(ctx, tenant, admin.email, admin.password, passwordHash);
  if (!pending) await op.note({ adminEmail: seeded.adminEmail, adminCreated: seeded.adminCreated });
  await op.step('seed');
  const status = settledStatus(tenant);
  await unfenceAccount(knex, tenantAccount(ctx, tenant));
  await ctx.catalog.tenants.update(tenant.id, { status, statusReason: null });
  tenant.status = status;
  tenant.statusReason = null;
  await op.step('activate');
  ctx.events.emit('tenantChanged', tenant.slug);
  return seeded;
}
