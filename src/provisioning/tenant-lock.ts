/**
 * One lifecycle operation per tenant at a time, across processes: each operation holds
 * a MySQL named lock (`GET_LOCK`) on the catalog server for its whole run. MySQL drops
 * a session's named locks when the session ends (MySQL 8.4 §14.14 "Locking Functions"),
 * so the lock of a crashed process is released at once, and whoever holds the lock
 * knows that any operation still marked `running` on that tenant was interrupted.
 */
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import type { Config } from '../config.js';
import { ConflictError } from '../lib/errors.js';
import { createMysqlKnex } from '../lib/knex.js';

/** Per-tenant named locks on the catalog server; each held lock holds one connection. */
export class TenantLocks {
  private knex: Knex | undefined;
  private readonly scope: string;

  /** @param maxHeld locks held at once by this process (connections of the lock pool) */
  constructor(
    private readonly config: Pick<Config, 'catalog'>,
    private readonly maxHeld = 64,
  ) {
    const c = config.catalog;
    // Lock names are limited to 64 characters: the catalog's identity is hashed.
    this.scope = createHash('sha256').update(`${c.host}:${c.port}/${c.database}`).digest('hex').slice(0, 16);
  }

  /** The lock name of a tenant: `silo:tenant:<catalog hash>:<tenant id>`. */
  lockName(tenantId: number): string {
    return `silo:tenant:${this.scope}:${tenantId}`;
  }

  private pool(): Knex {
    this.knex ??= createMysqlKnex(this.config.catalog, { min: 0, max: this.maxHeld, idleTimeoutMillis: 10_000 });
    return this.knex;
  }

  /**
   * Runs `fn` holding the tenant's lock.
   * @param waitS seconds to wait for another holder (0: fail at once)
   * @throws ConflictError `TENANT_BUSY` when another operation holds it
   */
  async withLock<T>(tenant: { id: number; slug: string }, fn: () => Promise<T>, waitS = 0): Promise<T> {
    const name = this.lockName(tenant.id);
    // A transaction pins one connection for the lock's lifetime; it runs no statement on data.
    const trx = await this.pool().transaction();
    try {
      const [rows] = await trx.raw('SELECT GET_LOCK(?, ?) AS ok', [name, waitS]);
      if (Number(rows[0]?.ok) !== 1) {
        throw new ConflictError(
          `another operation is running on tenant "${tenant.slug}"; wait for it to finish (silo operations list --tenant ${tenant.slug})`,
          'TENANT_BUSY',
          { slug: tenant.slug },
        );
      }
      try {
        return await fn();
      } finally {
        await trx.raw('SELECT RELEASE_LOCK(?)', [name]).catch(() => undefined);
      }
    } finally {
      await trx.rollback().catch(() => undefined);
    }
  }

  /** Closes the lock pool. */
  async destroy(): Promise<void> {
    await this.knex?.destroy();
    this.knex = undefined;
  }
}
