/**
 * A small Redis client (RESP2 over one TCP or TLS connection, pipelined) for the few
 * commands Silo sends: the plan rate limit's counter (`EVAL`). No Redis client package is
 * a dependency yet; this one speaks only what is needed (Redis "Protocol spec" RESP2:
 * commands as arrays of bulk strings; replies `+` simple string, `-` error, `:` integer,
 * `$` bulk string, `*` array). Replies come back in the order the commands were sent, so
 * a command that times out closes the connection (every pending command fails with it),
 * and the next command opens a new one. Credentials of the URL are sent with `AUTH` and
 * never logged; `redis://user:password@host:port/db` and `rediss://` (TLS) are accepted.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/** A RESP2 reply. */
export type RedisReply = string | number | null | RedisReply[];

/** An error reply of the server (`-ERR ...`), or a connection that failed or timed out. */
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

interface Pending {
  resolve: (r: RedisReply) => void;
  reject: (e: Error) => void;
}

/** One byte offset past `\r\n` from `from`, or -1 when the line is not complete yet. */
function lineEnd(buf: Buffer, from: number): number {
  const i = buf.indexOf('\r\n', from);
  return i < 0 ? -1 : i;
}

/**
 * Parses one reply at `offset`.
 * @returns the reply and the offset after it, or undefined when the buffer holds only part of it
 */
function parseReply(buf: Buffer, offset: number): { value: RedisReply | RedisError; next: number } | undefined {
  if (offset >= buf.length) return undefined;
  const end = lineEnd(buf, offset + 1);
  if (end < 0) return undefined;
  const type = String.fromCharCode(buf[offset]!);
  const line = buf.toString('utf8', offset + 1, end);
  const next = end + 2;
  switch (type) {
    case '+':
      return { value: line, next };
    case '-':
      return { value: new RedisError(line), next };
    case ':':
      return { value: Number(line), next };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, next };
      if (buf.length < next + len + 2) return undefined;
      return { value: buf.toString('utf8', next, next + len), next: next + len + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, next };
      const items: RedisReply[] = [];
      let at = next;
      for (let i = 0; i < n; i++) {
        const item = parseReply(buf, at);
        if (!item) return undefined;
        items.push(item.value instanceof RedisError ? null : item.value);
        at = item.next;
      }
      return { value: items, next: at };
    }
    default:
      throw new RedisError(`unexpected reply type ${JSON.stringify(type)} from Redis`);
  }
}

/** Encodes a command as a RESP array of bulk strings. */
function encode(args: ReadonlyArray<string | number>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** One pipelined connection to Redis, opened on the first command and again after a failure. */
export class RedisClient {
  private socket: Socket | undefined;
  private buffer: Buffer = Buffer.alloc(0);
  private readonly pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly timeoutMs: number;

  constructor(private readonly opts: RedisOptions) {
    this.timeoutMs = opts.timeoutMs ?? 1_000;
  }

  /**
   * Sends one command and resolves with its reply.
   * @throws RedisError for an error reply, a refused or lost connection, or no reply within the timeout
   */
  command(args: ReadonlyArray<string | number>): Promise<RedisReply> {
    if (this.closed) return Promise.reject(new RedisError('the Redis client is closed'));
    const socket = this.socket ?? this.open();
    return new Promise<RedisReply>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.arm();
      socket.write(encode(args));
    });
  }

  /** Closes the connection; pending commands fail. */
  close(): Promise<void> {
    this.closed = true;
    this.fail(new RedisError('the Redis client is closed'));
    return Promise.resolve();
  }

  private open(): Socket {
    const { host, port } = this.opts;
    const socket = this.opts.tls ? tlsConnect({ host, port, servername: host }) : netConnect({ host, port });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
    socket.on('error', (err: Error) => this.fail(new RedisError(`Redis connection failed: ${err.message}`), socket));
    socket.on('close', () => this.fail(new RedisError('the Redis connection closed'), socket));
    // Sent before any command on this connection, their replies checked like any other.
    const { username, password, db } = this.opts;
    const setup: Array<Array<string | number>> = [];
    if (password !== undefined) setup.push(username ? ['AUTH', username, password] : ['AUTH', password]);
    if (db !== 0) setup.push(['SELECT', db]);
    for (const args of setup) {
      this.pending.push({ resolve: () => undefined, reject: () => undefined });
      socket.write(encode(args));
    }
    return socket;
  }

  /** (Re)starts the reply timer while commands wait. */
  private arm(): void {
    clearTimeout(this.timer);
    if (!this.pending.length) return;
    this.timer = setTimeout(() => this.fail(new RedisError(`no reply from Redis within ${this.timeoutMs} ms`)), this.timeoutMs);
    this.timer.unref();
  }

  private onData(socket: Socket, chunk: Buffer): void {
    if (socket !== this.socket) return;
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    let offset = 0;
    for (;;) {
      let parsed: ReturnType<typeof parseReply>;
      try {
        parsed = parseReply(this.buffer, offset);
      } catch (err) {
        this.fail(err as RedisError);
        return;
      }
      if (!parsed) break;
      offset = parsed.next;
      const p = this.pending.shift();
      if (p) {
        if (parsed.value instanceof RedisError) p.reject(parsed.value);
        else p.resolve(parsed.value);
      }
    }
    this.buffer = this.buffer.subarray(offset);
    this.arm();
  }

  /** Fails every pending command and drops the connection (the next command opens another). */
  private fail(err: Error, socket = this.socket): void {
    if (socket !== this.socket || !socket) return;
    this.socket = undefined;
    clearTimeout(this.timer);
    socket.destroy();
    for (const p of this.pending.splice(0)) p.reject(err);
  }
}
