/**
 * Tenant database connections: one process-wide set of at most `pool.maxConnections`
 * (`SILO_POOL_MAX_CONNECTIONS`) mysql2 connections shared by every tenant, each
 * authenticated as one tenant's own MySQL account (DML only), and reused for another
 * tenant by re-authenticating it with COM_CHANGE_USER as that tenant's account (as
 * ProxySQL multiplexes users). The account, not the socket, is the isolation boundary:
 * - every connection is tagged with the account it is authenticated as
 *   (`<server>/<database>/<user>`), and is lent only to a query of that account;
 * - a connection is re-tagged only after the server accepted the change to the new
 *   account (which also resets the session: variables, temporary tables, prepared
 *   statements, default database); a failed change destroys it, it is never lent;
 * - a connection is lent for one query, or one transaction for its whole length, then
 *   comes back (a lease, see {@link Lease}, holds no connection).
 *
 * A query of tenant T gets, in this order: the most recently used idle connection of T's
 * account; else a new connection while fewer than the budget are open (opening or open);
 * else the coldest idle connection of another account on the same server, changed to T's
 * account (see {@link TenantConnections.coldestIdle}: the account with the fewest recent
 * queries per idle connection, the least recently used first among equals); else it
 * waits, in FIFO order with every other waiting query, at most `pool.acquireTimeoutMs`,
 * then fails with 503 `POOL_EXHAUSTED`. A tenant uses at most `pool.maxPerTenant`
 * connections at once (its further queries wait). Every connection
 * that comes back goes to the first waiter that can use it (same account as is, another
 * account of the same server by a change), every closed one lets the first waiter that
 * may open one do so. So the open tenant connections never pass the budget (the peak is
 * kept, {@link PoolStats.peakConnections}), and no idle connection sits unused while a
 * query waits.
 *
 * The session time zone: when the server's default time zone is UTC (read once per server)
 * no `SET time_zone` is sent; otherwise it is sent once per new connection and after each
 * change (COM_CHANGE_USER resets it). mysql2 empties its prepared-statement cache on a
 * change (the server dropped them), so `execute()` never uses a stale statement id.
 */
import mysql from 'mysql2';
import type { Knex } from 'knex';
import { LRUCache } from 'lru-cache';
import type { Catalog, DatabaseServer, Tenant } from '../catalog/index.js';
import { createTenantCredentialsRepository } from '../catalog/tenant-credentials.js';
import type { Config } from '../config.js';
import { createSourcedKnex, isUtcTimeZone, mysql2Alive as alive, mysqlConnectionOptions, stillOpen, UTC_SESSION_SQL } from '../lib/knex.js';
import { decryptSecret } from '../lib/secrets.js';
import { poolExhaustedError } from './pool-exhausted.js';
import { retryRefusedLogins, type RotatableAccount } from './refused-logins.js';

/** A borrowed tenant Knex; call `release()` when the request is done (later calls do nothing). */
export interface Lease {
  knex: Knex;
  release(): void;
}

/** Counters and gauges for `/metrics`. Connections are counted from the start of their opening to their end. */
export interface PoolStats {
  /** Tenant accounts with at least one open connection. */
  openPools: number;
  openConnections: number;
  /** Most connections open at once since start (never above `pool.maxConnections`). */
  peakConnections: number;
  /** Leases lent and not released yet. */
  heldLeases: number;
  idleConnections: number;
  /** Queries waiting for a connection. */
  pendingAcquires: number;
  /** Idle connections of one tenant re-authenticated (COM_CHANGE_USER) for another. */
  evictions: number;
  /** Changes the server refused (the connection was destroyed, never lent). */
  failedChanges: number;
  /** Queries that had to wait for a connection. */
  waitsForPool: number;
  /** Requests turned away with `POOL_EXHAUSTED`: every `connection` wait that timed out (`pool` is kept at 0 for the metric's labels). */
  exhausted: { pool: number; connection: number };
}

