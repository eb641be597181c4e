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
 * Runs one domain change as a journaled operation under the tenant's lock, on the tenant
 * read again under it; then tells this process's caches and answers the domains.
 * @param check runs under the lock before the operation opens (e.g. "the domain is there")
 */
async function changeDomain(
  ctx: SiloContext,
  slug: string,
  domain: string,
  actor: string,
  kind: 'domain-add' | 'domain-remove',
  change: (tenantId: number) => Promise<void>,
  check?: (tenantId: number) => Promise<void>,
): Promise<TenantDomain[]> {
  const found = await getTenant(ctx, slug);
  await ctx.locks.withLock(
    found,
    async () => {
      const tenant = await getTenant(ctx, slug);
      if (check) await check(tenant.id);
      const operationId = await ctx.catalog.operations.start({ kind, tenantId: tenant.id, actor, details: { slug, domain } });
      await runOperation(ctx, { existingId: operationId, kind }, async (op) => {
        await change(tenant.id);
        await op.step(kind === 'domain-add' ? 'added' : 'removed');
      });
    },
    DOMAIN_LOCK_WAIT_S,
  );
  ctx.events.emit('tenantChanged', slug);
  return ctx.catalog.tenants.listDomains(found.id);
}

/**
 * Adds a custom domain to a tenant (RFC 1123 host name, unique across tenants).
 * @throws ValidationError; NotFoundError `TENANT_NOT_FOUND`; ConflictError `DOMAIN_TAKEN` / `TENANT_BUSY`
 */
export async function addDomain(ctx: SiloContext, slug: string, rawDomain: string, actor: string): Promise<TenantDomain[]> {
  const domain = parseInput(domainSchema, rawDomain);
  return changeDomain(ctx, slug, domain, actor, 'domain-add', (tenantId) => ctx.catalog.tenants.addDomain(tenantId, domain));
}

/**
 * Removes a custom domain of a tenant.
 * @throws NotFoundError `TENANT_NOT_FOUND` / `DOMAIN_NOT_FOUND`; ConflictError `TENANT_BUSY`
 */
export async function removeDomain(ctx: SiloContext, slug: string, rawDomain: string, actor: string): Promise<TenantDomain[]> {
  const domain = parseInput(domainSchema, rawDomain);
  return changeDomain(
    ctx,
    slug,
    domain,
    actor,
    'domain-remove',
    async (tenantId) => {
      await ctx.catalog.tenants.removeDomain(tenantId, domain);
    },
    async (tenantId) => {
      const existing = await ctx.catalog.tenants.listDomains(tenantId);
      if (!existing.some((d) => d.domain === domain)) throw new NotFoundError(`tenant "${slug}" has no domain ${domain}`, 'DOMAIN_NOT_FOUND');
    },
  );
}
