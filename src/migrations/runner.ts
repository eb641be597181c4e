/**
 * umzug runners for the two migration sets: `main` (the catalog) and `tenant` (every
 * tenant database). The list of applied migrations lives in the migrated database
 * itself, in `schema_migrations`.
 */
import { readdir } from 'node:fs/promises';
import { basename, extname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Knex } from 'knex';
import type { Umzug } from 'umzug';
import type { Config } from '../config.js';
import { withStatementFault } from '../lib/faults.js';
import { KnexStorage, MIGRATIONS_TABLE } from './storage.js';
import { IrreversibleMigrationError, type MigrationModule, type MigrationParams } from './types.js';

export { MIGRATIONS_TABLE };

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

/**
 * Undoes whatever prefix of its `up` an interrupted run of a migration left, with its
 * `down`. A migration whose `down` throws {@link IrreversibleMigrationError} promises
 * instead that its `up` resumes from any prefix of itself (the template says so), so it
 * is simply run again.
 */
async function undoPrefix(module: MigrationModule, params: MigrationParams): Promise<void> {
  try {
    await module.down(params);
  } catch (err) {
    // By name too: a migration of the extra folder (.mjs) cannot import the class.
    if (!(err instanceof IrreversibleMigrationError) && (err as Error | undefined)?.name !== 'IrreversibleMigrationError') throw err;
  }
}

/**
 * An umzug instance over a database. Each migration is recorded as started (in
 * {@link MIGRATIONS_TABLE}) before its `up` or `down` sends a statement, and as applied
 * (or forgotten) once it has finished. `up` of a migration found started (a crash stopped
 * an earlier `up` or `down` of it partway) first runs its `down`, which undoes any prefix
 * of its `up` (the contract of `migrations/TEMPLATE.ts.txt`), then its `up`: so `migrate`
 * and `repair` converge whatever statement a crash stopped at.
 * @param knex Knex connected to the database to migrate (as an admin: migrations run DDL)
 * @param migrations what {@link loadMigrations} returned
 * @param options `faultKillAfterStatement`: test-only crash injection (`SILO_FAULT_KILL_AFTER_STATEMENT`)
 */
export async function createMigrator(
  knex: Knex,
  migrations: LoadedMigration[],
  options: Partial<Pick<Config, 'faultKillAfterStatement'>> = {},
): Promise<Umzug<Knex>> {
  // Loaded on first use (about 0.1 s of start-up): most CLI commands never migrate.
  const { Umzug } = await import('umzug');
  const storage = new KnexStorage(knex);
  return new Umzug<Knex>({
    // A function: umzug calls a function-valued context, and a Knex is a function.
    context: () => knex,
    storage,
    logger: undefined,
    migrations: migrations.map((m) => ({
      name: m.name,
      path: m.path,
      up: async ({ context }) => {
        const params = { name: m.name, context };
        if (storage.wasStarted(m.name)) await undoPrefix(m.module, params);
        else await storage.logStarted(m.name);
        await withStatementFault(options.faultKillAfterStatement, context, m.name, () => m.module.up(params));
      },
      down: async ({ context }) => {
        await storage.logStarted(m.name);
        await m.module.down({ name: m.name, context });
      },
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
