/**
 * The plan's request rate per tenant (`plans.requests_per_minute`): a fixed window of one
 * minute (UTC minutes since the epoch, the same in every process whose clock is right),
 * counted per tenant; past the limit the request is refused until the window ends
 * (429 `RATE_LIMITED` with `Retry-After`). A fixed window lets a tenant send up to twice
 * its rate across a window boundary; it costs one counter per tenant and window.
 *
 * Counted in the process ({@link LocalRateCounter}), or, with `SILO_REDIS_URL`, in Redis
 * ({@link RedisRateCounter}: one `EVAL` per request of a rate-limited tenant, INCR and a
 * PEXPIRE on the window's first request), so every API process shares the tenant's
 * count. A Redis that fails or answers late does not fail the request: that request is
 * counted in the process instead (the limit then holds per process), and a warning is
 * logged at most once a minute. Tenants whose plan has no rate never reach a counter.
 */
import type { Logger } from 'pino';
import { TooManyRequestsError } from '../lib/errors.js';
import type { RedisClient } from '../lib/redis.js';

/** Length of a window, ms. */
export const RATE_WINDOW_MS = 60_000;

/** Counts requests of a tenant in a window. */
export interface RateCounter {
  /** Adds one request of `tenantId` in window `window` and returns the window's count so far (this one included). */
  hit(tenantId: number, window: number): number | Promise<number>;
}

/** Counts in this process: one entry per tenant, for its current window. */
export class LocalRateCounter implements RateCounter {
  private readonly counts = new Map<number, { window: number; n: number }>();

  hit(tenantId: number, window: number): number {
    const c = this.counts.get(tenantId);
    if (c && c.window === window) return ++c.n;
    // A new window replaces the tenant's old one: the map holds one entry per tenant seen.
    this.counts.set(tenantId, { window, n: 1 });
    return 1;
  }
}

/** INCR, and on the window's first request PEXPIRE, in one round trip. */
const HIT_SCRIPT = "local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return n";

/** Counts in Redis, under `<prefix>rate:<tenant id>:<window>`; keys expire a window after their own. */
export class RedisRateCounter implements RateCounter {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  async hit(tenantId: number, window: number): Promise<number> {
    const n = await this.redis.command(['EVAL', HIT_SCRIPT, 1, `${this.prefix}rate:${tenantId}:${window}`, 2 * RATE_WINDOW_MS]);
    return Number(n);
  }
}

/** The per-plan limiter: a counter (shared or local) and the local fallback. */
export class PlanRateLimiter {
  private readonly local = new LocalRateCounter();
  private warnedAt = 0;

  /**
   * @param shared the Redis counter, when `SILO_REDIS_URL` is set
   * @param now clock, ms (tests)
   */
  constructor(
    private readonly shared: RateCounter | undefined,
    private readonly log?: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Counts one request of `tenantId` against `perMinute`.
   * @returns undefined when allowed (synchronously without Redis), or the error to answer
   */
  check(tenantId: number, perMinute: number): TooManyRequestsError | undefined | Promise<TooManyRequestsError | undefined> {
    const now = this.now();
    const window = Math.floor(now / RATE_WINDOW_MS);
    const verdict = (n: number) => (n > perMinute ? limited(perMinute, now, window) : undefined);
    if (!this.shared) return verdict(this.local.hit(tenantId, window));
    const counted = this.shared.hit(tenantId, window);
    if (typeof counted === 'number') return verdict(counted);
    return counted.then(verdict, (err: unknown) => {
      if (now - this.warnedAt >= RATE_WINDOW_MS) {
        this.warnedAt = now;
        this.log?.warn({ err }, 'Redis did not count a request for the plan rate limit; counting in this process meanwhile');
      }
      return verdict(this.local.hit(tenantId, window));
    });
  }
}

function limited(perMinute: number, now: number, window: number): TooManyRequestsError {
  const retryAfterS = Math.max(1, Math.ceil(((window + 1) * RATE_WINDOW_MS - now) / 1000));
  return new TooManyRequestsError(`the plan allows ${perMinute} requests per minute for this tenant; retry in ${retryAfterS} s`, 'RATE_LIMITED', retryAfterS, {
    limit: perMinute,
  });
}
