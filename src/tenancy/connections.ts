/**
 * Per-tenant connection pools: one Knex per tenant, built with that tenant's own MySQL
 * account (DML only), at most `maxTenants` pools of at most `maxPerTenant` connections.
 * The total of open tenant connections therefore never exceeds
 * `maxPerTenant x maxTenants`, whatever the number of tenants served. When the cap is
 * reached, the least recently used pool that no request holds is closed (awaited) before
 * a new one opens; if every pool is held, the new tenant's request waits for one to be
 * released (it is not turned away).
 */
import type { Knex } from 'knex';
import type { Catalog, Tenant } from '../catalog/index.js';
import { createTenantCredentialsRepository } from '../catalog/tenant-credentials.js';
import type { Config } from '../config.js';
import { createMysqlKnex, MysqlErrno, mysqlErrno } from '../lib/knex.js';
import { decryptSecret } from '../lib/secrets.js';

interface Entry {
  tenantId: number;
  knex: Knex;
  refs: number;
  /** Credentials fingerprint: a changed tenant row rebuilds the pool. */
  key: string;
  /** Fingerprints this pool moved past after a refused login (a stale cached row keeps the pool). */
  superseded: Set<string>;
  /** Removed from the map while held: destroyed when the last holder releases it. */
  dropped?: boolean;
}

/** A borrowed tenant Knex; call `release()` exactly once when the request is done. */
export interface Lease {
  knex: Knex;
  release(): void;
}

/** Counters and gauges for `/metrics`. */
export interface PoolStats {
  openPools: number;
  openConnections: number;
  idleConnections: number;
  pendingAcquires: number;
  evictions: number;
  waitsForPool: number;
}

/** The per-tenant pool manager. */
export class TenantConnections {
  /** Map insertion order is the LRU order: oldest first. */
  private readonly pools = new Map<number, Entry>();
  private readonly waiters: Array<() => void> = [];
  private creating: Promise<unknown> = Promise.resolve();
  private evictions = 0;
  private waitsForPool = 0;
  private closed = false;
  private readonly credentials;

  constructor(
    private readonly catalog: Catalog,
    private readonly config: Pick<Config, 'pool' | 'secrets'>,
  ) {
    this.credentials = createTenantCredentialsRepository(catalog.knex);
  }

  /**
   * Borrows the tenant's Knex, opening its pool if needed.
   * @throws Error after {@link close}
   */
  async acquire(tenant: Tenant): Promise<Lease> {
    if (this.closed) throw new Error('tenant connections are closed');
    const key = `${tenant.databaseServerId}/${tenant.databaseName}/${tenant.dbUser}/${tenant.dbPasswordEnc}`;
    let entry = this.pools.get(tenant.id);
    if (entry && entry.key !== key && !entry.superseded.has(key)) {
      await this.drop(tenant.id);
      entry = undefined;
    }
    if (!entry) {
      // One creation at a time, so that room is made and counted once per new pool.
      const run = this.creating.then(() => this.open(tenant, key));
      this.creating = run.catch(() => undefined);
      entry = await run;
    } else {
      this.pools.delete(tenant.id);
      this.pools.set(tenant.id, entry);
    }
    entry.refs++;
    let released = false;
    const e = entry;
    return {
      knex: e.knex,
      release: () => {
        if (released) return;
        released = true;
        e.refs--;
        if (e.refs > 0) return;
        if (e.dropped) void e.knex.destroy();
        else this.waiters.shift()?.();
      },
    };
  }

