/**
 * Suspending and resuming a tenant: a status change under the tenant's lock, decided by
 * an atomic transition on the catalog row (so on fresh state), journaled as an operation.
 */
import type { Tenant } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { ConflictError } from '../lib/errors.js';
import { runOperation } from './operation.js';
import { getTenant } from './tenant-lookup.js';

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
