/**
 * The environment schema of Silo (zod): every `SILO_*` variable with its default, bounds
 * and parsing, and the MySQL URL parser it uses. Read by {@link loadConfig} in
 * `src/config.ts`, the only reader of `process.env`.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseRedisUrl } from '../lib/redis.js';

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

const redisUrl = z.string().transform((value, ctx) => {
  try {
    return parseRedisUrl(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `not a redis:// URL (${(err as Error).message})` });
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

/**
 * `SILO_SMTP_URL`: an `smtp://` (STARTTLS when the server offers it) or `smtps://` (TLS from
 * the start, usually port 465) URL, with optional `user:password@` (percent-encoded).
 * Messages never repeat the value: its password is a secret.
 */
const smtpUrl = z.string().superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be a URL such as smtp://127.0.0.1:2525 or smtps://user:password@mail.example.com:465' });
    return;
  }
  if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') {
    ctx.addIssue({ code: 'custom', message: `must be an smtp:// or smtps:// URL (not ${url.protocol}//)` });
  } else if (!url.hostname) {
    ctx.addIssue({ code: 'custom', message: 'must name a host, e.g. smtp://127.0.0.1:2525' });
  }
});

/** `SILO_MAIL_FROM`: `Name <address>` or a bare address, on one line. */
const mailFrom = z
  .string()
  .trim()
  .max(320)
  .regex(
    /^(?:[^<>\r\n"]{1,200} <[^\s<>@]+@[^\s<>@]+>|[^\s<>@]+@[^\s<>@]+)$/,
    'must be an address, or a name and an address such as Silo <no-reply@example.com>',
  );

const faultSpec = z
  .string()
  .regex(/^[a-z-]+:[a-z-]+$/, 'must look like <operation>:<step>, e.g. create:database')
  .optional();

/** The environment schema. Keys are the variable names; see `.env.example` for each one's meaning. */
export const envSchema = z.object({
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
  SILO_POOL_MAX_CONNECTIONS: int(100, 1, 100_000),
  SILO_POOL_MAX_PER_TENANT: int(10, 1, 100),
  SILO_POOL_IDLE_MS: int(60_000, 1_000, 86_400_000),
  SILO_POOL_ACQUIRE_TIMEOUT_MS: int(5_000, 1, 600_000),
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
  SILO_REDIS_URL: redisUrl.optional(),
  SILO_REDIS_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_.-]{0,64}$/, 'must be at most 64 of A-Z a-z 0-9 : _ . -')
    .default('silo:'),
  SILO_HISTORY_ENABLED: bool.default(true),
  SILO_HISTORY_BATCH: int(500, 1, 10_000),
  SILO_HISTORY_FLUSH_MS: int(1_000, 10, 600_000),
  SILO_HISTORY_BUFFER_MAX: int(50_000, 1, 10_000_000),
  // Maintenance of `silo serve` (history partitions ahead, purge of expired tenant rows): a cron expression in UTC, or `off`.
  SILO_MAINTENANCE_CRON: z
    .string()
    .trim()
    .default('*/10 * * * *')
    .refine((v) => v === 'off' || /^\S+( \S+){4,5}$/.test(v), 'must be a cron expression of 5 or 6 fields (e.g. */10 * * * *) or off')
    .transform((v) => (v === 'off' ? null : v)),
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
  // Signup (issue 15): renamed slugs' reservation, tenants provisioned ahead, the public signup.
  SILO_SLUG_RESERVE_DAYS: int(30, 0, 3_650),
  SILO_PENDING_TENANTS: int(0, 0, 1_000),
  SILO_SIGNUP_ENABLED: bool.default(false),
  SILO_SIGNUP_RATE_LIMIT: int(10, 1, 100_000),
  SILO_SIGNUP_VERIFY_TTL_HOURS: int(72, 1, 8_760),
  SILO_SMTP_URL: smtpUrl.optional(),
  SILO_MAIL_FROM: mailFrom.default('Silo <no-reply@localhost>'),
  SILO_PUBLIC_URL: z
    .url({ protocol: /^https?$/, message: 'must be an http(s) URL such as https://app.example.com' })
    .refine((v) => !/[?#]/.test(v), 'must have no query or fragment (links add their own)')
    // Unset: http://localhost:<PORT> (see config.ts), so links point at the port the API listens on.
    .optional(),
  // Webhooks (issue 16 part 6): private/loopback targets (tests, development), per-attempt timeout, retry schedule, sweep, concurrency.
  SILO_WEBHOOK_ALLOW_PRIVATE: bool.default(false),
  SILO_WEBHOOK_TIMEOUT_MS: int(10_000, 50, 120_000),
  SILO_WEBHOOK_RETRY_BASE_MS: int(10_000, 1, 3_600_000),
  SILO_WEBHOOK_RETRY_MAX_MS: int(3_600_000, 1, 86_400_000),
  SILO_WEBHOOK_RETRY_HOURS: int(24, 1, 720),
  SILO_WEBHOOK_SWEEP_MS: int(30_000, 0, 3_600_000),
  SILO_WEBHOOK_CONCURRENCY: int(8, 1, 1_000),
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