  private async open(tenant: Tenant, key: string): Promise<Entry> {
    const existing = this.pools.get(tenant.id);
    if (existing && existing.key === key) return existing;
    while (this.pools.size >= this.config.pool.maxTenants) {
      const victim = [...this.pools.values()].find((e) => e.refs === 0);
      if (victim) {
        await this.evict(victim);
      } else {
        this.waitsForPool++;
        await new Promise<void>((resolve) => this.waiters.push(resolve));
      }
    }
    const server = await this.catalog.servers.get(tenant.databaseServerId);
    const knex = createMysqlKnex(
      {
        host: server.host,
        port: server.port,
        user: tenant.dbUser,
        password: decryptSecret(tenant.dbPasswordEnc, this.config.secrets),
        database: tenant.databaseName,
      },
      { min: 0, max: this.config.pool.maxPerTenant, idleTimeoutMillis: this.config.pool.idleMs, acquireTimeoutMillis: 10_000 },
    );
    const entry: Entry = { tenantId: tenant.id, knex, refs: 0, key, superseded: new Set() };
    this.retryRefusedLogins(entry, `${tenant.databaseServerId}/${tenant.databaseName}/${tenant.dbUser}`);
    this.pools.set(tenant.id, entry);
    return entry;
  }

  /**
   * A tenant's password can change under a running API (`silo tenants rotate-credentials`).
   * MariaDB keeps the sessions already authenticated but refuses a new one with the old
   * password (ER_ACCESS_DENIED_ERROR, 1045). Then the tenant's stored passwords are read
   * again from the catalog (the current one and, while a rotation is under way, the
   * previous one) and the connection is tried again with each that differs from the
   * refused one; the pool keeps the one that worked. No statement had run on the refused
   * connection, so nothing is repeated.
   */
  private retryRefusedLogins(entry: Entry, target: string): void {
    const client = entry.knex.client as { connectionSettings: { password?: string }; acquireRawConnection(): Promise<unknown> };
    const connect = client.acquireRawConnection.bind(client);
    client.acquireRawConnection = async () => {
      try {
        return await connect();
      } catch (err) {
        if (mysqlErrno(err) !== MysqlErrno.ACCESS_DENIED) throw err;
        const refused = client.connectionSettings.password;
        const stored = await this.credentials.get(entry.tenantId);
        let last: unknown = err;
        for (const enc of [stored?.dbPasswordEnc, stored?.dbPasswordPrevEnc]) {
          if (!enc) continue;
          const password = decryptSecret(enc, this.config.secrets);
          if (password === refused) continue;
          client.connectionSettings = { ...client.connectionSettings, password };
          try {
            const raw = await connect();
            if (enc === stored?.dbPasswordEnc && entry.key !== `${target}/${enc}`) {
              entry.superseded.add(entry.key);
              entry.key = `${target}/${enc}`;
            }
            return raw;
          } catch (retryErr) {
            last = retryErr;
            if (mysqlErrno(retryErr) !== MysqlErrno.ACCESS_DENIED) break;
          }
        }
        throw last;
      }
    };
  }

  private async evict(entry: Entry): Promise<void> {
    if (this.pools.get(entry.tenantId) === entry) this.pools.delete(entry.tenantId);
    this.evictions++;
    // Only idle pools are evicted here, so no query is cut.
    await entry.knex.destroy();
  }

  /**
   * Closes a tenant's pool (suspend, delete): at once if no request holds it, else when
   * the last holder releases it.
   */
  async drop(tenantId: number): Promise<void> {
    const entry = this.pools.get(tenantId);
    if (!entry) return;
    this.pools.delete(tenantId);
    if (entry.refs === 0) {
      await entry.knex.destroy();
      return;
    }
    entry.dropped = true;
  }

  /** Current figures. */
  stats(): PoolStats {
    let open = 0;
    let idle = 0;
    let pending = 0;
    for (const e of this.pools.values()) {
      const p = e.knex.client.pool as { numUsed(): number; numFree(): number; numPendingAcquires(): number } | undefined;
      if (!p) continue;
      open += p.numUsed() + p.numFree();
      idle += p.numFree();
      pending += p.numPendingAcquires();
    }
    return {
      openPools: this.pools.size,
      openConnections: open,
      idleConnections: idle,
      pendingAcquires: pending,
      evictions: this.evictions,
      waitsForPool: this.waitsForPool,
    };
  }

  /** Closes every pool (graceful shutdown, after in-flight requests finished). */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.pools.values()];
    this.pools.clear();
    for (const w of this.waiters.splice(0)) w();
    await Promise.all(all.map((e) => e.knex.destroy()));
  }
}
