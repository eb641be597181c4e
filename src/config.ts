/**
 * Silo configuration: the only module that reads `process.env`.
 *
 * Values come from the environment and, when present, a `.env` file in the working
 * directory (the environment wins). Every value is validated with zod; a missing or
 * malformed value raises {@link ConfigError} whose message is one line naming the
 * variable.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import { z } from 'zod';
import { createKeyring, type SecretKeyring } from './lib/secrets.js';

/**
 * Development-only key, published in the repository: used when `SILO_SECRET_KEY` is unset
 * and `NODE_ENV=development` is set explicitly (the demo sets it), never otherwise.
 */
export const DEV_SECRET_KEY = 'ZGV2LW9ubHktc2lsby1zZWNyZXQta2V5LTMyYnl0ZXM='; // "dev-only-silo-secret-key-32bytes"

/** Development-only JWT secret, used by the demo (`npm run demo`) when `SILO_JWT_SECRET` is unset. */
export const DEV_JWT_SECRET = 'dev-only-silo-jwt-secret-change-me-0123456789';

/** Thrown when the environment does not describe a valid configuration. One line, names the variable. */
export class ConfigError extends Error {
  /** @param variable the environment variable at fault, e.g. `SILO_SECRET_KEY` */
  constructor(
    readonly variable: string,
    reason: string,
  ) {
    super(`invalid configuration: ${variable}: ${reason}`);
    this.name = 'ConfigError';
  }
}

/** A MySQL connection as parsed from a `mysql://user:password@host:port/database` URL. */
export interface MysqlUrl {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Empty string when the URL names no database. */
  database: string;
}

/** Parses `mysql://user:password@host:port/database`; the database part is optional. */
export function parseMysqlUrl(value: string): MysqlUrl {
  const url = new URL(value);
  if (url.protocol !== 'mysql:' && url.protocol !== 'mariadb:') {
    throw new Error(`expected a mysql:// URL, got ${url.protocol}`);
  }
  return {
    host: url.hostname || '127.0.0.1',
    port: url.port ? Number(url.port) : 3306,
    user: decodeURIComponent(url.username || 'root'),
    password: decodeURIComponent(url.password),
    database: decodeURIComponent(url.pathname.replace(/^\//, '')),
  };
}

const mysqlUrl = z.string().transform((value, ctx) => {
  try {
    return parseMysqlUrl(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `not a mysql:// URL (${(err as Error).message})` });
    return z.NEVER;
  }
});

const bool = z.enum(['1', '0', 'true', 'false', 'yes', 'no', '']).transform((v) => v === '1' || v === 'true' || v === 'yes');

const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max).default(def);

const base64Key = z.string().transform((value, ctx) => {
  const key = Buffer.from(value, 'base64');
  if (key.length !== 32) {
    ctx.addIssue({ code: 'custom', message: `must be 32 bytes encoded in base64 (got ${key.length} bytes); make one with: openssl rand -base64 32` });
    return z.NEVER;
  }
  return key;
});

/**
 * `SILO_TRUST_PROXY`: which `X-Forwarded-For` hops are believed, in the forms Fastify's
 * `trustProxy` takes (fastify docs "Server#trustProxy", after proxy-addr): off (`0`, `false`,
 * `no`), a hop count (`1` = the one proxy in front of the API), or a comma-separated list
 * of proxy addresses and CIDR blocks (`10.0.0.0/8,127.0.0.1`). "Trust every hop" is not
 * offered: with it a client picks its own address by sending the left-most value.
 */
const trustProxy = z.string().transform((value, ctx): false | number | string[] => {
  const v = value.trim().toLowerCase();
  if (v === '0' || v === 'false' || v === 'no' || v === '') return false;
  if (/^[0-9]{1,3}$/.test(v)) return Number(v);
  const items = v
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  const bad = items.find((x) => {
    const [addr, bits, ...rest] = x.split('/');
    const family = isIP(addr ?? '');
    if (family === 0 || rest.length > 0) return true;
    if (bits === undefined) return false;
    const n = Number(bits);
    return !/^[0-9]{1,3}$/.test(bits) || n > (family === 4 ? 32 : 128);
  });
  if (items.length === 0 || bad !== undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `must be 0, a hop count such as 1, or proxy addresses/CIDRs such as 10.0.0.0/8,127.0.0.1 (not ${JSON.stringify(bad ?? value)})`,
    });
    return z.NEVER;
  }
  return items;
});

const faultSpec = z
  .string()
  .regex(/^[a-z-]+:[a-z-]+$/, 'must look like <operation>:<step>, e.g. create:database')
  .optional();

