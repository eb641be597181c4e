/**
 * The tenant names that exist, held in memory by each API process: the slug of every
 * tenant that is not deleted, and every custom domain with its tenant's slug. Loaded at
 * start (two queries), then kept current by the change watcher (`tenants.updated_at`,
 * which creating, deleting and every lifecycle step touch, and so do adding or removing
 * a custom domain): a changed tenant's slug goes in or out, and its domains are read
 * again (one query per batch of changed tenants). So a name that is not here is answered
 * 404 without a catalog query, and the tenant cache only ever holds real tenants.
 *
 * Race: a tenant created by another process a moment ago is not here until the next
 * poll (at most `SILO_TENANT_CHANGE_POLL_MS` later); until then its name answers 404.
 * A lifecycle action of this process adds its slug at once (`add`).
 *
 * Memory: strings only, about 65 bytes of heap per slug (measured: 6.2 MiB for a Set of
 * 100,000 slugs of 17 characters), plus the custom domains.
 */
import type { Logger } from 'pino';
import type { Catalog } from '../catalog/index.js';

/** What the watcher reports of a changed tenant. */
export interface TenantNameChange {
  id: number;
  slug: string;
  status: string;
}

/** Slugs and custom domains of the live tenants, in memory. */
export class KnownTenantNames {
  private readonly slugs = new Set<string>();
  /** Custom domain -> its tenant. */
  private readonly domains = new Map<string, { id: number; slug: string }>();
  /** Tenant id -> its custom domains, only for tenants that have some (to drop a removed one). */
  private readonly domainsOf = new Map<number, string[]>();
  /** Tenants whose domains are to be read again, and the read under way. */
  private readonly stale = new Set<number>();
  private refreshing: Promise<void> | undefined;
  private loaded = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly catalog: Catalog,
    private readonly log?: Logger,
  ) {}

  /** True once the names are loaded: until then nothing can be answered from here. */
  get ready(): boolean {
    return this.loaded;
  }

  /**
   * Loads the names; when the catalog cannot be read, tries again every `retryMs` until
   * it can (meanwhile {@link ready} is false and every name is looked up in the catalog).
   */
  async start(retryMs: number): Promise<void> {
    try {
      await this.load();
    } catch (err) {
      this.log?.warn({ err }, 'could not load the tenant names; every name is looked up in the catalog until they are');
      this.retry = setInterval(
        () => {
          this.load().then(
            () => this.stop(),
            () => undefined,
          );
        },
        Math.max(100, retryMs),
      );
      this.retry.unref();
    }
  }

  /** Stops retrying a failed load. */
  stop(): void {
    clearInterval(this.retry);
    this.retry = undefined;
  }

  /**
   * Reads every live slug and custom domain (merged with what is already here: a change
   * applied while the load ran is not undone).
   * @throws the catalog's errors
   */
  async load(): Promise<void> {
    const knex = this.catalog.knex;
    const [slugs, domains] = await Promise.all([
      knex('tenants').whereNot('status', 'deleted').pluck('slug') as Promise<string[]>,
      knex('tenant_domains as d')
        .join('tenants as t', 't.id', 'd.tenant_id')
        .whereNot('t.status', 'deleted')
        .select('d.domain', 'd.tenant_id', 't.slug') as Promise<Array<{ domain: string; tenant_id: number; slug: string }>>,
    ]);
    for (const slug of slugs) this.slugs.add(slug);
    const byTenant = new Map<number, { slug: string; domains: string[] }>();
    for (const d of domains) {
      const entry = byTenant.get(d.tenant_id) ?? { slug: d.slug, domains: [] };
      entry.domains.push(d.domain);
      byTenant.set(d.tenant_id, entry);
    }
    for (const [id, { slug, domains: list }] of byTenant) if (!this.domainsOf.has(id)) this.setDomains(id, slug, list);
    this.loaded = true;
    this.log?.debug({ slugs: this.slugs.size, domains: this.domains.size }, 'tenant names loaded');
  }

  /** Whether a slug may exist: false only when the names are loaded and it is not one of them. */
  mayExist(slug: string): boolean {
    return !this.loaded || this.slugs.has(slug);
  }

  /** The slug of a custom domain (only meaningful when {@link ready}). */
  slugOfDomain(domain: string): string | undefined {
    return this.domains.get(domain)?.slug;
  }

  /** Adds a slug that may exist (this process changed it, or it was invalidated): the next request looks it up. */
  add(slug: string): void {
    this.slugs.add(slug);
  }

  /** Removes a slug the catalog does not know (a lookup found no live tenant). */
  forget(slug: string): void {
    this.slugs.delete(slug);
  }

  /**
   * Applies a change reported by the watcher: a deleted tenant's slug and domains go, any
   * other's slug is added and its domains are read again (batched with the other changes
   * of the same tick; the returned promise resolves when they are read).
   */
  apply(t: TenantNameChange): Promise<void> {
    if (t.status === 'deleted') {
      this.slugs.delete(t.slug);
      this.setDomains(t.id, t.slug, []);
      this.stale.delete(t.id);
      return Promise.resolve();
    }
    this.slugs.add(t.slug);
    this.stale.add(t.id);
    this.refreshing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.refreshDomains());
    return this.refreshing;
  }

  /** Reads the domains of the tenants marked stale, 1,000 tenants per query. */
  private async refreshDomains(): Promise<void> {
    const ids = [...this.stale];
    this.stale.clear();
    this.refreshing = undefined;
    try {
      for (let i = 0; i < ids.length; i += 1000) {
        const chunk = ids.slice(i, i + 1000);
        const rows: Array<{ id: number; slug: string; status: string; domain: string | null }> = await this.catalog
          .knex('tenants as t')
          .leftJoin('tenant_domains as d', 'd.tenant_id', 't.id')
          .whereIn('t.id', chunk)
          .select('t.id', 't.slug', 't.status', 'd.domain');
        const found = new Map<number, { slug: string; deleted: boolean; domains: string[] }>();
        for (const r of rows) {
          const entry = found.get(r.id) ?? { slug: r.slug, deleted: r.status === 'deleted', domains: [] };
          if (r.domain) entry.domains.push(r.domain);
          found.set(r.id, entry);
        }
        for (const [id, e] of found) this.setDomains(id, e.slug, e.deleted ? [] : e.domains);
      }
    } catch (err) {
      // Read again with the next change reported (the watcher retries its poll too); the domains known so far stay.
      for (const id of ids) this.stale.add(id);
      this.log?.debug({ err }, 'could not read custom domains of changed tenants');
    }
  }

  private setDomains(id: number, slug: string, list: string[]): void {
    // A domain moved to another tenant (applied first) stays with that one.
    for (const old of this.domainsOf.get(id) ?? []) if (this.domains.get(old)?.id === id) this.domains.delete(old);
    if (list.length === 0) {
      this.domainsOf.delete(id);
      return;
    }
    this.domainsOf.set(id, list);
    for (const d of list) this.domains.set(d, { id, slug });
  }
}
