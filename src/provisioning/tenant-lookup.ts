/**
 * Reading one tenant of the catalog by slug: what every lifecycle action starts with,
 * and reads again once it holds the tenant's lock (a decision is taken on fresh state).
 * No lifecycle logic here, so any service may import it without an import circle.
 */
import type { Tenant } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { NotFoundError } from '../lib/errors.js';
import { assertValidSlug, isPendingSlug } from '../lib/identifiers.js';

/**
 * Loads a tenant by slug (also a pending tenant's placeholder slug, as `tenants list` shows it).
 * @throws ValidationError for a malformed slug; NotFoundError `TENANT_NOT_FOUND`
 */
export async function getTenant(ctx: SiloContext, slug: string, opts: { includeDeleted?: boolean } = {}): Promise<Tenant> {
  if (!isPendingSlug(slug)) assertValidSlug(slug);
  const tenant = await ctx.catalog.tenants.findBySlug(slug);
  if (!tenant || (tenant.status === 'deleted' && !opts.includeDeleted)) {
    throw new NotFoundError(`tenant "${slug}" not found`, 'TENANT_NOT_FOUND', { slug });
  }
  return tenant;
}