/** The environment schema. Keys are the variable names; see `.env.example` for each one's meaning. */
const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
  SILO_CATALOG_URL: mysqlUrl.default(parseMysqlUrl('mysql://root:@127.0.0.1:3306/silo_catalog')),
  SILO_TENANT_DB_URL: mysqlUrl.default(parseMysqlUrl('mysql://root:@127.0.0.1:3306')),
  SILO_TENANT_DB_PREFIX: z
    .string()
    .regex(/^[a-z][a-z0-9_]{0,15}$/, 'must match ^[a-z][a-z0-9_]{0,15}$ (lower case, at most 16 characters)')
    .default('tenant_'),
  SILO_TENANT_DB_USER_HOST: z
    .string()
    .regex(/^[A-Za-z0-9.%_:-]{1,255}$/, 'must be a MySQL host pattern such as % or 10.0.%')
    .default('%'),
  SILO_SECRET_KEY: base64Key.optional(),
  SILO_MIGRATION_LOCK_TIMEOUT_S: int(60, 0, 3600),
  SILO_TENANT_MIGRATIONS_EXTRA_DIR: z.string().min(1).optional(),
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: int(3000, 0, 65535),
  SILO_BASE_DOMAIN: z
    .string()
    .toLowerCase()
    .regex(/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/, 'must be a host name such as localhost or saas.example.com')
    .default('localhost'),
  SILO_TENANT_SOURCES: z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.enum(['subdomain', 'domain', 'header', 'query'])).min(1, 'name at least one of subdomain,domain,header,query'))
    .default(['subdomain', 'domain', 'header', 'query']),
  SILO_TENANT_CACHE_TTL_MS: int(30_000, 0, 3_600_000),
  SILO_TENANT_NEGATIVE_CACHE_TTL_MS: int(5_000, 0, 3_600_000),
  SILO_TENANT_CHANGE_POLL_MS: int(1_000, 0, 3_600_000),
  SILO_POOL_MAX_PER_TENANT: int(2, 1, 100),
  SILO_POOL_MAX_TENANTS: int(50, 1, 100_000),
  SILO_POOL_IDLE_MS: int(60_000, 1_000, 86_400_000),
  SILO_JWT_SECRET: z.string().min(32, 'must be at least 32 bytes').optional(),
  SILO_LOGIN_RATE_LIMIT: int(10, 1, 100_000),
  SILO_TRUST_PROXY: trustProxy.default(false),
  SILO_TENANT_DB_MAX_USER_CONNECTIONS: int(20, 1, 1_000_000),
  SILO_SECRET_KEY_PREVIOUS: base64Key.optional(),
  SILO_REFRESH_RATE_LIMIT: int(30, 1, 100_000),
  SILO_UNKNOWN_TENANT_RATE_LIMIT: int(30, 1, 1_000_000),
  SILO_TENANT_STATS_MAX_DAYS: int(31, 1, 3_660),
  SILO_TENANT_STATS_RATE_LIMIT: int(30, 1, 100_000),
  SILO_BODY_LIMIT_BYTES: int(1_048_576, 1024, 1_073_741_824),
  SILO_REQUEST_TIMEOUT_MS: int(30_000, 1_000, 600_000),
  SILO_HISTORY_ENABLED: bool.default(true),
  SILO_HISTORY_BATCH: int(500, 1, 10_000),
  SILO_HISTORY_FLUSH_MS: int(1_000, 10, 600_000),
  SILO_HISTORY_BUFFER_MAX: int(50_000, 1, 10_000_000),
  SILO_S3_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name (3-63 of a-z 0-9 . -)')
    .optional(),
  SILO_S3_REGION: z
    .string()
    .regex(/^[a-z0-9-]{1,40}$/, 'must be a region name such as us-east-1')
    .default('us-east-1'),
  SILO_S3_ENDPOINT: z.string().url('must be a URL such as http://127.0.0.1:9000').optional(),
  SILO_S3_FORCE_PATH_STYLE: bool.default(false),
  SILO_S3_PRESIGN_TTL_S: int(300, 1, 604_800),
  SILO_S3_TIMEOUT_MS: int(10_000, 100, 600_000),
  SILO_UPLOAD_MAX_BYTES: int(10 * 1024 * 1024, 1, 5 * 1024 * 1024 * 1024),
  SILO_UPLOAD_CONTENT_TYPES: z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((x) => x.trim().toLowerCase())
        .filter(Boolean),
    )
    .pipe(
      z
        .array(
          z
            .string()
            .regex(
              /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9*][a-z0-9!#$&^_.+*-]{0,126}$/,
              'must be a comma-separated list of media types such as image/png,application/pdf',
            ),
        )
        .min(1),
    )
    .optional(),
  SILO_MYSQLDUMP_PATH: z.string().min(1).optional(),
  SILO_MYSQL_CLIENT_PATH: z.string().min(1).optional(),
  SILO_ENABLE_FAULTS: bool.default(false),
  SILO_FAULT_KILL_AFTER: faultSpec,
  SILO_FAULT_FAIL_AFTER: faultSpec,
  SILO_FAULT_KILL_AFTER_STATEMENT: z
    .string()
    .regex(/^\d{4}-[a-z0-9-]+:\d+$/, 'must look like <migration>:<statement count>, e.g. 0005-create-pipeline-stages:1')
    .optional(),
});