/** Options of {@link TenantConnections.acquire}. */
export interface AcquireOptions {
  /** Already aborted (the client is gone): no lease, rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** A tenant's account as this process knows it: where it logs in and with which password. */
interface Account extends RotatableAccount {
  serverId: number;
  host: string;
  port: number;
  user: string;
  database: string;
  /** Connections of this account lent now. */
  busy: number;
  /** Idle connections of this account, most recently used last. */
  idle: Conn[];
  /** Bumped by {@link TenantConnections.drop}: connections of an older generation are closed when they come back. */
  generation: number;
  /** Its queries, each weighing 1 when it starts and half as much every {@link HEAT_HALF_LIFE_MS}, as of {@link heatAt}. */
  heat: number;
  /** When {@link heat} was last brought up to date, ms since the epoch. */
  heatAt: number;
  knex?: Knex;
}

/** One open (or opening) connection. */
interface Conn {
  raw: mysql.Connection;
  serverId: number;
  /** The account it is authenticated as: the only one it is lent to. */
  account: Account;
  generation: number;
  idleSince: number;
  dead: boolean;
}

/** A query waiting for a connection. */
interface Waiter {
  account: Account;
  resolve(conn: Conn | 'open'): void;
}

/** Per-tenant accounts kept in memory (their Knex and decrypted password); the connections are not bounded by it. */
const ACCOUNTS_KEPT = 2_000;
/**
 * Half-life of an account's query count in choosing which idle connection to change to
 * another account, ms. Under a skewed load (a few tenants send most queries: Zipf) keeping
 * the connections of the tenants that query most saves most changes: in a simulation of
 * Zipf (s = 1) over 10,000 tenants with 100 connections, 53% of the queries found an own
 * idle connection when the least frequently used one is changed, against 39% for the least
 * recently used (69% against 58% over 1,000 tenants). One second: a tenant's heat is then
 * about its queries per second x 1.44, so the hot tenants are told apart by their rate, the
 * cold ones (under a query a second) by how recently they queried (as LRU); and a tenant
 * that stops (a burst ends) gives its connections up within seconds. With 10 s, a tenant
 * that had sent 9,000 queries/s kept its 10 idle connections for over a minute after it
 * stopped. Measured in the routing benchmark (50 requests at a time over 100 connections):
 * 0.49 changes per request with Zipf over 1,000 tenants and 0.61 over 10,000, where the
 * same simulation with 50 connections busy at a time gives 0.64 and 0.76 for LRU.
 */
const HEAT_HALF_LIFE_MS = 1_000;
/** How long a database server's address is kept before it is read from the catalog again, ms. */
const SERVER_TTL_MS = 60_000;

/** The tenant connection manager (one per API process). */
export class TenantConnections {
  /** Accounts by tenant id, least recently used first out. An evicted account's connections stay usable by change. */
  private readonly accounts: LRUCache<number, Account>;
  /**
   * Accounts pushed out of {@link accounts} (by the LRU or a replacement) while some of their
   * connections were still lent or open, by target: a later query of the same target gets
   * the same object back, so its lent connections keep counting against `pool.maxPerTenant`.
   */
  private readonly retired = new Map<string, Account>();
  /** Idle connections by server, least recently used first (Set insertion order). */
  private readonly idleByServer = new Map<number, Set<Conn>>();
  private readonly waiters: Waiter[] = [];
  /** Whether sessions of a server need `SET time_zone` (read once per server). */
  private readonly needsUtcSet = new Map<number, boolean>();
  private readonly servers = new Map<number, { at: number; server: Promise<DatabaseServer> }>();
  private open = 0;
  private peak = 0;
  private held = 0;
  private evictions = 0;
  private failedChanges = 0;
  private waits = 0;
  private exhausted = 0;
  private closed = false;
  private readonly sweeper: NodeJS.Timeout;
  private readonly credentials;

  constructor(
    private readonly catalog: Catalog,
    private readonly config: Pick<Config, 'pool' | 'secrets'>,
  ) {
    this.credentials = createTenantCredentialsRepository(catalog.knex);
    this.accounts = new LRUCache({
      max: ACCOUNTS_KEPT,
      dispose: (account) => {
        if (account.busy > 0 || account.idle.length > 0) this.retired.set(account.target, account);
      },
    });
    this.sweeper = setInterval(() => this.closeIdle(), Math.min(this.config.pool.idleMs, 5_000));
    this.sweeper.unref();
  }

