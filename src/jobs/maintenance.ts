/**
 * The scheduled maintenance of `silo serve`: history partitions for the coming months
 * (so no row piles into `pmax`), the purge of expired tenant rows (src/jobs/purge.ts),
 * the deletion of signup tenants left unverified past `SILO_SIGNUP_VERIFY_TTL_HOURS`
 * (src/signup/signup-service.ts) and of slug reservations that ran out.
 *
 * Any number of API processes may run it: each run first takes the MySQL named lock
 * `silo:job:<catalog>:maintenance` with `GET_LOCK(name, 0)` on one pinned catalog
 * connection; a process that does not get it skips the run. The lock is held for the
 * whole run and released at its end, or by MySQL when the session ends (a crashed
 * process), MySQL 8.4 §14.14 "Locking Functions". The schedule is a cron expression
 * (`croner`, 5 or 6 fields, UTC), `SILO_MAINTENANCE_CRON`; no Fastify in here.
 */
import { createHash } from 'node:crypto';
import { Cron } from 'croner';
import type { SiloContext } from '../context.js';
import { ensureHistoryPartitions } from '../history/partitions.js';
import { purgeUnverifiedTenants } from '../signup/signup-service.js';
import { purgeTenants, type TenantPurgeResult } from './purge.js';

/** Months ahead of the current one that always have a partition. */
export const HISTORY_MONTHS_AHEAD = 2;

/** What one run did; `ran` false when another process held the lock. */
export type MaintenanceRun =
  | { ran: false }
  | {
      ran: true;
      partitionsAdded: string[];
      purge: TenantPurgeResult[];
      /** Slugs of signup tenants deleted for want of verification within `SILO_SIGNUP_VERIFY_TTL_HOURS`. */
      unverifiedDeleted: string[];
      /** Rename reservations that ran out, deleted. */
      slugReservationsPurged: number;
    };

/** Test hooks of {@link runMaintenance}. */
export interface MaintenanceHooks {
  /** Called holding the lock, before any work. */
  afterLock?: () => Promise<void>;
}

/** The lock name for `job` on this catalog (at most 64 characters, as MySQL requires). */
export function jobLockName(ctx: Pick<SiloContext, 'config'>, job: string): string {
  const c = ctx.config.catalog;
  const scope = createHash('sha256').update(`${c.host}:${c.port}/${c.database}`).digest('hex').slice(0, 16);
  return `silo:job:${scope}:${job}`;
}

/**
 * Runs `fn` holding the catalog lock of `job`, or not at all when another session holds it.
 * @returns `{ ran: true, value }`, or `{ ran: false }` when the lock was taken
 */
export async function withJobLock<T>(ctx: SiloContext, job: string, fn: () => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }> {
  const name = jobLockName(ctx, job);
  // A transaction pins one connection for the lock's lifetime; it runs no statement on data.
  const trx = await ctx.catalog.knex.transaction();
  try {
    const [rows] = (await trx.raw('SELECT GET_LOCK(?, 0) AS ok', [name])) as [Array<{ ok: number | null }>];
    if (Number(rows[0]?.ok) !== 1) return { ran: false };
    try {
      return { ran: true, value: await fn() };
    } finally {
      await trx.raw('SELECT RELEASE_LOCK(?)', [name]).catch(() => undefined);
    }
  } finally {
    await trx.rollback().catch(() => undefined);
  }
}

/**
 * One maintenance run under the catalog lock: partitions ahead, then the purge of every
 * active or suspended tenant (a failing tenant is logged and does not stop the others).
 * @throws the catalog error when the lock or the partition DDL fails
 */
export async function runMaintenance(ctx: SiloContext, hooks: MaintenanceHooks = {}): Promise<MaintenanceRun> {
  const r = await withJobLock(ctx, 'maintenance', async () => {
    await hooks.afterLock?.();
    const partitionsAdded = await ensureHistoryPartitions(ctx.catalog.knex, new Date(), HISTORY_MONTHS_AHEAD);
    const purge = await purgeTenants(ctx, { all: true });
    const unverifiedDeleted = await purgeUnverifiedTenants(ctx, ctx.config.signup.verifyTtlHours);
    const slugReservationsPurged = await ctx.catalog.tenants.purgeSlugReservations();
    return { partitionsAdded, purge, unverifiedDeleted, slugReservationsPurged };
  });
  return r.ran ? { ran: true, ...r.value } : { ran: false };
}

/** A started schedule. */
export interface MaintenanceSchedule {
  /** Stops the schedule and waits for a run in progress. */
  stop(): Promise<void>;
}

/**
 * Starts the maintenance schedule (a run never overlaps the previous one in this process).
 * @param cron cron expression (UTC), e.g. `*\/10 * * * *`; null: no schedule
 * @throws Error from croner when `cron` is not a valid expression
 */
export function startMaintenance(ctx: SiloContext, cron: string | null): MaintenanceSchedule {
  if (!cron) return { stop: () => Promise.resolve() };
  let running: Promise<unknown> | undefined;
  const job = new Cron(cron, { timezone: 'UTC', protect: true }, async () => {
    running = runMaintenance(ctx)
      .then((r) => {
        if (
          r.ran &&
          (r.partitionsAdded.length || r.unverifiedDeleted.length || r.purge.some((p) => p.idempotencyKeys || p.refreshTokens || p.outcome === 'failed'))
        ) {
          ctx.log.info(
            {
              partitionsAdded: r.partitionsAdded,
              purge: r.purge.filter((p) => p.idempotencyKeys || p.refreshTokens || p.outcome !== 'purged'),
              unverifiedDeleted: r.unverifiedDeleted,
            },
            'maintenance run',
          );
        }
      })
      .catch((err: unknown) => ctx.log.error({ err }, 'maintenance run failed'));
    await running;
  });
  return {
    async stop() {
      job.stop();
      await running;
    },
  };
}