/** Media types accepted for attachments when `SILO_UPLOAD_CONTENT_TYPES` is unset. */
export const DEFAULT_UPLOAD_CONTENT_TYPES: readonly string[] = [
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/webp',
  'application/pdf',
  'text/plain',
  'text/csv',
  'application/msword',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/vnd.ms-excel',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  'application/vnd.oasis.opendocument.text',
  'application/vnd.oasis.opendocument.spreadsheet',
];

/**
 * S3 settings. Credentials are never part of the configuration: the AWS SDK's default
 * provider chain finds them (environment `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`,
 * shared config files, instance or container roles).
 */
export interface S3Config {
  bucket: string;
  region: string;
  /** For S3-compatible stores (MinIO, s3rver); undefined means AWS. */
  endpoint: string | undefined;
  /** Path-style URLs (`endpoint/bucket/key`), needed by most S3-compatible stores. */
  forcePathStyle: boolean;
  /** Lifetime of pre-signed GET URLs, seconds (default 300: 5 minutes). */
  presignTtlS: number;
  /** Connection and per-request socket timeout, ms. */
  timeoutMs: number;
}

/** Names a step of an operation, e.g. `{ operation: 'create', step: 'database' }`. */
export interface FaultSpec {
  operation: string;
  step: string;
}

/** The validated configuration Silo runs with. Durations are in ms unless the name says otherwise. */
export interface Config {
  /** `NODE_ENV`; unset means `production` (the development key is never used then). */
  env: 'development' | 'production' | 'test';
  /** pino level; undefined means "the program's default" (info for the server, warn for the CLI). */
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  /** Catalog database connection; `database` is the catalog's name. */
  catalog: MysqlUrl;
  /** Admin connection of the default database server (no database). */
  tenantDb: MysqlUrl;
  /** Prefix of every tenant database and tenant MySQL user name, e.g. `tenant_`. */
  tenantDbPrefix: string;
  /** Host part of tenant MySQL accounts (`'user'@'host'`). */
  tenantDbUserHost: string;
  /**
   * Keys of secrets at rest (tenant DB passwords, server admin passwords): writes with
   * `SILO_SECRET_KEY`, reads with it or `SILO_SECRET_KEY_PREVIOUS`. Without a key (and
   * unless `NODE_ENV=development`), its methods throw a {@link ConfigError} naming
   * `SILO_SECRET_KEY` and `silo init`: commands that touch no secret still run.
   */
  secrets: SecretKeyring;
  /** Seconds a migration runner waits for another runner's per-tenant lock (MySQL `GET_LOCK` timeout). */
  migrationLockTimeoutS: number;
  /** Extra folder of tenant migrations merged with `migrations/tenant` (benchmarks, experiments). */
  tenantMigrationsExtraDir: string | undefined;
  /** HTTP listener. */
  host: string;
  port: number;
  /** Tenants are `<slug>.<baseDomain>`. */
  baseDomain: string;
  /** Tenant identification sources, in order. */
  tenantSources: Array<'subdomain' | 'domain' | 'header' | 'query'>;
  /** Tenant lookup cache TTL and negative (unknown name) cache TTL, ms (the latter only when `tenantChangePollMs` is 0). */
  tenantCacheTtlMs: number;
  tenantNegativeCacheTtlMs: number;
  /** How often the API looks for tenant changes made by other processes, ms (0: never). */
  tenantChangePollMs: number;
  /** Per-tenant pools: connections per tenant, pools kept, idle time before a connection closes (ms). */
  pool: { maxPerTenant: number; maxTenants: number; idleMs: number };
  /** JWT signing key (HS256); `silo serve` refuses to start without it. */
  jwtSecret: string | undefined;
  /** Login attempts per minute per tenant and IP. */
  loginRateLimit: number;
  /**
   * Which `X-Forwarded-For` hops to believe (passed to Fastify's `trustProxy`): `false`
   * (none: the socket's address is the client), a hop count, or proxy addresses/CIDRs.
   */
  trustProxy: false | number | string[];
  /** `MAX_USER_CONNECTIONS` of every tenant MySQL account (MySQL 8.4 §8.2.21 "Setting Account Resource Limits"). */
  tenantDbMaxUserConnections: number;
  /** The key secrets were encrypted with before the current one (`silo secrets rotate` reads with it). */
  secretKeyPrevious: Buffer | undefined;
  /** Token refreshes per minute per tenant and IP. */
  refreshRateLimit: number;
  /** Requests naming an unknown tenant per minute per IP before 429. */
  unknownTenantRateLimit: number;
  /** Tenant admins' history statistics: widest window (days) and requests per minute per tenant. */
  tenantStats: { maxDays: number; rateLimit: number };
  /** Largest accepted request body, bytes. */
  bodyLimitBytes: number;
  /** Requests taking longer are answered 503, ms. */
  requestTimeoutMs: number;
  /** Request history: on/off, rows per INSERT, flush interval (ms), buffer bound (rows). */
  history: { enabled: boolean; batchSize: number; flushMs: number; bufferMax: number };
  /** Object storage; undefined when `SILO_S3_BUCKET` is unset (backups and attachments are then unavailable). */
  s3: S3Config | undefined;
  /** Attachments: largest upload in bytes, and the accepted media types (lower case; `type/*` allowed). */
  upload: { maxBytes: number; contentTypes: readonly string[] };
  /** Dump and client programs for backups and restores (default: the first of mariadb-dump/mysqldump, mariadb/mysql on PATH). */
  mysqldumpPath: string | undefined;
  mysqlClientPath: string | undefined;
  /** Crash injection for tests: `{ operation, step }` after which the process SIGKILLs itself. */
  faultKillAfter: FaultSpec | undefined;
  /** Failure injection for tests: `{ operation, step }` after which the step throws. */
  faultFailAfter: FaultSpec | undefined;
  /** Crash injection for tests: SIGKILL once `up` of that migration has sent `statement` statements (0: right after it is recorded as started). */
  faultKillAfterStatement: { migration: string; statement: number } | undefined;
}

