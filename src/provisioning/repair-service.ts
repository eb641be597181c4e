/**
 * `repair`: converges a tenant to the state its catalog record says, whatever a crash
 * or a hand-made change left behind, and finds orphans (databases and accounts with the
 * tenant prefix that no tenant owns).
 */
import type { Knex } from 'knex';
import type { Tenant } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { ValidationError } from '../lib/errors.js';
import { isPendingSlug } from '../lib/identifiers.js';
import { createUsersRepository } from '../crm/users-repository.js';
import type { Account } from './mysql-admin.js';
import { closeInterruptedBackups } from './backup-service.js';
import { runOperation } from './operation.js';
import { interruptedRestore, loadBackupInto } from './restore-service.js';
import { applyMigrations, defaultAdminEmail, ensureAccount, ensureDatabase, seed, settledStatus, tenantAccount, type SeedOutcome } from './steps.js';
import { readSchemaState } from './tenant-schema.js';
import { isAccountLocked, unfenceAccount } from './account-fence.js';
import { dropTenantResources } from './tenant-destroy.js';
import { getTenant } from './tenant-lookup.js';
import { safeErrorText } from '../lib/error-text.js';

/** What repair found and did for one tenant. */
export interface RepairReport {
  slug: string;
  /** Status before and after. */
  statusBefore: Tenant['status'];
  status: Tenant['status'];
  /** Actions planned (dry run) or taken, e.g. `create-database`, `apply-migrations`, `resume-restore`. */
  actions: string[];
  /** Problems repair cannot fix by itself (e.g. drift). */
  warnings?: string[];
  outcome: 'ok' | 'repaired' | 'would-repair' | 'failed';
  error?: string;
  operationId?: number;
  /** Set when repair had to create the first admin: its password is shown once. */
  admin?: SeedOutcome;
}

/** Databases and accounts with the tenant prefix that no tenant (of any status) owns. */
export interface Orphans {
  databases: string[];
  users: Account[];
  pruned: boolean;
}

/**
 * The status repair converges a live tenant to: its settled status, or `active` for a
 * tenant whose restore from `deleted` was interrupted (`deletedAt` still set).
 */
function targetStatus(tenant: Tenant): 'active' | 'suspended' | 'pending' {
  return tenant.deletedAt ? 'active' : settledStatus(tenant);
}

async function plan(ctx: SiloContext, tenant: Tenant, warnings: string[]): Promise<string[]> {
  const { sql } = await ctx.admin.server(tenant.databaseServerId);
  const account = tenantAccount(ctx, tenant);
  const dbExists = await sql.databaseExists(tenant.databaseName);
  const userExists = await sql.userExists(account);
  if (tenant.status === 'deleted') {
    return [...(dbExists ? ['drop-database'] : []), ...(userExists ? ['drop-user'] : [])];
  }
  const actions: string[] = [];
  if (!dbExists) actions.push('create-database');
  if (!userExists) actions.push('create-user');
  if (!userExists || !dbExists) actions.push('grant');
  else {
    const grants = await sql.tenantGrantState(account, tenant.databaseName, ctx.config.tenantDbMaxUserConnections);
    if (grants.missing.length) actions.push('grant');
    if (grants.fixes.length) {
      actions.push('revoke-extra-privileges');
      warnings.push(...grants.fixes.map((f) => `account ${account.user}: ${f.problem}`));
    }
  }
  if (userExists && (await isAccountLocked((await ctx.admin.server(tenant.databaseServerId)).knex, account))) actions.push('unlock-account');
  // A pending tenant waits for the admin its claim (a signup) brings.
  let adminMissing = !isPendingSlug(tenant.slug);
  if (dbExists) {
    const tables = await sql.listTables(tenant.databaseName);
    const state = await ctx.admin.withTenantDatabase(tenant, (knex) => readSchemaState(knex, ctx.config, tables));
    if (state.pending.length) actions.push('apply-migrations');
    // Tables its applied migrations made but that are gone cannot be re-made by running
    // migrations again: say so, so the operator restores a backup or recreates.
    for (const t of state.drift.missing) warnings.push(`table ${t} is missing (drift): restore a backup or recreate the tenant`);
    if (tables.includes('users')) {
      adminMissing = await ctx.admin.withTenantDatabase(tenant, (knex) => adminIsMissing(knex, tenant, warnings));
    }
  } else {
    actions.push('apply-migrations');
  }
  if (adminMissing) actions.push('seed-admin');
  if (tenant.status !== targetStatus(tenant) || tenant.deletedAt) actions.push(`set-status-${targetStatus(tenant)}`);
  return actions;
}