  /**
   * Lends the tenant's Knex: its queries and transactions borrow connections of the
   * tenant's own account (see the module comment); nothing is held between them.
   * @throws Error after {@link close}; the signal's reason when `opts.signal` is already aborted
   */
  async acquire(tenant: Tenant, opts: AcquireOptions = {}): Promise<Lease> {
    if (this.closed) throw new Error('tenant connections are closed');
    if (opts.signal?.aborted) throw opts.signal.reason instanceof Error ? opts.signal.reason : new Error('aborted');
    const account = await this.account(tenant);
    account.knex ??= createSourcedKnex({ acquire: () => this.take(account), release: (raw) => this.giveBack(account, raw) });
    this.held++;
    let released = false;
    return {
      knex: account.knex,
      release: () => {
        if (released) return;
        released = true;
        this.held--;
      },
    };
  }

  /** The tenant's account, built (or updated after a rotation) from its catalog row. */
  private async account(tenant: Tenant): Promise<Account> {
    const target = `${tenant.databaseServerId}/${tenant.databaseName}/${tenant.dbUser}`;
    const key = `${target}/${tenant.dbPasswordEnc}`;
    const known = this.accounts.get(tenant.id);
    if (known?.target === target) {
      // A new password (rotation) unless it is one this account moved past (a stale cached row).
      if (known.key !== key && !known.superseded.has(key)) {
        known.superseded.add(known.key);
        known.key = key;
        known.password = decryptSecret(tenant.dbPasswordEnc, this.config.secrets);
      }
      return known;
    }
    const retired = this.retired.get(target);
    if (retired) {
      this.retired.delete(target);
      this.accounts.set(tenant.id, retired);
      return this.account(tenant);
    }
    const server = await this.server(tenant.databaseServerId);
    const again = this.accounts.get(tenant.id);
    if (again?.target === target) return again;
    const account: Account = {
      tenantId: tenant.id,
      target,
      key,
      superseded: new Set(),
      password: decryptSecret(tenant.dbPasswordEnc, this.config.secrets),
      serverId: tenant.databaseServerId,
      host: server.host,
      port: server.port,
      user: tenant.dbUser,
      database: tenant.databaseName,
      busy: 0,
      idle: [],
      generation: 0,
      heat: 0,
      heatAt: Date.now(),
    };
    // Connections of a replaced account (moved to another server or user) keep their tag: they are changed or closed as any other.
    this.accounts.set(tenant.id, account);
    return account;
  }

  private server(id: number): Promise<DatabaseServer> {
    const known = this.servers.get(id);
    if (known && Date.now() - known.at < SERVER_TTL_MS) return known.server;
    const server = this.catalog.servers.get(id);
    this.servers.set(id, { at: Date.now(), server });
    server.catch(() => this.servers.delete(id));
    return server;
  }

  /** A connection of `account` for one query or transaction (see the module comment for the order). */
  private async take(account: Account): Promise<mysql.Connection> {
    const now = Date.now();
    account.heat = heatOf(account, now) + 1;
    account.heatAt = now;
    const deadline = now + this.config.pool.acquireTimeoutMs;
    let waited = false;
    for (;;) {
      if (this.closed) throw new Error('tenant connections are closed');
      let got: Conn | 'open' | undefined = this.takeNow(account);
      if (got === undefined) {
        if (!waited) this.waits++;
        waited = true;
        got = await this.wait(account, deadline);
      }
      try {
        const conn = got === 'open' ? await this.connect(account) : await this.prepare(got, account);
        if (conn) return conn.raw;
      } catch (err) {
        this.countDown(account);
        this.handOn();
        throw err;
      }
      // The idle connection was dead (failed its ping): its slot went back (and its count), try again.
    }
  }

