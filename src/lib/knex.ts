/**
 * Knex factory for MySQL/MariaDB through mysql2. Every connection runs in UTC
 * (`time_zone = '+00:00'`) and utf8mb4, so DATETIME(3) columns hold UTC with ms.
 */
import knexPkg, { type Knex } from 'knex';
import type { MysqlUrl } from '../config.js';

const knexFactory = knexPkg as unknown as (config: Knex.Config) => Knex;

/** Pool sizes, in connections. `idleTimeoutMillis` in ms. */
export interface PoolOptions {
  min?: number;
  max: number;
  idleTimeoutMillis?: number;
  acquireTimeoutMillis?: number;
}

/**
 * Builds a Knex over mysql2.
 * @param conn server and credentials; `database` may be empty (server-level admin connection)
 * @param pool pool bounds (default `{ min: 0, max: 4 }`)
 */
export function createMysqlKnex(conn: MysqlUrl, pool: PoolOptions = { min: 0, max: 4 }): Knex {
  return knexFactory({
    client: 'mysql2',
    connection: {
      host: conn.host,
      port: conn.port,
      user: conn.user,
      password: conn.password,
      ...(conn.database ? { database: conn.database } : {}),
      charset: 'utf8mb4',
      timezone: 'Z',
      dateStrings: false,
      supportBigNumbers: true,
      bigNumberStrings: false,
      decimalNumbers: false,
      connectTimeout: 10_000,
    },
    pool: {
      min: pool.min ?? 0,
      max: pool.max,
      idleTimeoutMillis: pool.idleTimeoutMillis ?? 30_000,
      acquireTimeoutMillis: pool.acquireTimeoutMillis ?? 15_000,
      propagateCreateError: true,
      afterCreate: (raw: { query: (sql: string, cb: (err: Error | null) => void) => void }, done: (err: Error | null, c: unknown) => void) => {
        raw.query("SET time_zone = '+00:00'", (err) => done(err, raw));
      },
    },
    acquireConnectionTimeout: pool.acquireTimeoutMillis ?? 15_000,
  });
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
} as const;

/** The MySQL errno of an error thrown by mysql2, if any. */
export function mysqlErrno(err: unknown): number | undefined {
  const n = (err as { errno?: unknown } | null)?.errno;
  return typeof n === 'number' ? n : undefined;
}

/** True for errors that mean "the server cannot be reached or the connection died". */
export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENOTFOUND|PROTOCOL_CONNECTION_LOST|PROTOCOL_SEQUENCE_TIMEOUT|ER_CON_COUNT_ERROR|ER_SERVER_SHUTDOWN|ER_CONNECTION_KILLED|ER_QUERY_INTERRUPTED)$/.test(code)) {
    return true;
  }
  const name = (err as { name?: unknown } | null)?.name;
  if (name === 'KnexTimeoutError') return true;
  const errno = mysqlErrno(err);
  return errno === 1053 || errno === 1927 || errno === 2006 || errno === 2013 || errno === 1040;
}
