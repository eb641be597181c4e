/**
 * The catalog database: connection, creation and migration.
 */
import type { Knex } from 'knex';
import type { Config } from '../config.js';
import { quoteIdentifier } from '../lib/identifiers.js';
import { createMysqlKnex, type PoolOptions } from '../lib/knex.js';
import { createMigrator, loadMigrations } from '../migrations/runner.js';

/** A Knex on the catalog database (`Config.catalog`). */
export function createCatalogKnex(config: Pick<Config, 'catalog'>, pool: PoolOptions = { min: 0, max: 8 }): Knex {
  return createMysqlKnex(config.catalog, pool);
}

/** `CREATE DATABASE IF NOT EXISTS` for the catalog (utf8mb4), over a short-lived server connection. */
export async function ensureCatalogDatabase(config: Pick<Config, 'catalog'>): Promise<void> {
  const server = createMysqlKnex({ ...config.catalog, database: '' }, { min: 0, max: 1 });
  try {
    await server.raw(`CREATE DATABASE IF NOT EXISTS ${quoteIdentifier(config.catalog.database)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  } finally {
    await server.destroy();
  }
}

/** Applied and pending catalog migrations. */
export interface MigrationStatus {
  applied: string[];
  pending: string[];
}

/** Lists applied and pending catalog migrations (the catalog database must exist). */
export async function catalogMigrationStatus(knex: Knex): Promise<MigrationStatus> {
  const migrator = await createMigrator(knex, await loadMigrations('main'));
  const [applied, pending] = await Promise.all([migrator.executed(), migrator.pending()]);
  return { applied: applied.map((m) => m.name), pending: pending.map((m) => m.name) };
}

/**
 * Creates the catalog database if missing and applies pending catalog migrations under a
 * MySQL advisory lock (`GET_LOCK`), so two processes never migrate the catalog at once.
 * All of it runs on one connection: `GET_LOCK` is held per session (MySQL 8.4 §14.14
 * "Locking Functions").
 * @param lockTimeoutS seconds to wait for another process's lock
 * @returns names of the migrations applied now
 * @throws Error when the lock is not granted in time, or a migration fails
 */
export async function migrateCatalog(config: Pick<Config, 'catalog'>, lockTimeoutS = 60): Promise<string[]> {
  await ensureCatalogDatabase(config);
  const migrations = await loadMigrations('main');
  const single = createMysqlKnex(config.catalog, { min: 0, max: 1 });
  try {
    const lockName = `silo:migrate:catalog:${config.catalog.database}`;
    const [rows] = (await single.raw('SELECT GET_LOCK(?, ?) AS ok', [lockName, lockTimeoutS])) as [Array<{ ok: number | null }>, unknown];
    if (Number(rows[0]?.ok) !== 1) throw new Error(`another process is migrating the catalog (lock ${lockName} not granted in ${lockTimeoutS} s)`);
    try {
      const applied = await (await createMigrator(single, migrations)).up();
      return applied.map((m) => m.name);
    } finally {
      await single.raw('SELECT RELEASE_LOCK(?)', [lockName]);
    }
  } finally {
    await single.destroy();
  }
}
