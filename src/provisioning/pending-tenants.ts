/**
 * Pending tenants: tenants provisioned ahead (database, account, migrations with the
 * default pipeline stages; no admin) under a placeholder slug no request can name, so a
 * signup gets a working tenant in one catalog transaction instead of ~50 ms of DDL.
 *
 * - {@link fillPendingTenants} tops the pool up to `SILO_PENDING_TENANTS`, under the catalog
 *   job lock `pending-fill` (one process at a time; `silo serve` runs it on start and
 *   after every claim, `silo tenants pending fill` by hand).
 * - {@link claimPendingTenant} takes one: `SELECT ... FOR UPDATE SKIP LOCKED` on a pending
 *   row (MariaDB 10.6+, MySQL 8.0 §15.7.2.4 "Locking Read Concurrency with NOWAIT and SKIP
 *   LOCKED"), so concurrent claims take different rows without waiting on each other; then
 *   the tenant's lifecycle lock without waiting (a migration or repair running on it makes
 *   the claim try the next one); then, still inside that transaction, the first admin is
 *   written in the tenant database; the catalog commit (slug, name, plan, admin email,
 *   `active`) is the claim. A failure or a crash before that commit leaves the tenant
 *   pending (a stray admin row is removed by the next claim, which first empties `users`).
 */
import type { Knex } from 'knex';
import type { Tenant } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { createAuthService, type IssuedRefreshToken } from '../crm/auth-service.js';
import { createUsersRepository } from '../crm/users-repository.js';
import { ConflictError } from '../lib/errors.js';
import { faultPoint } from '../lib/faults.js';
import { PENDING_SLUG_PREFIX } from '../lib/identifiers.js';
import { withJobLock } from '../jobs/maintenance.js';
import { createPendingTenant } from './tenant-create.js';
import { discardTenant } from './tenant-discard.js';

/** `LIKE` pattern of placeholder slugs ({@link PENDING_SLUG_PREFIX}, its `_` escaped: a wildcard in LIKE). */
const PENDING_SLUG_LIKE = `${PENDING_SLUG_PREFIX.replaceAll('_', '\\_')}%`;

/** What a claim made: the tenant (active), its first admin's id and a refresh token for it. */
export interface ClaimedTenant {
  tenant: Tenant;
  adminUserId: number;
  adminTokenVersion: number;
  refresh: IssuedRefreshToken;
  operationId: number;
}

/** Input of a claim; `passwordHash` is the admin's argon2id hash, computed by the caller. */
export interface ClaimInput {
  slug: string;
  name: string;
  plan: string;
  adminEmail: string;
  adminFullName: string | null;
  passwordHash: string;
  /** Mark the tenant unverified (a signup whose email is not verified yet). */
  unverified: boolean;
  /** SHA-256 (hex) of the email verification token, stored in the catalog. */
  verifyTokenHash?: string;
}

/** Number of pending tenants and of pending tenants still being provisioned. */
export async function countPendingTenants(ctx: SiloContext): Promise<{ pending: number; provisioning: number }> {
  const rows: Array<{ status: string; n: number | string }> = await ctx.catalog
    .knex('tenants')
    .where('slug', 'like', PENDING_SLUG_LIKE)
    .whereIn('status', ['pending', 'provisioning'])
    .groupBy('status')
    .select('status', ctx.catalog.knex.raw('COUNT(*) AS n'));
  const of = (s: string) => Number(rows.find((r) => r.status === s)?.n ?? 0);
  return { pending: of('pending'), provisioning: of('provisioning') };
}

/**
 * Provisions pending tenants until `target` are pending (or being provisioned), one at a
 * time, under the catalog job lock `pending-fill`.
 * @returns how many were made, or `ran: false` when another process holds the lock
 * @throws OperationFailedError of a create that failed (the tenants made before it stay)
 */
export async function fillPendingTenants(ctx: SiloContext, target: number, actor: string): Promise<{ ran: boolean; created: number; pending: number }> {
  const r = await withJobLock(ctx, 'pending-fill', async () => {
    // A pending tenant whose provisioning failed never served anyone: discarded, not repaired.
    const failed = await ctx.catalog.knex('tenants').where('slug', 'like', PENDING_SLUG_LIKE).where({ status: 'failed' }).pluck('id');
    for (const id of failed as number[]) {
      const t = await ctx.catalog.tenants.findById(id);
      if (t) await discardTenant(ctx, t, actor).catch((err: unknown) => ctx.log.warn({ err, tenantId: id }, 'could not discard a failed pending tenant'));
    }
    let created = 0;
    for (;;) {
      const n = await countPendingTenants(ctx);
      if (n.pending + n.provisioning >= target) return { created, pending: n.pending };
      await createPendingTenant(ctx, actor);
      created++;
    }
  });
  return r.ran ? { ran: true, ...r.value } : { ran: false, created: 0, pending: (await countPendingTenants(ctx)).pending };
}

/**
 * Claims one pending tenant for a signup (see the module comment).
 * @param onlyId claim this pending tenant only (one provisioned for the caller), waiting for its row lock
 * @returns the claimed tenant, or undefined when none is pending (or all are busy)
 * @throws ConflictError `TENANT_EXISTS` when the slug is taken or reserved (the tenant stays pending)
 */
