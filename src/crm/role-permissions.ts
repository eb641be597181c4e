/**
 * Roles' permissions as one API process last read them, for checking a token's role
 * (`rid`) against a route's permission without a query per request. Entries are keyed by
 * tenant id, generation, the tenant's local epoch and the role (id, or name for tokens
 * issued before roles existed), and live `ttlMs` (the tenant change-poll interval): a
 * role changed by another process is read again within one interval; a roles write in
 * this process bumps the tenant's epoch ({@link RolePermissions.invalidate}), so its next
 * request reads again at once. A role that no longer exists has no permissions.
 * Concurrent reads of one key share one query.
 */
import type { Knex } from 'knex';
import { LRUCache } from 'lru-cache';
import type { Tenant } from '../catalog/index.js';
import type { Permission } from './permissions.js';
import { findRole } from './roles.js';

const NOTHING: ReadonlySet<Permission> = new Set();

/** An LRU of roles' permission sets. */
export class RolePermissions {
  private readonly cache: LRUCache<string, Promise<ReadonlySet<Permission>>>;
  private readonly epochs = new Map<number, number>();

  /**
   * @param ttlMs how long an entry lives, ms (the change-poll interval)
   * @param max entries kept (one per tenant x role in use)
   */
  constructor(ttlMs: number, max = 20_000) {
    this.cache = new LRUCache({ max, ttl: Math.max(1, ttlMs) });
  }

  /** Forgets every cached role of a tenant (after a roles write in this process). */
  invalidate(tenantId: number): void {
    this.epochs.set(tenantId, (this.epochs.get(tenantId) ?? 0) + 1);
  }

  /**
   * The permissions of a role of `tenant`.
   * @param role the role id (`rid` of the token), or its name for a token without one
   * @param knex gives the tenant's Knex (called only when not cached)
   * @throws what the read throws (nothing is cached then)
   */
  async get(tenant: Pick<Tenant, 'id' | 'generation'>, role: { id: number } | { name: string }, knex: () => Promise<Knex>): Promise<ReadonlySet<Permission>> {
    const ref = 'id' in role ? `#${role.id}` : `@${role.name}`;
    const key = `${tenant.id}:${tenant.generation}:${this.epochs.get(tenant.id) ?? 0}:${ref}`;
    let p = this.cache.get(key);
    if (!p) {
      p = knex()
        .then((k) => findRole(k, role))
        .then((r) => (r ? new Set(r.permissions) : NOTHING));
      this.cache.set(key, p);
      p.catch(() => {
        if (this.cache.get(key) === p) this.cache.delete(key);
      });
    }
    return p;
  }
}
