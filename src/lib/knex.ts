/**
 * Knex factory for MySQL/MariaDB through mysql2. Every connection runs in UTC
 * (`time_zone = '+00:00'`) and utf8mb4, so DATETIME(3) columns hold UTC with ms.
 */
import knexPkg, { type Knex } from 'knex';
import type { Logger } from 'pino';
import type { MysqlUrl } from '../config.js';
import { sanitizeMysqlError } from './error-text.js';
import { createLogger } from './logger.js';

const knexFactory = knexPkg as unknown as (config: Knex.Config) => Knex;

/** Pool sizes, in connections. `idleTimeoutMillis` in ms. */
export interface PoolOptions {
  min?: number;
  max: number;
  idleTimeoutMillis?: number;
  acquireTimeoutMillis?: number;
}

/** Fallback for knex's own messages when no logger is given: pino on stderr, warnings and up. */
let defaultKnexLogger: Logger | undefined;

/** knex's messages about a connection that failed or died: the caller gets the error itself. */
const CONNECTION_NOISE = /^(Acquire connection error|Connection Error):/;

/**
 * Routes knex's own messages to pino. knex prints them with `console.log` by default,
 * that is on stdout, which is for data (`--json`), and once per failed connection
 * attempt while a server is down. Connection failures go to debug (the query's caller
 * gets the error, maps it and logs it); other messages (deprecations, implicit commits)
 * are warnings.
 */
export function knexLogger(log?: Logger): Knex.Logger {
  const target = () => (log ?? (defaultKnexLogger ??= createLogger('warn'))).child({ component: 'knex' });
  const text = (m: unknown) => (typeof m === 'string' ? m : String((m as { message?: unknown } | null)?.message ?? m));
  return {
    warn: (m: unknown) => {
      const msg = text(m);
      if (CONNECTION_NOISE.test(msg)) target().debug(msg);
      else target().warn(msg);
    },
    error: (m: unknown) => target().error(text(m)),
    deprecate: (m: string) => target().warn(text(m)),
    debug: (m: unknown) => target().debug(text(m)),
  };
}

/**
 * The mysql2 connection options of every Silo connection (Knex pools and the tenant
 * connection manager): UTC dates with ms (`timezone: 'Z'`; the session time zone is set
 * separately, see {@link UTC_SESSION_SQL}), utf8mb4, exact numbers, TCP keep-alive.
 * @param conn server and credentials; `database` may be empty (server-level connection)
 */
export function mysqlConnectionOptions(conn: MysqlUrl) {
  return {
    host: conn.host,
    port: conn.port,
    user: conn.user,
    password: conn.password,
    ...(conn.database ? { database: conn.database } : {}),
    charset: 'utf8mb4',
    timezone: 'Z' as const,
    dateStrings: false,
    supportBigNumbers: true,
    bigNumberStrings: false,
    decimalNumbers: false,
    connectTimeout: 10_000,
    // A server or network that vanished without closing the socket is found by TCP itself.
    enableKeepAlive: true,
    keepAliveInitialDelay: 30_000,
    // mysql2 preallocates its prepared-statement LRU per connection (4 arrays of this many
    // slots; 16,000 by default, ~0.5 MB). Knex sends plain queries, so a small cache is
    // enough, and opening a connection (a tenant's after an eviction) stays cheap.
    maxPreparedStatements: 64,
  };
}

/** The statement that puts a session in UTC (sent only where the server's default is not UTC: {@link isUtcTimeZone}). */
export const UTC_SESSION_SQL = "SET time_zone = '+00:00'";

/**
 * True when a new session (or one reset by COM_CHANGE_USER) already runs in UTC: the
 * server's `@@global.time_zone` is UTC, or it is `SYSTEM` and `@@system_time_zone` is UTC
 * (MariaDB/MySQL server system variables). Then {@link UTC_SESSION_SQL} is not needed.
 */