export async function claimPendingTenant(ctx: SiloContext, input: ClaimInput, actor: string, onlyId?: number): Promise<ClaimedTenant | undefined> {
  const tried: number[] = [];
  for (let attempt = 0; attempt < 5; attempt++) {
    const trx = await ctx.catalog.knex.transaction();
    try {
      const row: { id: number; slug: string } | undefined = await trx('tenants')
        .where({ status: 'pending' })
        .modify((q) => {
          if (onlyId !== undefined) void q.where({ id: onlyId }).forUpdate();
          else {
            if (tried.length) void q.whereNotIn('id', tried);
            void q.orderBy('id').forUpdate().skipLocked();
          }
        })
        .first('id', 'slug');
      if (!row) return undefined;
      try {
        const claimed = await ctx.locks.withLock(row, () => claimLocked(ctx, trx, row.id, input, actor));
        if (claimed) return claimed;
        tried.push(row.id);
        if (onlyId !== undefined) return undefined;
      } catch (err) {
        // Another operation (a fleet migration, a repair) holds this one: try the next.
        if (err instanceof ConflictError && err.code === 'TENANT_BUSY' && onlyId === undefined) {
          tried.push(row.id);
          continue;
        }
        throw err;
      }
    } finally {
      if (!trx.isCompleted()) await trx.rollback().catch(() => undefined);
    }
  }
  return undefined;
}

/** The claim once the row and the tenant lock are held; undefined when the tenant is no longer pending. */
async function claimLocked(ctx: SiloContext, trx: Knex.Transaction, id: number, input: ClaimInput, actor: string): Promise<ClaimedTenant | undefined> {
  // Read again under the lock, with a locking read (the newest committed row, not the transaction's snapshot).
  const status: { status: string } | undefined = await trx('tenants').where({ id }).forUpdate().first('status');
  if (status?.status !== 'pending') return undefined;
  const pending = (await ctx.catalog.tenants.findById(id, trx))!;
  await ctx.catalog.tenants.setSlug(id, input.slug, trx);
  await ctx.catalog.tenants.assertSlugNotReserved(input.slug, id, trx);
  await ctx.catalog.tenants.update(
    id,
    {
      name: input.name,
      plan: input.plan,
      adminEmail: input.adminEmail,
      status: 'active',
      statusReason: null,
      unverifiedSince: input.unverified ? new Date() : null,
    },
    trx,
  );
  if (input.verifyTokenHash) await trx('tenants').where({ id }).update({ verify_token_hash: input.verifyTokenHash });
  const operationId = await ctx.catalog.operations.start(
    { kind: 'signup', tenantId: id, actor, details: { slug: input.slug, adminEmail: input.adminEmail, claimed: pending.slug } },
    trx,
  );
  // The tenant database: no user may be there (a claim that died before its commit may have left one).
  const admin = await ctx.admin.withTenantDatabase(pending, (knex) =>
    knex.transaction(async (t) => {
      await t('refresh_tokens').delete();
      await t('users').delete();
      const users = createUsersRepository(knex);
      const userId = await users.insert({ email: input.adminEmail, fullName: input.adminFullName, passwordHash: input.passwordHash, role: 'admin' }, t);
      const state = await users.findTokenState(userId, t);
      const refresh = await createAuthService(knex, pending.generation).issueFor(userId, t);
      return { userId, tokenVersion: state?.tokenVersion ?? 0, refresh };
    }),
  );
  // Tests kill here (SILO_FAULT_KILL_AFTER=signup:admin): the admin is in the tenant database, the claim not committed.
  faultPoint(ctx.config, 'signup', 'admin');
  await ctx.catalog.operations.step(operationId, 'claim', trx);
  await ctx.catalog.operations.succeed(operationId, undefined, trx);
  await trx.commit();
  ctx.events.emit('tenantChanged', input.slug);
  ctx.events.emit('pendingClaimed');
  const tenant = (await ctx.catalog.tenants.findById(id))!;
  return { tenant, adminUserId: admin.userId, adminTokenVersion: admin.tokenVersion, refresh: admin.refresh, operationId };
}

/** A started keeper of the pending pool. */
export interface PendingKeeper {
  /** Stops it and waits for a fill in progress. */
  stop(): Promise<void>;
}

/**
 * Keeps `target` tenants pending while `silo serve` runs: fills at start, after every
 * claim made by this process, and every `intervalMs` (claims of other processes, failures).
 * Fills of several processes are serialized by the catalog job lock; a failed fill is
 * logged and tried again at the next tick.
 * @param target `SILO_PENDING_TENANTS` (0: nothing runs)
 */
export function startPendingKeeper(ctx: SiloContext, target: number, intervalMs = 10_000): PendingKeeper {
  if (target <= 0) return { stop: () => Promise.resolve() };
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;
  const fill = () => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = fillPendingTenants(ctx, target, 'silo:pending-keeper')
      .then((r) => {
        if (r.created) ctx.log.info({ created: r.created, pending: r.pending }, 'pending tenants provisioned');
      })
      .catch((err: unknown) => ctx.log.error({ err }, 'could not provision pending tenants; trying again later'))
      .finally(() => {
        running = undefined;
        if (again) {
          again = false;
          fill();
        }
      });
  };
  const timer = setInterval(fill, intervalMs);
  timer.unref();
  ctx.events.on('pendingClaimed', fill);
  fill();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      ctx.events.off('pendingClaimed', fill);
      while (running) await running;
    },
  };
}
