/**
 * Discarding a tenant that never served anyone: one provisioned for a signup that then
 * failed, or an unverified signup past its time. Unlike `delete` (which keeps the row,
 * and the slug reserved, for good), nothing is kept: no backup, the database and account
 * are dropped and the catalog row removed, so the slug is free again. The operations
 * journal keeps its rows (their `tenant_id` set to NULL; `details.slug` still names it).
 *
 * Crash safety: the row is first marked `deleted` (in one transaction with a new token
 * generation), then the database and account are dropped, then the row goes. A crash in
 * between leaves a deleted tenant whose leftovers `silo tenants repair --all` drops, as
 * for any delete.
 */
import type { Tenant } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { runOperation } from './operation.js';
import { dropTenantResources, markDeleted } from './tenant-destroy.js';

/**
 * Discards a tenant (see the module comment), holding its lifecycle lock (waiting up to 30 s).
 * @throws ConflictError `TENANT_BUSY` when another operation holds it longer
 */
export async function discardTenant(ctx: SiloContext, tenant: Tenant, actor: string): Promise<void> {
  await ctx.locks.withLock(
    tenant,
    async () => {
      const operationId = await ctx.catalog.operations.start({ kind: 'delete', tenantId: tenant.id, actor, details: { slug: tenant.slug, discard: true } });
      await runOperation(ctx, { existingId: operationId, kind: 'delete' }, async (op) => {
        await markDeleted(ctx, tenant, 'discarded');
        await op.step('catalog');
        await dropTenantResources(ctx, tenant, (s) => op.step(s));
      });
      await ctx.catalog.knex.transaction(async (trx) => {
        await trx('operations').where({ tenant_id: tenant.id }).update({ tenant_id: null });
        await trx('tenants').where({ id: tenant.id }).delete();
      });
    },
    30,
  );
}