/**
 * Whether the `seed` step has an admin to create: exactly when seeding would create one,
 * that is no active admin and no user with the tenant's admin email. An admin that exists
 * but was deactivated is someone's decision, not damage: repair warns and leaves it, so
 * it does not plan `seed-admin` again on every run.
 */
async function adminIsMissing(knex: Knex, tenant: Tenant, warnings: string[]): Promise<boolean> {
  // A pending tenant waits for the admin its claim (a signup) brings.
  if (isPendingSlug(tenant.slug)) return false;
  const users = createUsersRepository(knex);
  if ((await users.countActiveAdmins()) > 0) return false;
  const email = tenant.adminEmail ?? defaultAdminEmail(tenant.slug);
  if (!(await users.findForLogin(email))) return true;
  warnings.push(`no active admin: user ${email} exists but is inactive or not an admin; reactivate it (repair does not)`);
  return false;
}

/**
 * Repairs one tenant, holding its lifecycle lock: any operation still marked `running`
 * on it was interrupted (its process is gone) and is closed as failed.
 * @param dryRun report the plan, change nothing
 * @throws ConflictError `TENANT_BUSY` when another operation is running on the tenant
 */
export async function repairTenant(ctx: SiloContext, slug: string, actor: string, dryRun = false): Promise<RepairReport> {
  const found = await getTenant(ctx, slug, { includeDeleted: true });
  // Planned on the catalog row as it is once the lock is held.
  return ctx.locks.withLock(found, async () => repairLocked(ctx, await getTenant(ctx, slug, { includeDeleted: true }), actor, dryRun));
}

async function repairLocked(ctx: SiloContext, tenant: Tenant, actor: string, dryRun: boolean): Promise<RepairReport> {
  const slug = tenant.slug;
  const statusBefore = tenant.status;
  const base = { slug, statusBefore, status: tenant.status };
  const warnings: string[] = [];
  let actions: string[];
  try {
    actions = await plan(ctx, tenant, warnings);
  } catch (err) {
    return { ...base, actions: [], outcome: 'failed', error: safeErrorText(err) };
  }
  const resume = await interruptedRestore(ctx, tenant);
  if (resume) {
    actions = ['resume-restore'];
    warnings.length = 0;
  }
  const interrupted = await ctx.catalog.operations.running(tenant.id);
  if (interrupted.length) actions.unshift('close-interrupted-operations');
  if (!actions.length) return { ...base, actions, warnings, outcome: 'ok' };
  if (dryRun) return { ...base, actions, warnings, outcome: 'would-repair' };
  const operationId = await ctx.catalog.operations.start({ kind: 'repair', tenantId: tenant.id, actor, details: { slug, actions, statusBefore } });
  try {
    const admin = await runOperation(ctx, { existingId: operationId, kind: 'repair' }, async (op) => {
      const closed = await ctx.catalog.operations.closeInterrupted(tenant.id, operationId);
      if (closed.length) await op.note({ interruptedOperations: closed });
      const closedBackups = await closeInterruptedBackups(ctx, tenant);
      if (closedBackups.length) await op.note({ interruptedBackups: closedBackups });
      if (resume) {
        // The database was replaced by an unfinished restore: load the same backup again.
        await op.note({ resumedRestoreBackupId: resume.id });
        await loadBackupInto(ctx, tenant, resume, op);
        return undefined;
      }
      if (tenant.status === 'deleted') {
        await dropTenantResources(ctx, tenant, (s) => op.step(s));
        return undefined;
      }
      await ensureDatabase(ctx, tenant);
      await op.step('database');
      const revoked = await ensureAccount(ctx, tenant);
      if (revoked.length) await op.note({ revokedPrivileges: revoked });
      await op.step('user');
      await applyMigrations(ctx, tenant);
      await op.step('migrations');
      // A live tenant's account is unlocked (a fence left by an interrupted restore, recreate or create).
      await unfenceAccount((await ctx.admin.server(tenant.databaseServerId)).knex, tenantAccount(ctx, tenant));
      let admin: SeedOutcome | undefined;
      if (actions.includes('seed-admin')) {
        admin = await seed(ctx, tenant, tenant.adminEmail ?? defaultAdminEmail(slug));
        await op.note({ adminEmail: admin.adminEmail, adminCreated: admin.adminCreated });
      }
      await op.step('seed');
      // A restore of a deleted tenant killed once its data was back (step `migrations`)
      // leaves `deletedAt` set: the tenant comes back active, no longer deleted.
      const status = targetStatus(tenant);
      await ctx.catalog.tenants.update(tenant.id, { status, statusReason: null, ...(tenant.deletedAt ? { deletedAt: null } : {}) });
      ctx.events.emit('tenantChanged', slug);
      await op.step('activate');
      return admin;
    });
    const after = (await ctx.catalog.tenants.findById(tenant.id))!;
    return { ...base, status: after.status, actions, warnings, outcome: 'repaired', operationId, ...(admin ? { admin } : {}) };
  } catch (err) {
    const after = await ctx.catalog.tenants.findById(tenant.id);
    return { ...base, status: after?.status ?? tenant.status, actions, warnings, outcome: 'failed', operationId, error: safeErrorText(err) };
  }
}

