/**
 * Identifies the tenant of a request from, in the configured order, the subdomain of
 * `SILO_BASE_DOMAIN`, a custom domain (`tenant_domains`), the `X-Tenant` header and the
 * `tenant` query parameter; then checks that the tenant may be served.
 * With the names of the live tenants in memory ({@link KnownTenantNames}, kept current by
 * the change watcher) a name that is not one of them is refused without a catalog query;
 * known names go through an LRU cache with a TTL that holds real tenants only. Without
 * them (the watcher is off, or they could not be loaded yet) misses are remembered for
 * `SILO_TENANT_NEGATIVE_CACHE_TTL_MS` in a cache of their own.
 */
import { LRUCache } from 'lru-cache';
import type { Catalog, Tenant } from '../catalog/index.js';
import type { Config } from '../config.js';
import { ForbiddenError, NotFoundError, UnavailableError, ValidationError } from '../lib/errors.js';
import { isValidSlug } from '../lib/identifiers.js';
import type { KnownTenantNames } from './known-names.js';

/** What the resolver reads of a request. */
export interface RequestHints {
  /** `Host` header (may carry a port). */
  host: string | undefined;
  /** `X-Tenant` header. */
  header: string | string[] | undefined;
  /** `tenant` query parameter. */
  query: string | string[] | undefined;
}

/** Seconds to wait before retrying a tenant that is provisioning, failed or in maintenance. */
export const RETRY_AFTER_S = 5;

const MISS = Symbol('miss');

/** Options of {@link TenantResolver}. */
export interface ResolverOptions {
  /** Entries of each cache (default 10,000). */
  max?: number;
  /** The live tenant names; without them every name not cached is looked up. */
  known?: KnownTenantNames;
}

/** Tenant identification with caching. */
export class TenantResolver {
  private readonly bySlug: LRUCache<string, Tenant>;
  private readonly byDomain: LRUCache<string, string>;
  /** Names found missing (`s:<slug>`, `d:<domain>`), used only without {@link KnownTenantNames}: never in the tenant cache. */
  private readonly misses: LRUCache<string, true>;
  private readonly known: KnownTenantNames | undefined;
  /** Tenant id -> the slug it is cached under in {@link bySlug} (kept by the cache's dispose), to forget a renamed tenant's old slug. */
  private readonly slugOfId = new Map<number, string>();
  /** Catalog lookups under way, shared by concurrent requests for the same name (no stampede). */
  private readonly pendingSlugs = new Map<string, Promise<Tenant | typeof MISS>>();
  private readonly pendingDomains = new Map<string, Promise<string | typeof MISS>>();

  constructor(
    private readonly catalog: Catalog,
    private readonly config: Pick<Config, 'baseDomain' | 'tenantSources' | 'tenantCacheTtlMs' | 'tenantNegativeCacheTtlMs'>,
    { max = 10_000, known }: ResolverOptions = {},
  ) {
    this.bySlug = new LRUCache<string, Tenant>({
      max,
      ttl: Math.max(1, config.tenantCacheTtlMs),
      dispose: (tenant, slug) => {
        if (this.slugOfId.get(tenant.id) === slug) this.slugOfId.delete(tenant.id);
      },
    });
    this.byDomain = new LRUCache({ max, ttl: Math.max(1, config.tenantCacheTtlMs) });
    this.misses = new LRUCache({ max, ttl: Math.max(1, config.tenantNegativeCacheTtlMs) });
    this.known = known;
  }

  /**
   * Forgets a changed tenant under its current slug and, when it was cached under another
   * one (a rename), under that one too: its old slug is then looked up again and found
   * missing (404).
   */
  invalidateTenant(id: number, slug: string): void {
    const cachedAs = this.slugOfId.get(id);
    if (cachedAs !== undefined && cachedAs !== slug) this.invalidate(cachedAs);
    this.invalidate(slug);
  }

  /**
   * Forgets a tenant (after a lifecycle change): its next request looks it up in the
   * catalog (so the slug counts as a name that may exist until that lookup says otherwise).
   */
  invalidate(slug?: string): void {
    if (slug) {
      this.bySlug.delete(slug);
      this.pendingSlugs.delete(slug);
      this.misses.delete(`s:${slug}`);
      this.known?.add(slug);
    } else {
      this.bySlug.clear();
      this.byDomain.clear();
      this.misses.clear();
      this.pendingSlugs.clear();
      this.pendingDomains.clear();
    }
  }

  /**
   * The slug named by the request, or undefined when no source names one.
   * @throws ValidationError `TENANT_CONFLICT` when two sources name different tenants;
   *         NotFoundError `TENANT_NOT_FOUND` for a malformed name
   */
  async identify(hints: RequestHints): Promise<string | undefined> {
    let found: { slug: string; source: string } | undefined;
    for (const source of this.config.tenantSources) {
      const slug = await this.fromSource(source, hints);
      if (slug === undefined) continue;
      if (found && found.slug !== slug) {
        throw new ValidationError(
          `the request names two tenants: "${found.slug}" (${found.source}) and "${slug}" (${source})`,
          { sources: [found.source, source] },
          'TENANT_CONFLICT',
        );
      }
      found ??= { slug, source };
    }
    return found?.slug;
  }

