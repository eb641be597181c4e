/**
 * Token revocation from the operator's side and after user changes. Both write the
 * tenant's catalog row, whose `updated_at` moves: every API process re-reads the row
 * within one change-poll interval (`SILO_TENANT_CHANGE_POLL_MS`), and this process at once
 * (`tenantChanged`).
 */
import type { Tenant } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { runOperation } from './operation.js';
import { getTenant } from './tenants-service.js';

/** Result of {@link revokeTenantTokens}. */
export interface RevokeTokensResult {
  tenant: Tenant;
  /** The tenant's new token generation. */
  generation: number;
  operationId: number;
}

/**
 * `silo tenants revoke-tokens <slug>`: starts a new token generation, so that every access
 * and refresh token issued for the tenant so far is refused (401 `TOKEN_REVOKED`); users
 * sign in again. Journaled as a `revoke-tokens` operation. Any status but deleted.
 * @throws ValidationError for a malformed slug; NotFoundError `TENANT_NOT_FOUND`
 */
export async function revokeTenantTokens(ctx: SiloContext, slug: string, actor: string): Promise<RevokeTokensResult> {
  const tenant = await getTenant(ctx, slug);
  const operationId = await ctx.catalog.operations.start({
    kind: 'revoke-tokens',
    tenantId: tenant.id,
    actor,
    details: { slug, generationBefore: tenant.generation },
  });
  await runOperation(ctx, { existingId: operationId, kind: 'revoke-tokens' }, async (op) => {
    await ctx.catalog.tenants.bumpGeneration(tenant.id);
    await op.step('revoked');
  });
  ctx.events.emit('tenantChanged', slug);
  const after = (await ctx.catalog.tenants.findById(tenant.id))!;
  return { tenant: after, generation: after.generation, operationId };
}

/**
 * Records that a user's `token_version` moved in a tenant's database (deactivation, role
 * change, password reset): bumps the tenant's `auth_version`, so that every API process
 * re-checks the tenant's older access tokens against the database (once per user).
 * Call it after the tenant-database change is committed, never before: a process that
 * re-checked in between would cache the old state under the new version.
 */
export async function recordTokenVersionChange(ctx: SiloContext, tenant: Pick<Tenant, 'id' | 'slug'>): Promise<void> {
  await ctx.catalog.tenants.bumpAuthVersion(tenant.id);
  ctx.events.emit('tenantChanged', tenant.slug);
}
