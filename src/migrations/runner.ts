/**
 * umzug runners for the two migration sets: `main` (the catalog) and `tenant` (every
 * tenant database). The list of applied migrations lives in the migrated database
 * itself, in `schema_migrations`.
 */
import { readdir } from 'node:fs/promises';
import { basename, extname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Knex } from 'knex';
import { Umzug, type UmzugStorage } from 'umzug';
import type { MigrationModule } from './types.js';

/** Name of the table that records applied migrations, in each migrated database. */
export const MIGRATIONS_TABLE = 'schema_migrations';

/** The two migration sets. */
export type MigrationSet = 'main' | 'tenant';

/** A migration file loaded from disk. */
export interface LoadedMigration {
  /** File name without extension, e.g. `0002-create-refresh-tokens`. */
  name: string;
  path: string;
  module: MigrationModule;
}

const FILE_PATTERN = /^\d{4}-[a-z0-9-]+\.(ts|js|mjs)$/;

/** Folder of a migration set: `migrations/<set>` next to `src/` (also under `dist/`). */
export function migrationsDir(set: MigrationSet): string {
  return fileURLToPath(new URL(`../../migrations/${set}/`, import.meta.url));
}

const cache = new Map<string, Promise<LoadedMigration[]>>();

async function loadDir(dir: string): Promise<LoadedMigration[]> {
  const files = (await readdir(dir)).filter((f) => FILE_PATTERN.test(f) && !f.endsWith('.d.ts'));
  return Promise.all(
    files.map(async (file) => {
      const path = resolve(dir, file);
      const module = (await import(pathToFileURL(path).href)) as MigrationModule;
      if (typeof module.up !== 'function' || typeof module.down !== 'function') {
        throw new Error(`migration ${path} must export up() and down()`);
      }
      return { name: basename(file, extname(file)), path, module };
    }),
  );
}

/**
 * Loads the migrations of a set, sorted by name (their `NNNN-` prefix).
 * @param extraDir optional extra folder merged in (`SILO_TENANT_MIGRATIONS_EXTRA_DIR`)
 * @throws Error when two files share a name or a file lacks `up`/`down`
 */
export function loadMigrations(set: MigrationSet, extraDir?: string): Promise<LoadedMigration[]> {
  const key = `${set}\0${extraDir ?? ''}`;
  let p = cache.get(key);
  if (!p) {
    p = (async () => {
      const lists = await Promise.all([loadDir(migrationsDir(set)), extraDir ? loadDir(resolve(extraDir)) : []]);
      const all = lists.flat().sort((a, b) => a.name.localeCompare(b.name));
      for (let i = 1; i < all.length; i++) {
        if (all[i]!.name === all[i - 1]!.name) throw new Error(`two migrations are named ${all[i]!.name}`);
      }
      return all;
    })();
    p.catch(() => cache.delete(key));
    cache.set(key, p);
  }
  return p;
}

/** umzug storage in `schema_migrations` of the migrated database (created on first use). */
class KnexStorage implements UmzugStorage<Knex> {
  constructor(private readonly knex: Knex) {}

  /** Set once the table is known to exist, so that each migration costs no extra DDL statement. */
  private ensured = false;

  private async ensureTable(): Promise<void> {
    if (this.ensured) return;
    await this.knex.raw(
      `CREATE TABLE IF NOT EXISTS ?? (name VARCHAR(255) NOT NULL PRIMARY KEY, applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
      [MIGRATIONS_TABLE],
    );
    this.ensured = true;
  }

  async logMigration({ name }: { name: string }): Promise<void> {
    await this.ensureTable();
    await this.knex(MIGRATIONS_TABLE).insert({ name });
  }

  async unlogMigration({ name }: { name: string }): Promise<void> {
    await this.ensureTable();
    await this.knex(MIGRATIONS_TABLE).where({ name }).delete();
  }

  async executed(): Promise<string[]> {
    await this.ensureTable();
    const rows: Array<{ name: string }> = await this.knex(MIGRATIONS_TABLE).select('name').orderBy('name');
    return rows.map((r) => r.name);
  }
}

/**
 * An umzug instance over a database.
 * @param knex Knex connected to the database to migrate (as an admin: migrations run DDL)
 * @param migrations what {@link loadMigrations} returned
 */
export function createMigrator(knex: Knex, migrations: LoadedMigration[]): Umzug<Knex> {
  return new Umzug<Knex>({
    // A function: umzug calls a function-valued context, and a Knex is a function.
    context: () => knex,
    storage: new KnexStorage(knex),
    logger: undefined,
    migrations: migrations.map((m) => ({
      name: m.name,
      path: m.path,
      up: async ({ context }) => m.module.up({ name: m.name, context }),
      down: async ({ context }) => m.module.down({ name: m.name, context }),
    })),
  });
}

/** Names of a migration list, in order. */
export function migrationNames(migrations: LoadedMigration[]): string[] {
  return migrations.map((m) => m.name);
}

/**
 * Tables the applied migrations should have made: the union of `creates` minus `drops`,
 * in application order, plus {@link MIGRATIONS_TABLE}.
 */
export function expectedTables(migrations: LoadedMigration[], applied: readonly string[]): Set<string> {
  const done = new Set(applied);
  const tables = new Set<string>([MIGRATIONS_TABLE]);
  for (const m of migrations) {
    if (!done.has(m.name)) continue;
    for (const t of m.module.creates ?? []) tables.add(t);
    for (const t of m.module.drops ?? []) tables.delete(t);
  }
  return tables;
}
