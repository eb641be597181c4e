/**
 * The services the CLI and the API share, built once from a {@link Config}: the catalog,
 * admin connections to database servers, object storage (S3), the mailer, the logger, and an event bus that tells the
 * API process about tenant changes (so it can close a suspended tenant's pool).
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { openCatalog, type Catalog } from './catalog/index.js';
import type { Config } from './config.js';
import { createMailer, type Mailer } from './mail/mailer.js';
import { AdminConnections } from './provisioning/admin-connections.js';
import { TenantLocks } from './provisioning/tenant-lock.js';
import { createObjectStore, type ObjectStore } from './storage/s3.js';

/** Events emitted by lifecycle services. `tenantChanged` carries the tenant slug; `pendingClaimed` follows a signup's claim of a pending tenant. */
export interface SiloEvents {
  tenantChanged: [slug: string];
  pendingClaimed: [];
  /** A plan was added or changed. */
  plansChanged: [];
}

/** Shared services. */
export interface SiloContext {
  config: Config;
  log: Logger;
  catalog: Catalog;
  admin: AdminConnections;
  /** One lifecycle operation per tenant at a time. */
  locks: TenantLocks;
  events: EventEmitter<SiloEvents>;
  /** S3 for backups, attachments and history archives; undefined when `SILO_S3_BUCKET` is unset. */
  storage: ObjectStore | undefined;
  /** Outgoing mail over `SILO_SMTP_URL`; without it, messages are written to the log (see src/mail/mailer.ts). */
  mailer: Mailer;
  /** Closes every connection the context opened. */
  close(): Promise<void>;
}

/** Builds the shared services; connections open lazily. */
export function createContext(config: Config, log: Logger): SiloContext {
  const catalog = openCatalog(config);
  const admin = new AdminConnections(catalog);
  const locks = new TenantLocks(config);
  const storage = createObjectStore(config);
  const mailer = createMailer(config.mail, log);
  return {
    config,
    log,
    catalog,
    admin,
    locks,
    events: new EventEmitter<SiloEvents>(),
    storage,
    mailer,
    async close() {
      storage?.destroy();
      await mailer.close();
      await admin.destroy();
      await locks.destroy();
      await catalog.destroy();
    },
  };
}