  private async fromSource(source: Config['tenantSources'][number], hints: RequestHints): Promise<string | undefined> {
    const host = hostName(hints.host);
    switch (source) {
      case 'subdomain': {
        const suffix = `.${this.config.baseDomain}`;
        if (!host || !host.endsWith(suffix)) return undefined;
        const label = host.slice(0, -suffix.length);
        return label.includes('.') ? undefined : label;
      }
      case 'domain': {
        if (!host || host === this.config.baseDomain || host.endsWith(`.${this.config.baseDomain}`) || isIpOrLocal(host)) return undefined;
        return this.slugByDomain(host);
      }
      case 'header':
        return single(hints.header, 'X-Tenant header');
      case 'query':
        return single(hints.query, 'tenant query parameter');
    }
  }

  private cacheTenant(slug: string, tenant: Tenant): void {
    this.bySlug.set(slug, tenant);
    this.slugOfId.set(tenant.id, slug);
  }

  private async slugByDomain(domain: string): Promise<string | undefined> {
    if (this.known?.ready) return this.known.slugOfDomain(domain);
    const cached = this.byDomain.get(domain);
    if (cached !== undefined) return cached;
    if (this.misses.has(`d:${domain}`)) return undefined;
    const found = await singleFlight<string | typeof MISS>(this.pendingDomains, domain, async () => {
      const slug = (await this.catalog.tenants.slugByDomain(domain)) ?? MISS;
      return { value: slug, cache: () => (slug === MISS ? this.misses.set(`d:${domain}`, true) : this.byDomain.set(domain, slug)) };
    });
    return found === MISS ? undefined : found;
  }

  /**
   * The tenant record of a slug, checked for service.
   * @throws NotFoundError `TENANT_NOT_FOUND` (unknown or deleted), ForbiddenError `TENANT_SUSPENDED`,
   *         UnavailableError `TENANT_UNAVAILABLE` (provisioning, failed, maintenance) with Retry-After
   */
  async load(slug: string): Promise<Tenant> {
    if (!isValidSlug(slug)) throw new NotFoundError('tenant not found', 'TENANT_NOT_FOUND');
    const known = this.known?.ready ? this.known : undefined;
    if (known ? !known.mayExist(slug) : this.misses.has(`s:${slug}`)) throw new NotFoundError(`tenant "${slug}" not found`, 'TENANT_NOT_FOUND');
    let tenant: Tenant | typeof MISS | undefined = this.bySlug.get(slug);
    tenant ??= await singleFlight<Tenant | typeof MISS>(this.pendingSlugs, slug, async () => {
      const row = await this.catalog.tenants.findBySlug(slug);
      const value = row && row.status !== 'deleted' ? row : MISS;
      // A miss is not cached as a tenant: the known names forget the slug (or, without them, the miss cache has it).
      return { value, cache: () => (value !== MISS ? this.cacheTenant(slug, value) : known ? known.forget(slug) : this.misses.set(`s:${slug}`, true)) };
    });
    if (tenant === MISS) throw new NotFoundError(`tenant "${slug}" not found`, 'TENANT_NOT_FOUND');
    assertServable(tenant);
    return tenant;
  }
}

/**
 * Runs `lookup` once for concurrent callers of the same key. Its result is cached (by
 * `cache`) only if the lookup was not invalidated meanwhile (removed from `pending`).
 */
async function singleFlight<T>(pending: Map<string, Promise<T>>, key: string, lookup: () => Promise<{ value: T; cache: () => void }>): Promise<T> {
  const running = pending.get(key);
  if (running) return running;
  const p = lookup()
    .then(({ value, cache }) => {
      if (pending.get(key) === p) cache();
      return value;
    })
    .finally(() => {
      if (pending.get(key) === p) pending.delete(key);
    });
  pending.set(key, p);
  return p;
}

/** @throws the error matching a tenant status that cannot be served */
export function assertServable(tenant: Tenant): void {
  switch (tenant.status) {
    case 'active':
      return;
    case 'suspended':
      throw new ForbiddenError(`tenant "${tenant.slug}" is suspended`, 'TENANT_SUSPENDED');
    case 'deleted':
      throw new NotFoundError(`tenant "${tenant.slug}" not found`, 'TENANT_NOT_FOUND');
    default:
      throw new UnavailableError(
        `tenant "${tenant.slug}" is ${tenant.status === 'maintenance' ? 'in maintenance' : tenant.status}; retry later`,
        'TENANT_UNAVAILABLE',
        RETRY_AFTER_S,
        { status: tenant.status },
      );
  }
}

/** Lower-cased host name without port (handles `[::1]:3000`). */
export function hostName(host: string | undefined): string | undefined {
  if (!host) return undefined;
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  return h.replace(/:\d+$/, '').replace(/\.$/, '');
}

function isIpOrLocal(host: string): boolean {
  return host === 'localhost' || host.startsWith('[') || /^\d+\.\d+\.\d+\.\d+$/.test(host);
}

function single(v: string | string[] | undefined, what: string): string | undefined {
  if (v === undefined || v === '') return undefined;
  if (Array.isArray(v)) {
    const distinct = [...new Set(v)];
    if (distinct.length !== 1) throw new ValidationError(`the ${what} is given more than once`, { source: what }, 'TENANT_CONFLICT');
    return distinct[0]!.trim().toLowerCase();
  }
  return v.trim().toLowerCase();
}
