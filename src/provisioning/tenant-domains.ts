/**
 * Custom domains of a tenant. A change takes the tenant's lock and reads the tenant again
 * under it, so a domain is never added to a tenant that a concurrent delete (which
 * releases its domains) has just removed.
 */
import type { TenantDomain } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { NotFoundError } from '../lib/errors.js';
import { domainSchema, parseInput } from '../lib/validation.js';
import { runOperation } from './operation.js';
import { getTenant } from './tenant-lookup.js';

/** Seconds a domain change waits for another operation on the tenant to finish. */
const DOMAIN_LOCK_WAIT_S = 10;

/**
 * Adds a custom domain to a tenant (RFC 1123 host name, unique across tenants).
 * @throws ValidationError; NotFoundError `TENANT_NOT_FOUND`; ConflictError `DOMAIN_TAKEN` / `TENANT_BUSY`
 */
export async function addDomain(ctx: SiloContext, slug: string, rawDomain: string, actor: string): Promise<TenantDomain[]> {
  const domain = parseInput(domainSchema, rawDomain);
  const found = await getTenant(ctx, slug);
  await ctx.locks.withLock(
    found,
    async () => {
      const tenant = await getTenant(ctx, slug);
      const operationId = await ctx.catalog.operations.start({ kind: 'domain-add', tenantId: tenant.id, actor, details: { slug, domain } });
      await runOperation(ctx, { existingId: operationId, kind: 'domain-add' }, async (op) => {
        await ctx.catalog.tenants.addDomain(tenant.id, domain);
        await op.step('added');
      });
    },
    DOMAIN_LOCK_WAIT_S,
  );
  ctx.events.emit('tenantChanged', slug);
  return ctx.catalog.tenants.listDomains(found.id);
}

/**
 * Removes a custom domain of a tenant.
 * @throws NotFoundError `TENANT_NOT_FOUND` / `DOMAIN_NOT_FOUND`; ConflictError `TENANT_BUSY`
 */
export async function removeDomain(ctx: SiloContext, slug: string, rawDomain: string, actor: string): Promise<TenantDomain[]> {
  const domain = parseInput(domainSchema, rawDomain);
  const found = await getTenant(ctx, slug);
  await ctx.locks.withLock(
    found,
    async () => {
      const tenant = await getTenant(ctx, slug);
      const existing = await ctx.catalog.tenants.listDomains(tenant.id);
      if (!existing.some((d) => d.domain === domain)) throw new NotFoundError(`tenant "${slug}" has no domain ${domain}`, 'DOMAIN_NOT_FOUND');
      const operationId = await ctx.catalog.operations.start({ kind: 'domain-remove', tenantId: tenant.id, actor, details: { slug, domain } });
      await runOperation(ctx, { existingId: operationId, kind: 'domain-remove' }, async (op) => {
        await ctx.catalog.tenants.removeDomain(tenant.id, domain);
        await op.step('removed');
      });
    },
    DOMAIN_LOCK_WAIT_S,
  );
  ctx.events.emit('tenantChanged', slug);
  return ctx.catalog.tenants.listDomains(found.id);
}
