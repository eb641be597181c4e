/**
 * Purge of expired rows in tenant databases, through each tenant's own MySQL account
 * (DML only; no admin rights needed):
 * - `idempotency_keys` older than {@link IDEMPOTENCY_KEY_TTL_MS} (24 h: a client retries a
 *   create within minutes, and the tenant migration says rows older than 24 h may go);
 * - `refresh_tokens` that expired or were revoked: neither can be refreshed again (an
 *   expired or revoked token is refused whether its row exists or not).
 *
 * Rows go in batches of `batchSize`, each its own autocommitted `DELETE ... LIMIT`, so a
 * large purge holds no long transaction. Used by `silo tenants purge` and by the
 * maintenance job of `silo serve` (src/jobs/maintenance.ts).
 */
import type { Knex } from 'knex';
import type { Tenant } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { safeErrorText } from '../lib/error-text.js';
import { NotFoundError } from '../lib/errors.js';
import { withTenantAccount } from '../provisioning/tenant-account.js';

/** Age past which an idempotency key is purged, ms (24 h). */
export const IDEMPOTENCY_KEY_TTL_MS = 24 * 3_600_000;

/** What a purge did to one tenant. */
export interface TenantPurgeResult {
  slug: string;
  /** `purged`; `skipped` (the tenant is not active or suspended); `failed` (see `error`). */
  outcome: 'purged' | 'skipped' | 'failed';
  /** Rows deleted from `idempotency_keys`. */
  idempotencyKeys: number;
  /** Rows deleted from `refresh_tokens`. */
  refreshTokens: number;
  error?: string;
}

/** Options of {@link purgeTenants}. */
export interface PurgeOptions {
  /** Tenants to purge by slug; with `all`, every active or suspended tenant instead. */
  slugs?: readonly string[];
  all?: boolean;
  /** The current time (tests); default now. */
  now?: Date;
  /** Rows per DELETE (default 5000). */
  batchSize?: number;
}

const PURGEABLE = ['active', 'suspended'] as const;

async function deleteInBatches(build: () => Knex.QueryBuilder, batchSize: number): Promise<number> {
  let total = 0;
  for (;;) {
    const n = Number(await build().limit(batchSize).del());
    total += n;
    if (n < batchSize) return total;
  }
}

/**
 * Purges one tenant's expired rows as the tenant's own account.
 * @returns counts of rows deleted
 * @throws the MySQL error when the tenant database cannot be reached or the delete fails
 */
export async function purgeTenant(
  ctx: SiloContext,
  tenant: Tenant,
  now = new Date(),
  batchSize = 5_000,
): Promise<{ idempotencyKeys: number; refreshTokens: number }> {
  return withTenantAccount(ctx, tenant, async (knex) => {
    const keysBefore = new Date(now.getTime() - IDEMPOTENCY_KEY_TTL_MS);
    const idempotencyKeys = await deleteInBatches(() => knex('idempotency_keys').where('created_at', '<', keysBefore), batchSize);
    const refreshTokens = await deleteInBatches(
      () =>
        knex('refresh_tokens').where((q) => {
          void q.where('expires_at', '<=', now).orWhereNotNull('revoked_at');
        }),
      batchSize,
    );
    return { idempotencyKeys, refreshTokens };
  });
}

/**
 * Purges the named tenants (or, with `all`, every active or suspended one), one after the
 * other, going on past a tenant that fails.
 * @throws NotFoundError `TENANT_NOT_FOUND` for an unknown slug (before purging anything)
 */
export async function purgeTenants(ctx: SiloContext, opts: PurgeOptions): Promise<TenantPurgeResult[]> {
  const now = opts.now ?? new Date();
  let tenants: Tenant[];
  if (opts.all) tenants = await ctx.catalog.tenants.list({ statuses: PURGEABLE });
  else {
    const slugs = [...new Set(opts.slugs ?? [])];
    tenants = await ctx.catalog.tenants.list({ slugs });
    const missing = slugs.filter((s) => !tenants.some((t) => t.slug === s));
    if (missing.length) throw new NotFoundError(`no tenant "${missing[0]}"`, 'TENANT_NOT_FOUND', { slug: missing[0] });
  }
  const results: TenantPurgeResult[] = [];
  for (const t of tenants) {
    if (!(PURGEABLE as readonly string[]).includes(t.status)) {
      results.push({ slug: t.slug, outcome: 'skipped', idempotencyKeys: 0, refreshTokens: 0, error: `tenant is ${t.status}` });
      continue;
    }
    try {
      results.push({ slug: t.slug, outcome: 'purged', ...(await purgeTenant(ctx, t, now, opts.batchSize)) });
    } catch (err) {
      ctx.log.warn({ err, tenant: t.slug }, 'purge of expired rows failed');
      results.push({ slug: t.slug, outcome: 'failed', idempotencyKeys: 0, refreshTokens: 0, error: safeErrorText(err) });
    }
  }
  return results;
}
