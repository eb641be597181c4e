/**
 * The store of `@fastify/rate-limit`'s per-route limits (sign-in, refresh, signup,
 * forgot-password, invitation accept): with `SILO_REDIS_URL`, counted in Redis so every API
 * process shares one budget per key (an attacker cannot multiply the login limit by the
 * number of processes behind the balancer); without it, in the process.
 *
 * Counting is a window per key (`INCR`, and `PEXPIRE` on the window's first hit, in one
 * `EVAL`), as the library's own Redis store does, under
 * `<SILO_REDIS_KEY_PREFIX>limit:<method><route>:<key>`. A Redis that fails or answers late
 * does not fail the request and does not lift the limit: that hit is counted in the
 * process instead (the limit then holds per process), with a warning at most once a minute.
 *
 * The store contract (`incr(key, cb, timeWindow, max)`, `child(routeOptions)`) is the one
 * `@fastify/rate-limit` 11 documents for its `store` option.
 */
import type { Logger } from 'pino';
import type { RedisClient } from '../lib/redis.js';

/** What a store reports for one hit: the count in the window (this hit included) and the window's time left, ms. */
export interface RateLimitHit {
  current: number;
  ttl: number;
}

type Callback = (err: Error | null, res?: RateLimitHit) => void;

/** INCR, PEXPIRE on the first hit, and the time left, in one round trip. */
const HIT_SCRIPT =
  "local n = redis.call('INCR', KEYS[1]) local ttl = tonumber(ARGV[1]) if n == 1 then redis.call('PEXPIRE', KEYS[1], ttl) else ttl = redis.call('PTTL', KEYS[1]) if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) ttl = tonumber(ARGV[1]) end end return {n, ttl}";

/** Windows counted in this process: one entry per key, bounded (oldest first out). */
class LocalWindows {
  private readonly windows = new Map<string, { n: number; endsAt: number }>();

  constructor(private readonly maxKeys = 10_000) {}

  hit(key: string, timeWindowMs: number, now: number): RateLimitHit {
    let w = this.windows.get(key);
    if (!w || w.endsAt <= now) {
      this.windows.delete(key);
      if (this.windows.size >= this.maxKeys) this.windows.delete(this.windows.keys().next().value!);
      w = { n: 0, endsAt: now + timeWindowMs };
      this.windows.set(key, w);
    }
    w.n++;
    return { current: w.n, ttl: w.endsAt - now };
  }
}

/** Shared between a store and its per-route children: the Redis client, the fallback and the warning's clock. */
interface StoreState {
  redis: RedisClient | undefined;
  prefix: string;
  log: Logger | undefined;
  local: LocalWindows;
  warnedAt: number;
}

/**
 * Makes the class given to `@fastify/rate-limit` as `store` (the plugin instantiates it
 * once, then calls `child` per route).
 * @param redis the shared Redis, or undefined to count in the process
 * @param prefix the Redis key prefix (`SILO_REDIS_KEY_PREFIX`)
 */
export function rateLimitStore(redis: RedisClient | undefined, prefix: string, log?: Logger) {
  const state: StoreState = { redis, prefix, log, local: new LocalWindows(), warnedAt: 0 };
  return class SiloRateLimitStore {
    readonly route: string;

    constructor(_globalParams?: unknown, route = '') {
      this.route = route;
    }

    incr(key: string, cb: Callback, timeWindow: number, _max?: number): void {
      const name = `${this.route}:${key}`;
      const local = () => state.local.hit(name, timeWindow, Date.now());
      if (!state.redis) return cb(null, local());
      state.redis.command(['EVAL', HIT_SCRIPT, 1, `${state.prefix}limit:${name}`, timeWindow]).then(
        (reply) => {
          const [n, ttl] = reply as [number, number];
          cb(null, { current: Number(n), ttl: Number(ttl) });
        },
        (err: unknown) => {
          const now = Date.now();
          if (now - state.warnedAt >= 60_000) {
            state.warnedAt = now;
            state.log?.warn({ err }, 'Redis did not count a request for a route rate limit; counting in this process meanwhile');
          }
          cb(null, local());
        },
      );
    }

    // The plugin passes the route's merged options with the route under `routeInfo` (its typings omit it).
    child(routeOptions: object): SiloRateLimitStore {
      const info = (routeOptions as { routeInfo?: { method?: string | string[]; url?: string } }).routeInfo;
      const method = Array.isArray(info?.method) ? info.method.join(',') : (info?.method ?? '');
      return new SiloRateLimitStore(undefined, `${method}${info?.url ?? ''}`);
    }
  };
}
