/**
 * Silo configuration: the only module that reads `process.env`.
 *
 * Values come from the environment and, when present, a `.env` file in the working
 * directory (the environment wins). Every value is validated with zod; a missing or
 * malformed value raises {@link ConfigError} whose message is one line naming the
 * variable.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import { createKeyring, type SecretKeyring } from './lib/secrets.js';
import { envSchema } from './config/env-schema.js';
import type { Config, FaultSpec } from './config/types.js';

// The schema and the types live in src/config/; everything stays importable from here.
export { parseMysqlUrl, type MysqlUrl } from './config/env-schema.js';
export type { Config, FaultSpec, MailConfig, S3Config, WebhooksConfig } from './config/types.js';

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

/** An SMTP URL as it may be logged or shown: its password replaced by `[redacted]`. */
export function redactSmtpUrl(value: string): string {
  const url = new URL(value);
  if (url.password) url.password = '[redacted]';
  return url.toString();
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
    pool: {
      maxConnections: e.SILO_POOL_MAX_CONNECTIONS,
      maxPerTenant: e.SILO_POOL_MAX_PER_TENANT,
      idleMs: e.SILO_POOL_IDLE_MS,
      acquireTimeoutMs: e.SILO_POOL_ACQUIRE_TIMEOUT_MS,
    },
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
    redis: e.SILO_REDIS_URL ? { ...e.SILO_REDIS_URL, keyPrefix: e.SILO_REDIS_KEY_PREFIX } : undefined,
    history: { enabled: e.SILO_HISTORY_ENABLED, batchSize: e.SILO_HISTORY_BATCH, flushMs: e.SILO_HISTORY_FLUSH_MS, bufferMax: e.SILO_HISTORY_BUFFER_MAX },
    maintenanceCron: e.SILO_MAINTENANCE_CRON,
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
    signup: {
      slugReserveDays: e.SILO_SLUG_RESERVE_DAYS,
      pendingTenants: e.SILO_PENDING_TENANTS,
      enabled: e.SILO_SIGNUP_ENABLED,
      rateLimitPerHour: e.SILO_SIGNUP_RATE_LIMIT,
      verifyTtlHours: e.SILO_SIGNUP_VERIFY_TTL_HOURS,
    },
    mail: { smtpUrl: e.SILO_SMTP_URL, smtpUrlRedacted: e.SILO_SMTP_URL && redactSmtpUrl(e.SILO_SMTP_URL), from: e.SILO_MAIL_FROM },
    publicUrl: (e.SILO_PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, ''),
    webhooks: {
      allowPrivate: e.SILO_WEBHOOK_ALLOW_PRIVATE,
      timeoutMs: e.SILO_WEBHOOK_TIMEOUT_MS,
      retryBaseMs: e.SILO_WEBHOOK_RETRY_BASE_MS,
      retryMaxMs: Math.max(e.SILO_WEBHOOK_RETRY_MAX_MS, e.SILO_WEBHOOK_RETRY_BASE_MS),
      retryWindowMs: e.SILO_WEBHOOK_RETRY_HOURS * 3_600_000,
      sweepMs: e.SILO_WEBHOOK_SWEEP_MS,
      concurrency: e.SILO_WEBHOOK_CONCURRENCY,
    },
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