export function isUtcTimeZone(globalTimeZone: string | null | undefined, systemTimeZone: string | null | undefined): boolean {
  const utc = (z: string | null | undefined) =>
    typeof z === 'string' && /^(\+00:00|-00:00|\+0:00|UTC|Etc\/UTC|GMT|Etc\/GMT|Coordinated Universal Time)$/i.test(z.trim());
  if (utc(globalTimeZone)) return true;
  return globalTimeZone?.toUpperCase() === 'SYSTEM' && utc(systemTimeZone);
}

/** Where a Knex built by {@link createSourcedKnex} gets its connections: raw mysql2 connections, lent and given back. */
export interface ConnectionSource {
  /** A connection for one query or one transaction; rejects when none came in time (the caller's error as is). */
  acquire(): Promise<unknown>;
  /** Gives back a connection lent by `acquire` (after its query or transaction ended, also after an error). */
  release(raw: unknown): void;
}

interface SourcedClientConfig extends Knex.Config {
  source: ConnectionSource;
}
type ClientCtor = new (config: SourcedClientConfig) => {
  acquireConnection(): Promise<unknown>;
  releaseConnection(c: unknown): Promise<void>;
  destroy(cb?: () => void): Promise<void>;
};
/** knex's mysql2 dialect class (not exported by knex's typings): the client of a Knex built without a connection. */
const Mysql2Client = (knexFactory({ client: 'mysql2' }).client as object).constructor as ClientCtor;

/** A pooled connection idle at least this long is pinged (COM_PING) before it is lent, ms; see {@link createMysqlKnex}. */
export const PING_AFTER_IDLE_MS = 5_000;
/** When each pooled connection of {@link createMysqlKnex} was opened or last given back, ms since the epoch. */
const idleSince = new WeakMap<object, number>();

/** knex's mysql2 client, noting when each connection goes back to the pool (for the pre-lend check). */
class PooledClient extends Mysql2Client {
  override releaseConnection(c: unknown): Promise<void> {
    if (c && typeof c === 'object') idleSince.set(c, Date.now());
    return super.releaseConnection(c);
  }
}

/** mysql2's own view of a connection still usable (the checks knex's mysql2 dialect makes in `validateConnection`). */
export function mysql2Alive(raw: unknown): boolean {
  const r = raw as { _fatalError?: unknown; _protocolError?: unknown; _closing?: boolean; stream?: { destroyed?: boolean } } | null;
  return !!r && !r._fatalError && !r._protocolError && !r._closing && !r.stream?.destroyed;
}

/**
 * Whether an idle connection about to be lent is still open: the one pre-lend check of
 * every Silo pool (this module's and the tenant connections'). Idle for less than
 * {@link PING_AFTER_IDLE_MS}: one turn of the event loop (setImmediate runs after the I/O
 * poll), so a close the server already sent (KILL, shutdown: the server closes the victim's
 * socket before it answers the KILL) is read first, without a round trip. Idle longer (or
 * `idleSinceMs` unknown): a COM_PING, for closes nobody told us of (a network cut, a
 * proxy's timeout).
 * @param idleSinceMs when the connection was opened or last given back, ms since the epoch
 */
export async function stillOpen(raw: { ping(cb: (err: Error | null) => void): void }, idleSinceMs: number | undefined): Promise<boolean> {
  if (idleSinceMs === undefined || Date.now() - idleSinceMs >= PING_AFTER_IDLE_MS) return new Promise<boolean>((resolve) => raw.ping((err) => resolve(!err)));
  await new Promise((resolve) => setImmediate(resolve));
  return mysql2Alive(raw);
}

