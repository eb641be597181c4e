/**
 * The schema of one tenant database: pending migrations, applying them under a
 * per-database advisory lock, rolling back, drift.
 */
import type { Knex } from 'knex';
import type { Umzug } from 'umzug';
import type { Tenant } from '../catalog/index.js';
import type { Config, MysqlUrl } from '../config.js';
import { ConflictError } from '../lib/errors.js';
import { createMysqlKnex } from '../lib/knex.js';
import { LockLostError } from './tenant-lock.js';
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
 * Runs `fn` while holding `GET_LOCK(name)` on a dedicated connection opened with `knex`'s
 * settings (MySQL 8.4 §14.14 "Locking Functions": the lock belongs to the session and is
 * released on disconnect, so a killed runner never leaves it held). The lock's session is
 * not one a pool may silently replace: `fn` gets `assertHeld` (`IS_USED_LOCK(name) =
 * CONNECTION_ID()` on that session) to call between migrations, and it is checked again
 * when `fn` ends, so a lost lock fails the run.
 * @param timeoutS seconds to wait for another holder
 * @throws ConflictError `MIGRATION_LOCKED` when not granted in time
 * @throws LockLostError `LOCK_LOST` when the lock's session ended before `fn` did
 */
export async function withAdvisoryLock<T>(knex: Knex, name: string, timeoutS: number, fn: (lock: { assertHeld(): Promise<void> }) => Promise<T>): Promise<T> {
  const c = (knex.client as { config: { connection: MysqlUrl } }).config.connection;
  const lockKnex = createMysqlKnex({ host: c.host, port: c.port, user: c.user, password: c.password, database: '' }, { min: 0, max: 1 });
  let trx: Knex.Transaction | undefined;
  try {
    trx = await lockKnex.transaction();
    const lockTrx = trx;
    const [rows] = (await trx.raw('SELECT GET_LOCK(?, ?) AS ok', [name, timeoutS])) as [Array<{ ok: number | string | null }>];
    if (Number(rows[0]?.ok) !== 1) {
      throw new ConflictError(`another runner holds ${name} (waited ${timeoutS} s)`, 'MIGRATION_LOCKED');
    }
    const assertHeld = async () => {
      const held = await lockTrx
        .raw('SELECT IS_USED_LOCK(?) = CONNECTION_ID() AS held', [name])
        .then(([r]: [Array<{ held: number | null }>]) => Number(r[0]?.held) === 1)
        .catch(() => false);
      if (!held) throw new LockLostError(name);
    };
    const result = await fn({ assertHeld });
    await assertHeld();
    return result;
  } finally {
    await trx?.rollback().catch(() => undefined); // gives the connection back, so destroy can end it
    await lockKnex.destroy(); // ends the session: the lock is released with it
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
  const migrator = await createMigrator(knex, migrations);
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
