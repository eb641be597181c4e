/**
 * Per-tenant connection pools: one Knex per tenant, built with that tenant's own MySQL
 * account (DML only), at most `maxTenants` pools of at most `maxPerTenant` connections.
 * The total of open tenant connections therefore never exceeds
 * `maxPerTenant x maxTenants`, whatever the number of tenants served:
 * - a pool counts against `maxTenants` from the moment it starts opening until it is
 *   destroyed, also after it was dropped (suspend) or evicted while a request held it;
 * - when the cap is reached, the least recently used pool that no request holds is
 *   evicted (destroyed) to make room; if every pool is held, the new tenant's request
 *   waits, at most `acquireTimeoutMs`, for a pool to be released or destroyed, then gets
 *   503 `POOL_EXHAUSTED`; a wait for a connection of a full pool has the same bound;
 * - pools of different tenants open concurrently (a slot is reserved synchronously);
 * - nothing opens after {@link TenantConnections.close}.
 */
import type { Knex } from 'knex';
import type { Catalog, Tenant } from '../catalog/index.js';
import { createTenantCredentialsRepository } from '../catalog/tenant-credentials.js';
import type { Config } from '../config.js';
import { createMysqlKnex } from '../lib/knex.js';
import { decryptSecret } from '../lib/secrets.js';
import { poolExhaustedError } from './pool-exhausted.js';
import { retryRefusedLogins, type RotatablePool } from './refused-logins.js';

interface Entry extends RotatablePool {
  refs: number;
  /** Out of the map (dropped or evicted): destroyed when the last holder releases it. */
  dropped: boolean;
  destroyed?: Promise<void>;
}

/** A borrowed tenant Knex; call `release()` when the request is done (later calls do nothing). */
export interface Lease {
  knex: Knex;
  release(): void;
}

/** Counters and gauges for `/metrics`. Connections are counted from their first byte to their end. */
export interface PoolStats {
  /** Pools open or opening, including dropped ones still held or closing. */
  openPools: number;
  openConnections: number;
  /** Most connections open at once since start. */
  peakConnections: number;
  /** Leases lent and not released yet. */
  heldLeases: number;
  idleConnections: number;
  pendingAcquires: number;
  evictions: number;
  waitsForPool: number;
  /** Requests turned away with `POOL_EXHAUSTED`, by what they waited for. */
  exhausted: { pool: number; connection: number };
}

/** Options of {@link TenantConnections.acquire}. */
export interface AcquireOptions {
  /** Stops waiting for a pool slot when aborted (the client is gone); rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** The per-tenant pool manager. */
export class TenantConnections {
  /** Live pools by tenant id; Map insertion order is the LRU order: oldest first. */
  private readonly pools = new Map<number, Entry>();
  /** Pools out of the map that are not destroyed yet: they still count against the budget. */
  private readonly draining = new Set<Entry>();
  /** Pools being opened, by tenant id (their slot is reserved). */
  private readonly opening = new Map<number, Promise<Entry>>();
  /** Requests waiting for room: woken on every release and destroy. */
  private readonly waiters = new Set<() => void>();
  private evictions = 0;
  private waitsForPool = 0;
  private readonly exhausted = { pool: 0, connection: 0 };
  private connections = 0;
  private peak = 0;
  private closed = false;
  private readonly credentials;

  constructor(
    private readonly catalog: Catalog,
    private readonly config: Pick<Config, 'pool' | 'secrets'>,
  ) {
    this.credentials = createTenantCredentialsRepository(catalog.knex);
  }

  /**
   * Borrows the tenant's Knex, opening its pool if needed; waits at most
   * `config.pool.acquireTimeoutMs` for room.
   * @throws UnavailableError `POOL_EXHAUSTED` (503, Retry-After) when no pool slot came free in time
   * @throws Error after {@link close}; the signal's reason when `opts.signal` is aborted and the request would have to wait
   */
  async acquire(tenant: Tenant, opts: AcquireOptions = {}): Promise<Lease> {
    const key = `${tenant.databaseServerId}/${tenant.databaseName}/${tenant.dbUser}/${tenant.dbPasswordEnc}`;
    const deadline = Date.now() + this.config.pool.acquireTimeoutMs;
    let waited = false;
    for (;;) {
      if (this.closed) throw new Error('tenant connections are closed');
      const entry = this.pools.get(tenant.id);
      if (entry && entry.key !== key && !entry.superseded.has(key)) {
        this.retire(entry);
        continue;
      }
      if (entry) {
        this.pools.delete(tenant.id);
        this.pools.set(tenant.id, entry);
        return this.lend(entry);
      }
      const pending = this.opening.get(tenant.id);
      if (pending) {
        await pending;
        continue;
      }
      if (this.slotsUsed() < this.config.pool.maxTenants) {
        // Lent by open() itself, in the tick it appears, so no other waiter can evict it first.
        return this.lend(await this.open(tenant, key), true);
      }
      const victim = [...this.pools.values()].find((e) => e.refs === 0);
      if (victim) {
        this.evictions++;
        this.retire(victim);
        continue;
      }
      // Waiting for an idle pool to finish closing is not waiting for a busy one.
      if (!waited && ![...this.draining].some((e) => e.refs === 0)) {
        this.waitsForPool++;
        waited = true;
      }
      await this.waitForRoom(deadline, opts.signal);
    }
  }

  private slotsUsed(): number {
    return this.pools.size + this.draining.size + this.opening.size;
  }

