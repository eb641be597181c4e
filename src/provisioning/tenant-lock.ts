/**
 * One lifecycle operation per tenant at a time, across processes: each operation holds
 * a MySQL named lock (`GET_LOCK`) on the catalog server for its whole run. MySQL drops
 * a session's named locks when the session ends (MySQL 8.4 §14.14 "Locking Functions"),
 * so the lock of a crashed process is released at once, and whoever holds the lock
 * knows that any operation still marked `running` on that tenant was interrupted.
 *
 * The same rule can drop a live holder's lock unseen (`wait_timeout`, a proxy, a KILL):
 * the session that held it is gone and another runner may take it. So the holder checks
 * `IS_USED_LOCK(name) = CONNECTION_ID()` on the lock's own connection before each
 * destructive step ({@link assertLockHeld}, called by every operation step) and stops
 * with {@link LockLostError} otherwise.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import type { Config } from '../config.js';
import { ConflictError, SiloError } from '../lib/errors.js';
import { createMysqlKnex } from '../lib/knex.js';

/** The lock an operation ran under is no longer held by it (its session ended): it stopped before its next step. */
export class LockLostError extends SiloError {
  constructor(name: string, cause?: unknown) {
    super(`lock lost: ${name} is no longer held by this process (its session ended); stopped before the next step`, {
      code: 'LOCK_LOST',
      status: 409,
      details: { lock: name },
      cause,
    });
  }
}

/** A held named lock. */
export interface HeldLock {
  name: string;
  /** @throws LockLostError when the lock's session no longer holds it (checked on that session) */
  assertHeld(): Promise<void>;
}

const current = new AsyncLocalStorage<HeldLock>();

/**
 * Checks that the tenant lock the caller runs under (if any) is still held.
 * @throws LockLostError
 */
export async function assertLockHeld(): Promise<void> {
  await current.getStore()?.assertHeld();
}

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

  /**
   * The lock that makes "this name belongs to a tenant" one decision: held by create while
   * its catalog row commits, and by orphan pruning while it re-checks and drops a name.
   */
  namesLockName(): string {
    return `silo:names:${this.scope}`;
  }

  private pool(): Knex {
    this.knex ??= createMysqlKnex(this.config.catalog, { min: 0, max: this.maxHeld, idleTimeoutMillis: 10_000 });
    return this.knex;
  }

  /**
   * Runs `fn` holding the tenant's lock; operation steps inside `fn` check it
   * ({@link assertLockHeld}).
   * @param waitS seconds to wait for another holder (0: fail at once)
   * @throws ConflictError `TENANT_BUSY` when another operation holds it
   */
  async withLock<T>(tenant: { id: number; slug: string }, fn: () => Promise<T>, waitS = 0): Promise<T> {
    const busy = () =>
      new ConflictError(
        `another operation is running on tenant "${tenant.slug}"; wait for it to finish (silo operations list --tenant ${tenant.slug})`,
        'TENANT_BUSY',
        { slug: tenant.slug },
      );
    return this.hold(this.lockName(tenant.id), waitS, busy, (lock) => current.run(lock, fn));
  }

  /**
   * Runs `fn` holding {@link namesLockName} (short sections only: it serializes creates).
   * @param waitS seconds to wait (default 30)
   * @throws ConflictError `NAMES_BUSY` when not granted in time
   */
  async withNamesLock<T>(fn: () => Promise<T>, waitS = 30): Promise<T> {
    const busy = () => new ConflictError('tenant names are being checked by another process (orphan pruning); retry shortly', 'NAMES_BUSY');
    return this.hold(this.namesLockName(), waitS, busy, () => fn());
  }

  private async hold<T>(name: string, waitS: number, busy: () => Error, fn: (lock: HeldLock) => Promise<T>): Promise<T> {
    // A transaction pins one connection for the lock's lifetime; it runs no statement on data.
    const trx = await this.pool().transaction();
    try {
      const [rows] = (await trx.raw('SELECT GET_LOCK(?, ?) AS ok', [name, waitS])) as [Array<{ ok: number | null }>];
      if (Number(rows[0]?.ok) !== 1) throw busy();
      let lost: LockLostError | undefined;
      const lock: HeldLock = {
        name,
        async assertHeld() {
          if (lost) throw lost;
          try {
            const [r] = (await trx.raw('SELECT IS_USED_LOCK(?) = CONNECTION_ID() AS held', [name])) as [Array<{ held: number | null }>];
            if (Number(r[0]?.held) !== 1) lost = new LockLostError(name);
          } catch (err) {
            lost = new LockLostError(name, err);
          }
          if (lost) throw lost;
        },
      };
      try {
        return await fn(lock);
      } finally {
        if (!lost) await trx.raw('SELECT RELEASE_LOCK(?)', [name]).catch(() => undefined);
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
