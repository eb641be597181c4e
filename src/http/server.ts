/**
 * The API server: listens on HOST:PORT and shuts down gracefully on SIGINT/SIGTERM
 * (`close-with-grace`): stop the maintenance schedule (waiting for a run in progress),
 * stop accepting, finish in-flight requests, flush what must be flushed (app `onClose`
 * hooks), destroy every pool, close the catalog. Before listening it makes the history
 * partitions of the coming months; then runs the maintenance schedule
 * (`SILO_MAINTENANCE_CRON`, src/jobs/maintenance.ts) and keeps `SILO_PENDING_TENANTS`
 * tenants provisioned ahead for signups (src/provisioning/pending-tenants.ts).
 */
import closeWithGrace from 'close-with-grace';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import { createContext, type SiloContext } from '../context.js';
import { ensureHistoryPartitions } from '../history/partitions.js';
import { HISTORY_MONTHS_AHEAD, startMaintenance } from '../jobs/maintenance.js';
import { createLogger } from '../lib/logger.js';
import { startPendingKeeper } from '../provisioning/pending-tenants.js';
import { buildApp } from './app.js';

/** A running server. */
export interface RunningServer {
  app: FastifyInstance;
  ctx: SiloContext;
  /** `http://host:port` actually bound. */
  url: string;
  close(): Promise<void>;
}

/**
 * Starts the API.
 * @param opts.graceMs time allowed for a graceful shutdown before exit, ms (default 10000)
 * @throws ConfigError (e.g. `SILO_JWT_SECRET` or `SILO_SECRET_KEY` missing) before listening
 */
export async function startServer(config: Config, opts: { graceMs?: number; handleSignals?: boolean } = {}): Promise<RunningServer> {
  // Tenant pools decrypt their passwords: refuse to start without a key (ConfigError).
  void config.secrets.currentKeyId;
  const log = createLogger(config.logLevel ?? 'info');
  const ctx = createContext(config, log);
  let app: FastifyInstance;
  try {
    app = await buildApp({ ctx });
  } catch (err) {
    await ctx.close();
    throw err;
  }
  try {
    const added = await ensureHistoryPartitions(ctx.catalog.knex, new Date(), HISTORY_MONTHS_AHEAD);
    if (added.length) log.info({ partitions: added }, 'request history partitions added');
  } catch (err) {
    // Another process may be splitting pmax at this moment; the schedule tries again.
    log.error({ err }, 'request history partitions ahead could not be made');
  }
  const maintenance = startMaintenance(ctx, config.maintenanceCron);
  const pending = startPendingKeeper(ctx, config.signup.pendingTenants);
  const close = async () => {
    await pending.stop();
    await maintenance.stop();
    await app.close();
    await ctx.close();
  };
  if (opts.handleSignals !== false) {
    closeWithGrace({ delay: opts.graceMs ?? 10_000, logger: log }, async ({ signal, err }) => {
      if (err) log.error({ err }, 'shutting down after an error');
      else log.info({ signal }, 'shutting down');
      await close();
    });
  }
  const url = await app.listen({ host: config.host, port: config.port });
  if (config.secrets.isDevelopmentKey)
    log.warn('NODE_ENV=development: the development key published in the repository encrypts secrets (run `silo init` for a key of your own)');
  return { app, ctx, url, close };
}
