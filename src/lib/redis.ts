/**
 * Silo's Redis connection: `ioredis` (the well-kept client), configured for the few
 * commands Silo sends (the plan rate limit's counter, an `EVAL`) so that a Redis that is
 * down or slow costs a request at most `timeoutMs`: no offline queue, one attempt per
 * command, reconnects in the background. `SILO_REDIS_URL` is parsed here
 * (`redis://[user[:password]@]host[:port][/db]`, `rediss://` for TLS); its credentials go
 * to the server only (never logged).
 */
import { Redis } from 'ioredis';

/** A reply: simple or bulk string, integer, null, or an array of replies. */
export type RedisReply = string | number | null | RedisReply[];

export class RedisError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedisError';
  }
}

/** Where and how to connect: parsed from `SILO_REDIS_URL`. */
export interface RedisOptions {
  host: string;
  port: number;
  tls: boolean;
  username: string | undefined;
  password: string | undefined;
  db: number;
  /** Longest wait for the connection, and for each reply, ms (default 1,000). */
  timeoutMs?: number;
}

/**
 * Parses `redis://[user[:password]@]host[:port][/db]` (or `rediss://` for TLS).
 * @throws Error for another scheme or a database that is not a number
 */
export function parseRedisUrl(value: string): RedisOptions {
  const url = new URL(value);
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new Error(`expected a redis:// or rediss:// URL, got ${url.protocol}`);
  const path = url.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d{1,2}$/.test(path)) throw new Error('the database part must be a number such as /0');
  return {
    host: url.hostname || '127.0.0.1',
    port: url.port ? Number(url.port) : 6379,
    tls: url.protocol === 'rediss:',
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    db: path === '' ? 0 : Number(path),
  };
}

/** One Redis connection (ioredis), with the only call Silo needs. */
export class RedisClient {
  private readonly redis: Redis;
  private connecting: Promise<void> | undefined;

  constructor(opts: RedisOptions) {
    const timeoutMs = opts.timeoutMs ?? 1_000;
    this.redis = new Redis({
      host: opts.host,
      port: opts.port,
      ...(opts.username ? { username: opts.username } : {}),
      ...(opts.password ? { password: opts.password } : {}),
      db: opts.db,
      ...(opts.tls ? { tls: {} } : {}),
      lazyConnect: true,
      connectTimeout: timeoutMs,
      commandTimeout: timeoutMs,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy: (times) => Math.min(times * 200, 2_000),
    });
    // Errors reach the caller of each command; the connection's own 'error' events are expected while Redis is down.
    this.redis.on('error', () => undefined);
  }

  /**
   * Sends one command and resolves with its reply.
   * @throws RedisError for an error reply, a refused or lost connection, or no reply within the timeout
   */
  async command(args: ReadonlyArray<string | number>): Promise<RedisReply> {
    try {
      if (this.redis.status === 'wait') {
        this.connecting ??= this.redis.connect().finally(() => (this.connecting = undefined));
        await this.connecting;
      }
      const [name, ...rest] = args;
      return (await this.redis.call(String(name), ...rest.map(String))) as RedisReply;
    } catch (err) {
      throw new RedisError((err as Error).message);
    }
  }

  /** Closes the connection. */
  close(): Promise<void> {
    this.redis.disconnect();
    return Promise.resolve();
  }
}
