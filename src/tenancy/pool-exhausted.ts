/**
 * The answer to a request that waited too long for tenant database room: 503
 * `POOL_EXHAUSTED` with Retry-After (see `TenantConnections` in ./connections.ts).
 */
import { UnavailableError } from '../lib/errors.js';

/** Seconds a `POOL_EXHAUSTED` answer asks the client to wait (Retry-After). */
export const POOL_EXHAUSTED_RETRY_AFTER_S = 1;

/**
 * The 503 `POOL_EXHAUSTED` answer: no connection came free for the tenant's query within
 * `SILO_POOL_ACQUIRE_TIMEOUT_MS` (`connection`: the process-wide budget
 * `SILO_POOL_MAX_CONNECTIONS` is in use, or the tenant uses its `SILO_POOL_MAX_PER_TENANT`);
 * `pool` is kept for callers of the earlier per-tenant pools.
 */
export function poolExhaustedError(what: 'pool' | 'connection', cause?: unknown): UnavailableError {
  const message =
    what === 'pool'
      ? 'every tenant connection pool of this API process is busy; retry shortly'
      : 'every tenant database connection of this API process (or every one this tenant may use) is busy; retry shortly';
  return new UnavailableError(message, 'POOL_EXHAUSTED', POOL_EXHAUSTED_RETRY_AFTER_S, undefined, cause);
}

/** True for knex's timeout of a wait for a pool connection (not a query timeout): see {@link poolExhaustedError}. */
export function isConnectionWaitTimeout(err: unknown): boolean {
  const e = err as { name?: unknown; message?: unknown } | null;
  return e?.name === 'KnexTimeoutError' && typeof e.message === 'string' && e.message.startsWith('Knex: Timeout acquiring a connection');
}