  /** What `account` can have at once: an idle connection (its own, or another's to change), `open` (a slot reserved), or nothing. Counts it busy. */
  private takeNow(account: Account): Conn | 'open' | undefined {
    if (account.busy >= this.config.pool.maxPerTenant) return undefined;
    const own = account.idle.pop();
    if (own) {
      this.idleByServer.get(own.serverId)?.delete(own);
      account.busy++;
      return own;
    }
    if (this.open < this.config.pool.maxConnections) {
      this.reserveSlot();
      account.busy++;
      return 'open';
    }
    const coldest = this.coldestIdle(account.serverId);
    if (coldest) {
      this.holdForChange(coldest, account);
      this.unidle(coldest);
      account.busy++;
      return coldest;
    }
    // Idle connections only on other servers: close the oldest, its slot goes to the first waiter.
    const elsewhere = this.idleByServer.values().next().value?.values().next().value;
    if (elsewhere) this.destroy(elsewhere);
    return undefined;
  }

  /**
   * The idle connection of a server whose loss costs least: the one of the account with the
   * lowest {@link Account.heat} per idle connection it has (an account's second idle
   * connection is worth half its first), the least recently used first among equals. One
   * pass over the server's idle connections (at most the budget).
   */
  private coldestIdle(serverId: number): Conn | undefined {
    const set = this.idleByServer.get(serverId);
    if (!set) return undefined;
    const now = Date.now();
    let best: Conn | undefined;
    let bestValue = Infinity;
    for (const conn of set) {
      const value = heatOf(conn.account, now) / Math.max(1, conn.account.idle.length);
      if (value < bestValue) {
        best = conn;
        bestValue = value;
      }
    }
    return best;
  }

  private reserveSlot(): void {
    this.open++;
    this.peak = Math.max(this.peak, this.open);
  }

  /** Waits in FIFO order until a connection or a slot is handed over (counted busy for `account`), or the deadline: then `POOL_EXHAUSTED`. */
  private wait(account: Account, deadline: number): Promise<Conn | 'open'> {
    return new Promise<Conn | 'open'>((resolve, reject) => {
      const waiter: Waiter = {
        account,
        resolve: (got) => {
          clearTimeout(timer);
          resolve(got);
        },
      };
      const timer = setTimeout(
        () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          this.exhausted++;
          reject(poolExhaustedError('connection'));
        },
        Math.max(0, deadline - Date.now()),
      );
      this.waiters.push(waiter);
    });
  }

  /**
   * Makes a handed idle connection ready for `account`: as is if it is its own (after a
   * COM_PING), else changed to `account` (destroyed if the change fails, and a
   * new connection opened in its slot). Undefined when its own idle connection was dead.
   */
  private async prepare(conn: Conn, account: Account): Promise<Conn | undefined> {
    if (conn.account === account || conn.account.target === account.target) {
      conn.account = account;
      // One killed while idle may not have shown its close yet (see stillOpen in lib/knex.ts).
      if ((await stillOpen(conn.raw, conn.idleSince)) && !conn.dead) return conn;
      conn.dead = true;
      // Counted against the tenant's limit until it is gone (the caller does not count it down).
      this.destroy(conn, () => this.countDown(account));
      return undefined;
    }
    this.evictions++;
    const from = conn.account;
    try {
      await retryRefusedLogins(account, this.credentials, this.config.secrets, (password) =>
        changeUser(conn.raw, { user: account.user, password, database: account.database }),
      );
      await this.inUtc(conn.raw, account.serverId);
    } catch (err) {
      // Never lent after a failed change: the session may be half switched.
      this.failedChanges++;
      conn.dead = true;
      conn.raw.destroy();
      this.open--;
      this.countDown(from);
      this.handOn();
      throw err;
    }
    conn.account = account;
    conn.generation = account.generation;
    this.countDown(from);
    return conn;
  }

  /** Opens a connection as `account` in a slot already reserved (given back if the opening fails). */
  private async connect(account: Account): Promise<Conn> {
    let raw: mysql.Connection;
    try {
      raw = await retryRefusedLogins(account, this.credentials, this.config.secrets, (password) =>
        openConnection({ host: account.host, port: account.port, user: account.user, password, database: account.database }),
      );
      await this.inUtc(raw, account.serverId);
    } catch (err) {
      this.open--;
      this.handOn();
      throw err;
    }
    const conn: Conn = { raw, serverId: account.serverId, account, generation: account.generation, idleSince: Date.now(), dead: false };
    (raw as unknown as { siloConn?: Conn }).siloConn = conn;
    // A connection that dies (KILL, server restart, network) leaves the idle lists at once; a lent one fails its query.
    const die = () => {
      if (conn.dead) return;
      conn.dead = true;
      if (this.unidle(conn)) {
        this.open--;
        this.handOn();
      }
    };
    raw.on('error', die);
    raw.on('end', die);
    if (this.closed) {
      this.countDown(account);
      this.destroy(conn);
      throw new Error('tenant connections are closed');
    }
    return conn;
  }