/**
 * The keyring of {@link Config.secrets}. The development key is used only when no key is
 * set and `NODE_ENV=development` was set explicitly; the published development key given
 * as `SILO_SECRET_KEY` outside development counts as no key.
 */
function secretKeyring(key: Buffer | undefined, previous: Buffer | undefined, nodeEnv: string | undefined): SecretKeyring {
  const dev = Buffer.from(DEV_SECRET_KEY, 'base64');
  const development = nodeEnv === 'development';
  if (key && (development || !key.equals(dev))) return createKeyring({ current: key, previous, isDevelopmentKey: key.equals(dev) });
  if (!key && development) return createKeyring({ current: dev, previous, isDevelopmentKey: true });
  const reason = key
    ? 'is the development key published in the repository; run `silo init` to write a fresh key to .env (the development key is accepted only with NODE_ENV=development)'
    : 'not set; run `silo init` to write a fresh key to .env (or set NODE_ENV=development to use the published development key)';
  return createKeyring({ missing: () => new ConfigError('SILO_SECRET_KEY', reason) });
}

/** Reads the `.env` file in `cwd` if present; returns its variables (never overrides the environment). */
function readDotenv(cwd: string): Record<string, string> {
  const path = resolve(cwd, '.env');
  return existsSync(path) ? parseDotenv(readFileSync(path)) : {};
}

/**
 * Builds the {@link Config} from an environment.
 *
 * @param env variables to read (default: `.env` file merged under `process.env`)
 * @throws ConfigError naming the first invalid variable
 */