/** knex's mysql2 client whose connections come from a {@link ConnectionSource} (queries and transactions alike), without a pool of its own. */
class SourcedClient extends Mysql2Client {
  source: ConnectionSource;
  constructor(config: SourcedClientConfig) {
    super(config);
    this.source = config.source;
  }
  /**
   * Connections this client lent and has not had back. knex releases a streamed query's
   * connection twice (when the stream ends and again in its runner's cleanup); a pool of
   * knex's own ignores the second, the source would lend the connection to two
   * transactions at once. So only the first release of a lending reaches the source. (One
   * set for all: sourced clients inherit the template's, and a connection object is unique.)
   */
  private readonly lent = new WeakSet<object>();
  override async acquireConnection(): Promise<unknown> {
    const c = await this.source.acquire();
    if (c && typeof c === 'object') this.lent.add(c);
    return c;
  }
  override releaseConnection(c: unknown): Promise<void> {
    if (c && typeof c === 'object') {
      if (!this.lent.has(c)) return Promise.resolve();
      this.lent.delete(c);
    }
    this.source.release(c);
    return Promise.resolve();
  }
  override destroy(cb?: () => void): Promise<void> {
    cb?.();
    return Promise.resolve();
  }
}

/** What {@link createSourcedKnex} uses of a Knex's internals: its context (knex-builder/make-knex.js) holds the client. */
interface KnexInternals {
  context: { client: SourcedClient; queryBuilder(): Knex.QueryBuilder };
  client: SourcedClient;
}

/** The one full Knex every sourced Knex inherits from (its methods, its client's compiled dialect, the error sanitizer). */
let template: (Knex & KnexInternals) | undefined;
/** The context every sourced Knex's own context inherits from: the template's, with {@link transactionRetryingDeadlocks}. */
let sourcedContext: KnexInternals['context'] | undefined;

/** How many times a transaction runs at most when InnoDB keeps choosing it as a deadlock's victim. */
export const DEADLOCK_ATTEMPTS = 4;

/**
 * `transaction(callback, config?)` that runs the callback again, in a new transaction, when
 * InnoDB rolled the transaction back as a deadlock's victim (ER_LOCK_DEADLOCK, 1213): the
 * MySQL manual's rule ("Always be prepared to re-issue a transaction if it fails due to
 * deadlock", MySQL 8.0 Reference Manual §17.7.5.3, "How to Minimize and Handle Deadlocks").
 * At most {@link DEADLOCK_ATTEMPTS} runs, a few random ms apart (so the two sides do not
 * meet again in step); then the error is thrown (answered 503 `TRANSACTION_CONFLICT`).
 * The callback must be safe to run again from the start: its database work was rolled
 * back; what it did outside the database (an object deleted from S3) is done again.
 * Other forms (`transaction()`, `transaction(config)`) and nested transactions (savepoints,
 * whose deadlock rolls back the outer transaction, re-run with it) are not retried.
 */
function transactionRetryingDeadlocks(this: KnexInternals['context'] & Pick<Knex, 'transaction'>, ...args: unknown[]): unknown {
  const base = (template!.context as unknown as Pick<Knex, 'transaction'>).transaction;
  if (typeof args[0] !== 'function') return (base as (...a: unknown[]) => unknown).apply(this, args);
  const run = () => (base as (...a: unknown[]) => Promise<unknown>).apply(this, args);
  return (async () => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (err) {
        if (mysqlErrno(err) !== MysqlErrno.LOCK_DEADLOCK || attempt >= DEADLOCK_ATTEMPTS) throw err;
        await new Promise((resolve) => setTimeout(resolve, 2 + Math.random() * 10 * attempt));
      }
    }
  })();
}

/**
 * A Knex (query builder, transactions, mysql2 dialect) with no pool of its own: every
 * query, and every transaction for its whole length, borrows a connection from `source`
 * and gives it back when done. Cheap (a few hundred bytes, no driver, no pool, no timers):
 * it is a function whose prototype is one shared template Knex, with its own context and
 * a client that inherits from the template's and differs only by `source` (a full Knex
 * costs ~22 KB: ~150 method closures). `transaction(callback)` re-runs a deadlock's victim
 * ({@link transactionRetryingDeadlocks}). Query errors are cleaned of their bound values as
 * in {@link createMysqlKnex} (the template's listener); `destroy()` does nothing (the
 * source owns the connections). knex's internals it relies on are checked by
 * test/change-user-isolation.test.ts (queries, raw, transactions).
 */