  /** Sends `SET time_zone` when the server's sessions do not start in UTC (read once per server, on its first connection). */
  private async inUtc(raw: mysql.Connection, serverId: number): Promise<void> {
    let needed = this.needsUtcSet.get(serverId);
    if (needed === undefined) {
      const rows = await query<Array<{ g: string; s: string }>>(raw, 'SELECT @@global.time_zone AS g, @@system_time_zone AS s');
      needed = !isUtcTimeZone(rows[0]?.g, rows[0]?.s);
      this.needsUtcSet.set(serverId, needed);
    }
    // A new session and one reset by COM_CHANGE_USER both start in the server's default zone.
    if (needed) await query(raw, UTC_SESSION_SQL);
  }

  /** A connection comes back from its query or transaction. */
  private giveBack(account: Account, raw: unknown): void {
    const conn = (raw as { siloConn?: Conn }).siloConn;
    if (!conn) {
      this.countDown(account);
      return;
    }
    if (conn.dead || this.closed || conn.generation !== conn.account.generation || !alive(conn.raw)) {
      // Counted against the tenant's limit until the server closed it (as against the budget).
      this.destroy(conn, () => this.countDown(account));
      return;
    }
    // Counted down without forgetting a retired account yet: a change below holds it again.
    account.busy--;
    conn.idleSince = Date.now();
    // The first waiter that can use it: its own account as is, another account of its server by a change.
    const i = this.waiters.findIndex(
      (w) => w.account.busy < this.config.pool.maxPerTenant && (w.account.target === conn.account.target || w.account.serverId === conn.serverId),
    );
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      this.holdForChange(conn, w!.account);
      w!.account.busy++;
      w!.resolve(conn);
    } else {
      conn.account.idle.push(conn);
      let set = this.idleByServer.get(conn.serverId);
      if (!set) this.idleByServer.set(conn.serverId, (set = new Set()));
      set.add(conn);
    }
    this.forgetIfDone(account);
  }

  /**
   * A connection about to be changed to `to`'s account keeps counting against its current
   * account's `pool.maxPerTenant` until the change is done ({@link prepare} counts it down):
   * until then the server still shows the session as that account's.
   */
  private holdForChange(conn: Conn, to: Account): void {
    if (conn.account.target !== to.target) conn.account.busy++;
  }

  /** A slot came free (a connection closed) or a tenant went below its limit: the first waiter that can, takes what there is. */
  private handOn(): void {
    for (let i = 0; i < this.waiters.length; i++) {
      const w = this.waiters[i]!;
      const got = this.takeNow(w.account);
      if (got === undefined) {
        if (this.open >= this.config.pool.maxConnections && this.idleByServer.size === 0) return;
        continue;
      }
      this.waiters.splice(i, 1);
      w.resolve(got);
      return;
    }
  }

  /** Takes a connection out of the idle lists; true if it was idle. */
  private unidle(conn: Conn): boolean {
    const set = this.idleByServer.get(conn.serverId);
    if (!set?.delete(conn)) return false;
    if (set.size === 0) this.idleByServer.delete(conn.serverId);
    const list = conn.account.idle;
    const i = list.indexOf(conn);
    if (i >= 0) list.splice(i, 1);
    this.forgetIfDone(conn.account);
    return true;
  }

  /** One connection of `account` is no longer lent (nor closing). */
  private countDown(account: Account): void {
    account.busy--;
    this.forgetIfDone(account);
  }

  /** A retired account with nothing lent, closing or idle is forgotten. */
  private forgetIfDone(account: Account): void {
    if (account.busy === 0 && account.idle.length === 0 && this.retired.get(account.target) === account) this.retired.delete(account.target);
  }

  /**
   * Closes a connection (COM_QUIT); its slot counts until the server closed it, and so does an
   * idle one against its account's `pool.maxPerTenant` (a lent one's caller passes `closed`
   * to count it down then).
   */
  private destroy(conn: Conn, closed?: () => void): void {
    const owner = conn.account;
    const wasIdle = this.idleByServer.get(conn.serverId)?.has(conn) ?? false;
    // Counted first: taking it out of the idle lists must not make a retired account look done.
    if (wasIdle) owner.busy++;
    this.unidle(conn);
    const wasDead = conn.dead;
    conn.dead = true;
    let counted = false;
    // A socket that broke may never answer COM_QUIT: then it is cut after a while.
    const timer = wasDead ? undefined : setTimeout(() => done(), 2_000);
    const done = () => {
      if (counted) return;
      counted = true;
      clearTimeout(timer);
      conn.raw.destroy();
      this.open--;
      if (wasIdle) this.countDown(owner);
      closed?.();
      this.handOn();
    };
    if (wasDead) return done();
    conn.raw.end(done);
  }

  /** Closes the connections idle longer than `pool.idleMs`. */
  private closeIdle(): void {
    const before = Date.now() - this.config.pool.idleMs;
    for (const set of [...this.idleByServer.values()]) {
      for (const conn of [...set]) {
        if (conn.idleSince > before) break;
        this.destroy(conn);
      }
    }
  }

  /**
   * Closes a tenant's connections (suspend, delete): the idle ones at once, the lent ones
   * when their query or transaction ends (until then they still count against the budget).
   * Resolves once the idle ones are closing.
   */
  async drop(tenantId: number): Promise<void> {
    const account = this.accounts.get(tenantId);
    if (!account) return;
    this.accounts.delete(tenantId);
    account.generation++;
    // Idle connections of that account under an older Account object (evicted from the LRU) are closed by the sweeper or reused by change.
    for (const conn of [...account.idle]) this.destroy(conn);
    await Promise.resolve();
  }

  /** Current figures. */
  stats(): PoolStats {
    let idle = 0;
    const accounts = new Set<string>();
    for (const set of this.idleByServer.values()) {
      idle += set.size;
      for (const c of set) accounts.add(c.account.target);
    }
    for (const a of this.accounts.values()) if (a.busy > 0) accounts.add(a.target);
    for (const a of this.retired.values()) if (a.busy > 0) accounts.add(a.target);
    return {
      openPools: accounts.size,
      openConnections: this.open,
      peakConnections: this.peak,
      heldLeases: this.held,
      idleConnections: idle,
      pendingAcquires: this.waiters.length,
      evictions: this.evictions,
      failedChanges: this.failedChanges,
      waitsForPool: this.waits,
      exhausted: { pool: 0, connection: this.exhausted },
    };
  }

  /** Closes every connection (graceful shutdown, after in-flight requests finished); waiting and later queries fail. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const set of [...this.idleByServer.values()]) for (const conn of [...set]) this.destroy(conn);
    const until = Date.now() + 5_000;
    while (this.open > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  }
}

/** An account's {@link Account.heat} as of `now`. */
function heatOf(account: Account, now: number): number {
  return account.heat * Math.pow(0.5, (now - account.heatAt) / HEAT_HALF_LIFE_MS);
}

/** Opens a mysql2 connection (Silo's options: {@link mysqlConnectionOptions}). */
function openConnection(conn: { host: string; port: number; user: string; password: string; database: string }): Promise<mysql.Connection> {
  return new Promise((resolve, reject) => {
    const raw = mysql.createConnection(mysqlConnectionOptions(conn));
    raw.once('error', () => undefined);
    raw.connect((err) => {
      if (err) {
        raw.destroy();
        reject(err);
      } else resolve(raw);
    });
  });
}

function changeUser(raw: mysql.Connection, to: { user: string; password: string; database: string }): Promise<void> {
  return new Promise((resolve, reject) => raw.changeUser(to, (err) => (err ? reject(err) : resolve())));
}

function query<T = unknown>(raw: mysql.Connection, sql: string): Promise<T> {
  return new Promise((resolve, reject) => raw.query(sql, (err, rows) => (err ? reject(err) : resolve(rows as T))));
}