  /** @param counted the reference was taken already (a pool just opened for this request) */
  private lend(entry: Entry, counted = false): Lease {
    if (!counted) entry.refs++;
    let released = false;
    return {
      knex: entry.knex,
      release: () => {
        if (released) return;
        released = true;
        entry.refs--;
        if (entry.refs > 0) return;
        if (entry.dropped) void this.destroy(entry);
        // An idle pool can now be evicted by a waiter.
        else this.wake();
      },
    };
  }

  /** Opens a tenant's pool, held once for the caller, in a slot reserved at once (so concurrent opens of other tenants count it). */
  private open(tenant: Tenant, key: string): Promise<Entry> {
    const run = (async () => {
      try {
        const server = await this.catalog.servers.get(tenant.databaseServerId);
        if (this.closed) throw new Error('tenant connections are closed');
        const knex = createMysqlKnex(
          {
            host: server.host,
            port: server.port,
            user: tenant.dbUser,
            password: decryptSecret(tenant.dbPasswordEnc, this.config.secrets),
            database: tenant.databaseName,
          },
          {
            min: 0,
            max: this.config.pool.maxPerTenant,
            idleTimeoutMillis: this.config.pool.idleMs,
            acquireTimeoutMillis: this.config.pool.acquireTimeoutMs,
          },
        );
        const entry: Entry = { tenantId: tenant.id, knex, refs: 1, key, superseded: new Set(), dropped: false };
        this.census(knex);
        retryRefusedLogins(entry, `${tenant.databaseServerId}/${tenant.databaseName}/${tenant.dbUser}`, this.credentials, this.config.secrets);
        this.pools.set(tenant.id, entry);
        return entry;
      } finally {
        // In the same tick as the map entry appears: the slot is never counted twice or not at all.
        this.opening.delete(tenant.id);
        this.wake();
      }
    })();
    this.opening.set(tenant.id, run);
    return run;
  }

  /**
   * Counts the pool's connections from tarn's own events (a connection counts from the
   * moment its creation starts until it is destroyed), keeps the peak, and counts waits
   * for a connection that timed out.
   */
  private census(knex: Knex): void {
    const pool = (knex.client as { pool?: { on(event: string, fn: (...args: unknown[]) => void): void } }).pool;
    if (!pool) return;
    const down = () => this.connections--;
    pool.on('createRequest', () => {
      this.connections++;
      this.peak = Math.max(this.peak, this.connections);
    });
    pool.on('createFail', down);
    pool.on('destroySuccess', down);
    pool.on('destroyFail', down);
    pool.on('acquireFail', (_id, err) => {
      // tarn's TimeoutError (knex rethrows it as KnexTimeoutError); an abort at destroy is not one.
      if ((err as Error | undefined)?.constructor.name === 'TimeoutError') this.exhausted.connection++;
    });
  }

  private waitForRoom(deadline: number, signal: AbortSignal | undefined): Promise<void> {
    const left = deadline - Date.now();
    if (left <= 0) {
      this.exhausted.pool++;
      return Promise.reject(poolExhaustedError('pool'));
    }
    const reason = (): Error => (signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    if (signal?.aborted) return Promise.reject(reason());
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        signal?.removeEventListener('abort', onAbort);
        if (err === undefined) resolve();
        else reject(err);
      };
      const wake = () => done();
      const onAbort = () => done(reason());
      // At the deadline the loop runs once more: it takes room that came free, else it throws.
      const timer = setTimeout(wake, left);
      this.waiters.add(wake);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Takes a pool out of the map; it counts against the budget until destroyed (at once if idle, else at its last release). */
  private retire(entry: Entry): void {
    if (this.pools.get(entry.tenantId) === entry) this.pools.delete(entry.tenantId);
    entry.dropped = true;
    this.draining.add(entry);
    if (entry.refs === 0) void this.destroy(entry);
  }

  private destroy(entry: Entry): Promise<void> {
    entry.destroyed ??= entry.knex
      .destroy()
      .catch(() => undefined)
      .finally(() => {
        this.draining.delete(entry);
        this.wake();
      });
    return entry.destroyed;
  }

  /**
   * Closes a tenant's pool (suspend, delete): at once if no request holds it, else when
   * the last holder releases it (until then it still counts against the budget).
   * Resolves when an idle pool is destroyed, at once for a held one.
   */
  async drop(tenantId: number): Promise<void> {
    const entry = this.pools.get(tenantId);
    if (!entry) return;
    this.retire(entry);
    if (entry.destroyed) await entry.destroyed;
  }

  /** Current figures. */
  stats(): PoolStats {
    let idle = 0;
    let pending = 0;
    let held = 0;
    for (const e of [...this.pools.values(), ...this.draining]) {
      held += e.refs;
      const p = (e.knex.client as { pool?: { numFree(): number; numPendingAcquires(): number } }).pool;
      if (!p) continue;
      idle += p.numFree();
      pending += p.numPendingAcquires();
    }
    return {
      openPools: this.slotsUsed(),
      openConnections: this.connections,
      peakConnections: this.peak,
      heldLeases: held,
      idleConnections: idle,
      pendingAcquires: pending,
      evictions: this.evictions,
      waitsForPool: this.waitsForPool,
      exhausted: { ...this.exhausted },
    };
  }

  /** Closes every pool (graceful shutdown, after in-flight requests finished); waiting and later acquires fail. */
  async close(): Promise<void> {
    this.closed = true;
    this.wake();
    await Promise.allSettled([...this.opening.values()]);
    for (const e of [...this.pools.values()]) this.retire(e);
    await Promise.all([...this.draining].map((e) => this.destroy(e)));
  }
}