export function createSourcedKnex(source: ConnectionSource): Knex {
  if (!template) {
    const noSource: ConnectionSource = { acquire: () => Promise.reject(new Error('no connection source')), release: () => undefined };
    template = knexFactory({
      client: SourcedClient as unknown as string,
      log: knexLogger(),
      compileSqlOnError: false,
      source: noSource,
    } as SourcedClientConfig) as Knex & KnexInternals;
    template.on('query-error', (err: unknown, obj: { sql?: string } | undefined) => sanitizeMysqlError(err, obj?.sql));
    sourcedContext = Object.create(template.context) as KnexInternals['context'];
    (sourcedContext as unknown as { transaction: unknown }).transaction = transactionRetryingDeadlocks;
  }
  const client = Object.create(template.client as object) as SourcedClient;
  client.source = source;
  const context = Object.create(sourcedContext!) as KnexInternals['context'];
  context.client = client;
  const knex = function (tableName?: Knex.TableDescriptor, options?: unknown) {
    const qb = context.queryBuilder();
    return tableName ? qb.table(tableName, options as never) : qb;
  };
  Object.setPrototypeOf(knex, template);
  (knex as unknown as KnexInternals).context = context;
  return knex as unknown as Knex;
}

/** What {@link createMysqlKnex} uses of a mysql2 connection. */
interface RawConnection {
  query(sql: string, cb: (err: Error | null) => void): void;
  ping(cb: (err: Error | null) => void): void;
}

/**
 * Builds a Knex over mysql2. Only knex's, tarn's and mysql2's documented options and
 * events are used (test/knex-contract.test.ts holds what Silo relies on):
 * - a pooled connection is checked before it is lent, through tarn's `validate` (knex's
 *   `pool.validate`): pinged (COM_PING) when it has been idle {@link PING_AFTER_IDLE_MS} or
 *   more, else after one turn of the event loop, which reads a close the server already
 *   sent (see `stillOpen`); one that died while idle (KILL, a server restart,
 *   `wait_timeout`, a network cut) fails the check and the pool replaces it, so the next
 *   read, transaction or write runs on a live connection, once. (A CLI command sends one
 *   statement after another on the same connections: a ping before each was a round trip
 *   per statement.) Idle connections are
 *   closed after `idleTimeoutMillis` (30 s by default, far below MySQL's `wait_timeout`),
 *   and TCP keep-alive finds peers that vanished without closing. (A connection that dies
 *   between its ping and its statement fails that statement: nothing is retried);
 * - every query error (transactions included: knex forwards their `query-error` to this
 *   client) is stripped of its bound values in knex's `query-error` event, which runs before
 *   the caller's catch ({@link sanitizeMysqlError}).
 * @param conn server and credentials; `database` may be empty (server-level admin connection)
 * @param pool pool bounds (default `{ min: 0, max: 4 }`)
 * @param log where knex's own messages go (default: warnings and up to stderr, see {@link knexLogger})
 */
export function createMysqlKnex(conn: MysqlUrl, pool: PoolOptions = { min: 0, max: 4 }, log?: Logger): Knex {
  const knex = knexFactory({
    client: PooledClient as unknown as string,
    log: knexLogger(log),
    // Knex would copy the statement with its bound values into err.message (passwords of
    // CREATE/ALTER USER, hashes, personal data): keep the `?` placeholders instead.
    compileSqlOnError: false,
    connection: mysqlConnectionOptions(conn),
    pool: {
      min: pool.min ?? 0,
      max: pool.max,
      idleTimeoutMillis: pool.idleTimeoutMillis ?? 30_000,
      acquireTimeoutMillis: pool.acquireTimeoutMillis ?? 15_000,
      propagateCreateError: true,
      afterCreate: (raw: RawConnection, done: (err: Error | null, c: unknown) => void) => {
        raw.query(UTC_SESSION_SQL, (err) => {
          idleSince.set(raw, Date.now());
          done(err, raw);
        });
      },
      // A connection killed while idle still looks alive until its close is read (see
      // stillOpen). A failed check makes tarn destroy it and lend (or open) another one.
      validate: (raw: RawConnection) => stillOpen(raw, idleSince.get(raw)),
    },
    acquireConnectionTimeout: pool.acquireTimeoutMillis ?? 15_000,
  });
  // mysql2 puts the statement with its values inlined into `err.sql`, and the server quotes
  // values in its messages: clean the error before it reaches the caller.
  knex.on('query-error', (err: unknown, obj: { sql?: string } | undefined) => sanitizeMysqlError(err, obj?.sql));
  return knex;
}