export function loadConfig(env?: Record<string, string | undefined>): Config {
  const source = env ?? { ...readDotenv(process.cwd()), ...process.env };
  // Empty strings mean "unset", as in most .env conventions.
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(String(issue.path[0] ?? 'environment'), issue.message);
  }
  const e = parsed.data;
  if (!e.SILO_CATALOG_URL.database) {
    throw new ConfigError('SILO_CATALOG_URL', 'must name the catalog database, e.g. mysql://root:@127.0.0.1:3306/silo_catalog');
  }
  if (!/^[A-Za-z0-9_]{1,64}$/.test(e.SILO_CATALOG_URL.database)) {
    throw new ConfigError('SILO_CATALOG_URL', 'catalog database name must match ^[A-Za-z0-9_]{1,64}$');
  }
  const secrets = secretKeyring(e.SILO_SECRET_KEY, e.SILO_SECRET_KEY_PREVIOUS, e.NODE_ENV);
  const fault = (spec: string | undefined): FaultSpec | undefined => {
    if (!e.SILO_ENABLE_FAULTS || !spec) return undefined;
    const [operation, step] = spec.split(':') as [string, string];
    return { operation, step };
  };
  return {
    env: e.NODE_ENV ?? 'production',
    logLevel: e.LOG_LEVEL,
    catalog: e.SILO_CATALOG_URL,
    tenantDb: e.SILO_TENANT_DB_URL,
    tenantDbPrefix: e.SILO_TENANT_DB_PREFIX,
    tenantDbUserHost: e.SILO_TENANT_DB_USER_HOST,
    secrets,
    migrationLockTimeoutS: e.SILO_MIGRATION_LOCK_TIMEOUT_S,
    tenantMigrationsExtraDir: e.SILO_TENANT_MIGRATIONS_EXTRA_DIR,
    host: e.HOST,
    port: e.PORT,
    baseDomain: e.SILO_BASE_DOMAIN,
    tenantSources: e.SILO_TENANT_SOURCES,
    tenantCacheTtlMs: e.SILO_TENANT_CACHE_TTL_MS,
    tenantNegativeCacheTtlMs: e.SILO_TENANT_NEGATIVE_CACHE_TTL_MS,
    tenantChangePollMs: e.SILO_TENANT_CHANGE_POLL_MS,
    pool: { maxPerTenant: e.SILO_POOL_MAX_PER_TENANT, maxTenants: e.SILO_POOL_MAX_TENANTS, idleMs: e.SILO_POOL_IDLE_MS },
    jwtSecret: e.SILO_JWT_SECRET,
    loginRateLimit: e.SILO_LOGIN_RATE_LIMIT,
    trustProxy: e.SILO_TRUST_PROXY,
    tenantDbMaxUserConnections: e.SILO_TENANT_DB_MAX_USER_CONNECTIONS,
    secretKeyPrevious: e.SILO_SECRET_KEY_PREVIOUS,
    refreshRateLimit: e.SILO_REFRESH_RATE_LIMIT,
    unknownTenantRateLimit: e.SILO_UNKNOWN_TENANT_RATE_LIMIT,
    tenantStats: { maxDays: e.SILO_TENANT_STATS_MAX_DAYS, rateLimit: e.SILO_TENANT_STATS_RATE_LIMIT },
    bodyLimitBytes: e.SILO_BODY_LIMIT_BYTES,
    requestTimeoutMs: e.SILO_REQUEST_TIMEOUT_MS,
    history: { enabled: e.SILO_HISTORY_ENABLED, batchSize: e.SILO_HISTORY_BATCH, flushMs: e.SILO_HISTORY_FLUSH_MS, bufferMax: e.SILO_HISTORY_BUFFER_MAX },
    s3: e.SILO_S3_BUCKET
      ? {
          bucket: e.SILO_S3_BUCKET,
          region: e.SILO_S3_REGION,
          endpoint: e.SILO_S3_ENDPOINT,
          forcePathStyle: e.SILO_S3_FORCE_PATH_STYLE,
          presignTtlS: e.SILO_S3_PRESIGN_TTL_S,
          timeoutMs: e.SILO_S3_TIMEOUT_MS,
        }
      : undefined,
    upload: { maxBytes: e.SILO_UPLOAD_MAX_BYTES, contentTypes: e.SILO_UPLOAD_CONTENT_TYPES ?? DEFAULT_UPLOAD_CONTENT_TYPES },
    mysqldumpPath: e.SILO_MYSQLDUMP_PATH,
    mysqlClientPath: e.SILO_MYSQL_CLIENT_PATH,
    faultKillAfter: fault(e.SILO_FAULT_KILL_AFTER),
    faultFailAfter: fault(e.SILO_FAULT_FAIL_AFTER),
    faultKillAfterStatement:
      e.SILO_ENABLE_FAULTS && e.SILO_FAULT_KILL_AFTER_STATEMENT
        ? { migration: e.SILO_FAULT_KILL_AFTER_STATEMENT.replace(/:\d+$/, ''), statement: Number(e.SILO_FAULT_KILL_AFTER_STATEMENT.replace(/^.*:/, '')) }
        : undefined,
  };
}
