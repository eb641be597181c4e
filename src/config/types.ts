/**
 * The typed configuration Silo runs with ({@link Config}), as built by `loadConfig` in
 * `src/config.ts` from the environment schema (`src/config/env-schema.ts`).
 */
import type { z } from 'zod';
import type { RedisOptions } from '../lib/redis.js';
import type { SecretKeyring } from '../lib/secrets.js';
import type { envSchema, MysqlUrl } from './env-schema.js';

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

/** Outgoing mail (invitations, password resets, signup verification). */
export interface MailConfig {
  /**
   * `SILO_SMTP_URL` (`smtp://` or `smtps://`, optional `user:password@`); undefined: mail is
   * not sent but written to the log at info, link included (development, demo).
   * Holds a secret (the password): log {@link MailConfig.smtpUrlRedacted} instead.
   */
  smtpUrl: string | undefined;
  /** The SMTP URL with its password replaced by `[redacted]` (undefined when unset). */
  smtpUrlRedacted: string | undefined;
  /** `From:` of every message (`SILO_MAIL_FROM`). */
  from: string;
}

/** Outgoing webhooks (`SILO_WEBHOOK_*`). Durations in ms. */
export interface WebhooksConfig {
  /** Allow loopback, private and link-local targets (`SILO_WEBHOOK_ALLOW_PRIVATE=1`: tests, development only). */
  allowPrivate: boolean;
  /** Longest time of one delivery attempt, connection to the end of the answer (default 10 s). */
  timeoutMs: number;
  /** First retry delay; it doubles per attempt up to `retryMaxMs`, with jitter. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** How long after an event (or a redelivery request) failed attempts are retried before the delivery is `failed` (default 24 h). */
  retryWindowMs: number;
  /** Interval of the sweep over tenants with active webhooks for due retries (0: no sweep). */
  sweepMs: number;
  /** Deliveries one process has in flight at most. */
  concurrency: number;
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
  /**
   * Tenant connections: the process-wide budget of open tenant connections (`SILO_POOL_MAX_CONNECTIONS`),
   * connections one tenant may use at once (`SILO_POOL_MAX_PER_TENANT`), idle time before a
   * connection closes (ms), longest wait for a connection before 503 `POOL_EXHAUSTED` (ms).
   */
  pool: { maxConnections: number; maxPerTenant: number; idleMs: number; acquireTimeoutMs: number };
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
  /**
   * Redis shared by every API process (`SILO_REDIS_URL`; undefined: none, each process
   * counts the plans' request rates for itself), and the prefix of every key Silo writes there.
   */
  redis: (RedisOptions & { keyPrefix: string }) | undefined;
  /** Request history: on/off, rows per INSERT, flush interval (ms), buffer bound (rows). */
  history: { enabled: boolean; batchSize: number; flushMs: number; bufferMax: number };
  /** Cron expression (UTC) of the maintenance run of `silo serve`; null when `SILO_MAINTENANCE_CRON=off`. */
  maintenanceCron: string | null;
  /** Object storage; undefined when `SILO_S3_BUCKET` is unset (backups and attachments are then unavailable). */
  s3: S3Config | undefined;
  /** Attachments: largest upload in bytes, and the accepted media types (lower case; `type/*` allowed). */
  upload: { maxBytes: number; contentTypes: readonly string[] };
  /**
   * Self-service signup (issue 15): days a slug given up by a rename stays reserved
   * (`SILO_SLUG_RESERVE_DAYS`); tenants `silo serve` keeps provisioned ahead
   * (`SILO_PENDING_TENANTS`); whether `POST /platform/v1/signup` is open
   * (`SILO_SIGNUP_ENABLED`); signups per IP per hour (`SILO_SIGNUP_RATE_LIMIT`); hours an
   * unverified signup tenant lives before the maintenance run deletes it
   * (`SILO_SIGNUP_VERIFY_TTL_HOURS`).
   */
  signup: { slugReserveDays: number; pendingTenants: number; enabled: boolean; rateLimitPerHour: number; verifyTtlHours: number };
  /** Outgoing mail. */
  mail: MailConfig;
  /** Base of the links in mails (`SILO_PUBLIC_URL`, no trailing slash), e.g. `https://app.example.com`. */
  publicUrl: string;
  /** Outgoing webhooks (see {@link WebhooksConfig}). */
  webhooks: WebhooksConfig;
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