/** True for errors that show a connection was gone (closed, reset, killed): not timeouts or refused connects. */
export function isLostConnection(err: unknown): boolean {
  const e = err as { code?: unknown; fatal?: unknown; message?: unknown } | null;
  if (typeof e?.code === 'string' && /^(PROTOCOL_CONNECTION_LOST|ECONNRESET|EPIPE|ER_CONNECTION_KILLED|ER_SERVER_SHUTDOWN)$/.test(e.code)) return true;
  const errno = mysqlErrno(err);
  if (errno === 1053 || errno === 1927 || errno === 2006 || errno === 2013) return true;
  return e?.fatal === true && typeof e.message === 'string' && e.message.includes('closed state');
}

/** MySQL error numbers Silo reacts to (MySQL 8.4 Server Error Message Reference). */
export const MysqlErrno = {
  DUP_ENTRY: 1062,
  NO_SUCH_TABLE: 1146,
  BAD_DB: 1049,
  DB_CREATE_EXISTS: 1007,
  ACCESS_DENIED: 1045,
  DBACCESS_DENIED: 1044,
  TABLEACCESS_DENIED: 1142,
  CANNOT_USER: 1396,
  /** ER_NO_REFERENCED_ROW_2: a foreign key names a parent row that does not exist. */
  NO_REFERENCED_ROW: 1452,
  /** ER_LOCK_DEADLOCK: InnoDB rolled the transaction back as a deadlock's victim. */
  LOCK_DEADLOCK: 1213,
  /** MariaDB's ER_ACCOUNT_HAS_BEEN_LOCKED (login to an `ACCOUNT LOCK`ed account). */
  ACCOUNT_LOCKED: 4151,
  /** MySQL's ER_ACCOUNT_HAS_BEEN_LOCKED. */
  MYSQL_ACCOUNT_LOCKED: 3118,
} as const;

/** The MySQL errno of an error thrown by mysql2, if any. */
export function mysqlErrno(err: unknown): number | undefined {
  const n = (err as { errno?: unknown } | null)?.errno;
  return typeof n === 'number' ? n : undefined;
}

/**
 * True for errors that mean "the server cannot be reached or the connection died".
 * Includes mysql2's fatal "closed state" errors: a transaction whose connection died
 * (server shutdown, KILL) is rejected by knex with the error of its ROLLBACK on the dead
 * connection ("ROLLBACK - Can't add new command when connection is in closed state"),
 * which has no code.
 */
export function isConnectionError(err: unknown): boolean {
  if (isLostConnection(err)) return true;
  const code = (err as { code?: unknown } | null)?.code;
  if (
    typeof code === 'string' &&
    /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENOTFOUND|PROTOCOL_CONNECTION_LOST|PROTOCOL_SEQUENCE_TIMEOUT|ER_CON_COUNT_ERROR|ER_SERVER_SHUTDOWN|ER_CONNECTION_KILLED|ER_QUERY_INTERRUPTED)$/.test(
      code,
    )
  ) {
    return true;
  }
  const name = (err as { name?: unknown } | null)?.name;
  if (name === 'KnexTimeoutError') return true;
  const errno = mysqlErrno(err);
  return errno === 1053 || errno === 1927 || errno === 2006 || errno === 2013 || errno === 1040;
}
