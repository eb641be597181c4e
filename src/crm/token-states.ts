/**
 * Users' token states (`token_version`, `active`, `role`) as one API process last read
 * them, for checking access tokens issued before the tenant's latest `auth_version`.
 * Entries are keyed by tenant id, generation, auth version and user id: when the tenant's
 * auth version moves (a user was deactivated, changed role or had its password reset),
 * every user's older tokens are checked against the database once per process, then the
 * answer is reused until the next move. Concurrent checks of one key share one read.
 */
import type { Knex } from 'knex';
import { LRUCache } from 'lru-cache';
import type { Tenant } from '../catalog/index.js';
import { createUsersRepository, type UserTokenState } from './users-repository.js';

const NONE = Symbol('no such user');

/** An LRU of users' token states. */
export class UserTokenStates {
  private readonly cache: LRUCache<string, Promise<UserTokenState | typeof NONE>>;

  /**
   * @param max entries kept (one per tenant x user checked since the last change)
   * @param ttlMs how long an entry lives, ms (tokens older than this are expired anyway)
   */
  constructor(max = 50_000, ttlMs = 15 * 60_000) {
    this.cache = new LRUCache({ max, ttl: ttlMs });
  }

  /**
   * The user's token state as of the tenant's current auth version.
   * @param knex gives the tenant's Knex (called only when the state is not cached)
   * @returns undefined when the tenant has no such user
   * @throws what the read throws (nothing is cached then)
   */
  async get(tenant: Pick<Tenant, 'id' | 'generation' | 'authVersion'>, userId: number, knex: () => Promise<Knex>): Promise<UserTokenState | undefined> {
    const key = `${tenant.id}:${tenant.generation}:${tenant.authVersion}:${userId}`;
    let p = this.cache.get(key);
    if (!p) {
      p = knex()
        .then((k) => createUsersRepository(k).findTokenState(userId))
        .then((s) => s ?? NONE);
      this.cache.set(key, p);
      p.catch(() => {
        if (this.cache.get(key) === p) this.cache.delete(key);
      });
    }
    const state = await p;
    return state === NONE ? undefined : state;
  }
}