/**
 * Repairs several tenants (all but long-deleted ones with `all`), one at a time, and with
 * `all` reports orphans, removing them only when `pruneOrphans`.
 */
export async function repairTenants(
  ctx: SiloContext,
  actor: string,
  opts: { slugs?: string[]; all?: boolean; dryRun?: boolean; pruneOrphans?: boolean },
): Promise<{ tenants: RepairReport[]; orphans?: Orphans }> {
  if (!opts.all && !opts.slugs?.length) throw new ValidationError('name at least one tenant, or use --all');
  if (opts.pruneOrphans && !opts.all) throw new ValidationError('--prune-orphans needs --all');
  const slugs = opts.all ? (await ctx.catalog.tenants.list()).map((t) => t.slug) : [...new Set(opts.slugs)];
  if (!opts.all) for (const s of slugs) await getTenant(ctx, s, { includeDeleted: true });
  const tenants: RepairReport[] = [];
  for (const slug of slugs) {
    try {
      tenants.push(await repairTenant(ctx, slug, actor, opts.dryRun));
    } catch (err) {
      // e.g. TENANT_BUSY: report it and go on with the others.
      const t = await ctx.catalog.tenants.findBySlug(slug);
      tenants.push({ slug, statusBefore: t!.status, status: t!.status, actions: [], outcome: 'failed', error: safeErrorText(err) });
    }
  }
  if (!opts.all) return { tenants };
  return { tenants, orphans: await findOrphans(ctx, Boolean(opts.pruneOrphans) && !opts.dryRun) };
}

/**
 * Databases and accounts with the tenant prefix on every server that no tenant owns.
 * With `prune`, each one is checked again against the catalog under the names lock (which
 * a create holds while its row commits) right before it is dropped: a name a concurrent
 * create has just claimed is kept, and left out of the report.
 */
export async function findOrphans(ctx: SiloContext, prune: boolean): Promise<Orphans> {
  const all = await ctx.catalog.tenants.list();
  const ownedDbs = new Set(all.map((t) => `${t.databaseServerId}/${t.databaseName}`));
  const ownedUsers = new Set(all.map((t) => `${t.databaseServerId}/${t.dbUser}`));
  const databases: string[] = [];
  const users: Account[] = [];
  for (const server of await ctx.catalog.servers.list()) {
    const { sql } = await ctx.admin.server(server.id);
    const dbs = (await sql.listDatabases(ctx.config.tenantDbPrefix)).filter((d) => !ownedDbs.has(`${server.id}/${d}`));
    const accounts = (await sql.listUsers(ctx.config.tenantDbPrefix)).filter((a) => !ownedUsers.has(`${server.id}/${a.user}`));
    if (prune) {
      for (const d of dbs) {
        const dropped = await ctx.locks.withNamesLock(async () => !(await ownsName(ctx, server.id, { database_name: d })) && (await sql.dropDatabase(d), true));
        if (dropped) databases.push(d);
      }
      for (const a of accounts) {
        const dropped = await ctx.locks.withNamesLock(async () => !(await ownsName(ctx, server.id, { db_user: a.user })) && (await sql.dropUser(a), true));
        if (dropped) users.push(a);
      }
    } else {
      databases.push(...dbs);
      users.push(...accounts);
    }
  }
  return { databases, users, pruned: prune };
}

/** True when a tenant (of any status) on this server now owns the database or user name. */
async function ownsName(ctx: SiloContext, serverId: number, name: { database_name: string } | { db_user: string }): Promise<boolean> {
  const row: unknown = await ctx.catalog
    .knex('tenants')
    .where({ database_server_id: serverId, ...name })
    .first('id');
  return row !== undefined;
}
