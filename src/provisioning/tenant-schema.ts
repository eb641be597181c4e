/**
 * The schema of one tenant database: pending migrations, applying them under a
 * per-database advisory lock, rolling back, drift.
 */
import type { Knex } from 'knex';
import type { Umzug } from 'umzug';
import type { Tenant } from '../catalog/index.js';
import type { Config } from '../config.js';
import { ConflictError } from '../lib/errors.js';
import { createMigrator, expectedTables, loadMigrations, type LoadedMigration } from '../migrations/runner.js';

/** The tenant migrations this code knows (files of `migrations/tenant` plus the extra dir). */
export function tenantMigrations(config: Pick<Config, 'tenantMigrationsExtraDir'>): Promise<LoadedMigration[]> {
  return loadMigrations('tenant', config.tenantMigrationsExtraDir);
}

/** Name of the newest tenant migration, i.e. the schema version of an up-to-date tenant. */
export async function latestTenantVersion(config: Pick<Config, 'tenantMigrationsExtraDir'>): Promise<string | null> {
  const all = await tenantMigrations(config);
  return all.at(-1)?.name ?? null;
}

/** Advisory lock name for migrating one tenant database (unique per server and database). */
export function migrationLockName(tenant: Pick<Tenant, 'databaseServerId' | 'databaseName'>): string {
  return `silo:migrate:${tenant.databaseServerId}:${tenant.databaseName}`;
}

/**
 * Runs `fn` while holding `GET_LOCK(name)` on `knex`'s single connection (MySQL 8.4
 * §14.14 "Locking Functions": the lock belongs to the session and is released on
 * disconnect, so a killed runner never leaves it held).
 * @param timeoutS seconds to wait for another holder
 * @throws ConflictError `MIGRATION_LOCKED` when not granted in time
 */
export async function withAdvisoryLock<T>(knex: Knex, name: string, timeoutS: number, fn: () => Promise<T>): Promise<T> {
  const [rows] = (await knex.raw('SELECT GET_LOCK(?, ?) AS ok', [name, timeoutS])) as [Array<{ ok: number | string | null }>];
  if (Number(rows[0]?.ok) !== 1) {
    throw new ConflictError(`another runner holds ${name} (waited ${timeoutS} s)`, 'MIGRATION_LOCKED');
  }
  try {
    return await fn();
  } finally {
    await knex.raw('SELECT RELEASE_LOCK(?)', [name]).catch(() => undefined);
  }
}

/**
 * The migrator of a tenant database (see {@link createMigrator}: a migration a crash
 * stopped partway is undone and applied again).
 * @param config `faultKillAfterStatement` is honoured when set (tests only)
 */
export async function tenantMigrator(
  knex: Knex,
  config: Pick<Config, 'tenantMigrationsExtraDir'> & Partial<Pick<Config, 'faultKillAfterStatement'>>,
): Promise<Umzug<Knex>> {
  return createMigrator(knex, await tenantMigrations(config), config);
}

/** Applied and pending migrations, and drift, of one tenant database. */
export interface TenantSchemaState {
  applied: string[];
  pending: string[];
  /** Migrations recorded as applied that this code does not know (the database is newer than the code). */
  unknown: string[];
  drift: { missing: string[]; extra: string[] };
}

/**
 * Reads the schema state of a tenant database.
 * @param tables base tables present in the database
 */
export async function readSchemaState(knex: Knex, config: Pick<Config, 'tenantMigrationsExtraDir'>, tables: string[]): Promise<TenantSchemaState> {
  const migrations = await tenantMigrations(config);
  const migrator = createMigrator(knex, migrations);
  const executed = (await migrator.executed()).map((m) => m.name);
  const known = new Set(migrations.map((m) => m.name));
  const applied = executed.filter((n) => known.has(n));
  const unknown = executed.filter((n) => !known.has(n));
  const done = new Set(executed);
  const pending = migrations.filter((m) => !done.has(m.name)).map((m) => m.name);
  const expected = expectedTables(migrations, applied);
  const present = new Set(tables);
  return {
    applied,
    pending,
    unknown,
    drift: {
      missing: [...expected].filter((t) => !present.has(t)).sort(),
      extra: tables.filter((t) => !expected.has(t)).sort(),
    },
  };
}
