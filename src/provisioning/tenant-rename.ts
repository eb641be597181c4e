/**
 * Renaming a tenant (`silo tenants rename`, `PATCH /platform/v1/tenants/{slug}`): only the
 * catalog changes; the database and account keep their names (opaque for tenants made
 * since issue 15, the old slug-derived ones otherwise), so no data moves. The old slug is
 * reserved for `SILO_SLUG_RESERVE_DAYS` (`slug_reservations`) so nobody else takes it
 * while links and bookmarks still name it; the tenant itself may take it back.
 *
 * Propagation: this process forgets the old slug at once (`tenantChanged`); every other
 * API process sees the changed row at its next poll of `tenants.updated_at` (at most
 * `SILO_TENANT_CHANGE_POLL_MS`, 1 s by default) and from then answers the old slug 404.
 * Tokens carry the tenant id (`tid`), not the slug, so they keep working under the new one.
 */
import type { Tenant } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { ValidationError } from '../lib/errors.js';
import { assertValidSlug } from '../lib/identifiers.js';
import { runOperation } from './operation.js';
import { getTenant } from './tenant-lookup.js';

/** What a rename did. */
export interface RenameResult {
  tenant: Tenant;
  operationId: number;
  /** The slug given up, and until when it stays reserved (null when `SILO_SLUG_RESERVE_DAYS` is 0). */
  previousSlug: string;
  reservedUntil: Date | null;
}

/**
 * Gives a tenant a new slug, in one catalog transaction with the reservation of the old one.
 * @throws ValidationError `INVALID_SLUG` for a malformed or reserved-word new slug, `VALIDATION_FAILED` when it is the same
 * @throws NotFoundError `TENANT_NOT_FOUND`; ConflictError `TENANT_EXISTS` when the new slug is taken or reserved,
 *   `TENANT_BUSY` when another operation holds the tenant, `INVALID_STATE` for a pending tenant (a signup names it)
 */
export async function renameTenant(ctx: SiloContext, slug: string, newSlug: string, actor: string): Promise<RenameResult> {
  assertValidSlug(newSlug);
  if (newSlug === slug) throw new ValidationError(`the tenant is already called "${slug}"`, { field: 'slug' });
  const found = await getTenant(ctx, slug);
  return ctx.locks.withLock(found, async () => {
    const tenant = await getTenant(ctx, slug);
    if (tenant.status === 'pending') throw new ValidationError('a pending tenant gets its slug from the signup that claims it', { status: tenant.status });
    const days = ctx.config.signup.slugReserveDays;
    const operationId = await ctx.catalog.operations.start({ kind: 'rename', tenantId: tenant.id, actor, details: { slug, newSlug, reserveDays: days } });
    await runOperation(ctx, { existingId: operationId, kind: 'rename' }, async (op) => {
      await ctx.catalog.knex.transaction(async (trx) => {
        await ctx.catalog.tenants.setSlug(tenant.id, newSlug, trx);
        await ctx.catalog.tenants.assertSlugNotReserved(newSlug, tenant.id, trx);
        if (days > 0) await ctx.catalog.tenants.reserveSlug(slug, tenant.id, days, trx);
      });
      ctx.events.emit('tenantChanged', slug);
      ctx.events.emit('tenantChanged', newSlug);
      await op.step('catalog');
    });
    const reserved = days > 0 ? (await ctx.catalog.tenants.reservedSlugs(tenant.id)).find((r) => r.slug === slug) : undefined;
    return { tenant: (await ctx.catalog.tenants.findById(tenant.id))!, operationId, previousSlug: slug, reservedUntil: reserved?.reservedUntil ?? null };
  });
}
