/**
 * A new tenant's schema in one round trip: the tenant migrations, run once on a scratch
 * database, are captured as a script (every table's `SHOW CREATE TABLE`, the rows the
 * migrations wrote, their bookkeeping in `schema_migrations`), cached per database server
 * and migration set in the catalog (`tenant_schema_scripts`) and in the process, and sent
 * to an empty tenant database as one multi-statement query on a dedicated admin connection.
 * The script is made from the migrations themselves, never kept by hand: a changed
 * migration file changes the key. test/schema-script.test.ts holds that a tenant made by
 * the script equals one made by the migrations.
 *
 * Crash safety follows the migration contract (src/migrations/storage.ts): the script
 * records every migration as `started` before its first `CREATE TABLE`, and as `applied`
 * in its last statement. A kill in between leaves a database whose migrations all read
 * `started`; the next run ({@link resetInterruptedScript}) empties it and makes it again.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Knex } from 'knex';
import mysql from 'mysql2/promise';
import type { Config, MysqlUrl } from '../config.js';
import { sanitizeMysqlError } from '../lib/error-text.js';
import { createMysqlKnex, MysqlErrno, mysqlErrno } from '../lib/knex.js';
import { ConflictError } from '../lib/errors.js';
import { createMigrator, expectedTables, MIGRATIONS_TABLE, type LoadedMigration } from '../migrations/runner.js';
import { createMysqlAdmin } from './mysql-admin.js';

/** Catalog table of cached scripts (catalog migration 0012). */
const SCRIPTS_TABLE = 'tenant_schema_scripts';
/** Name of the script for `SILO_FAULT_KILL_AFTER_STATEMENT=0000-schema-script:<n>` (tests only). */
export const SCRIPT_FAULT_NAME = '0000-schema-script';

/** A tenant schema as statements, for one migration set. */
export interface SchemaScript {
  /** SHA-256 (hex) of the migration set: names and file contents, in order. */
  key: string;
  /** The newest migration of the set: the schema version of a tenant the script made. */
  latest: string;
  /** Migration names the script records as applied, in order. */
  migrations: string[];
  /** Statements in order, without `;`. */
  statements: string[];
}

/** SHA-256 of a migration set: names and file contents, in order. */
export async function migrationSetKey(migrations: readonly LoadedMigration[]): Promise<string> {
  const hash = createHash('sha256');
  for (const m of migrations)
    hash
      .update(`${m.name}\0`)
      .update(await readFile(m.path))
      .update('\0');
  return hash.digest('hex');
}

const memory = new Map<string, Promise<SchemaScript | null>>();

/**
 * The script of `migrations` for database server `serverId`: from this process's cache,
 * else the catalog's, else made now on a scratch database and stored in both.
 * @param catalog the catalog Knex (a missing `tenant_schema_scripts` table only skips storing)
 * @param admin admin credentials of the server (no database)
 * @returns null when the set cannot be a script: it makes views, triggers or routines (the
 *   script holds tables and rows only)
 */
export function schemaScript(
  catalog: Knex,
  serverId: number,
  admin: MysqlUrl,
  migrations: readonly LoadedMigration[],
  prefix: string,
): Promise<SchemaScript | null> {
  const load = async () => {
    const key = await migrationSetKey(migrations);
    const stored = await readStored(catalog, serverId, key);
    if (stored) return stored;
    const made = await buildScript(admin, migrations, key, prefix);
    if (made) await store(catalog, serverId, made);
    return made;
  };
  const cacheKey = `${serverId}\0${migrations.map((m) => m.path).join('\0')}`;
  let p = memory.get(cacheKey);
  if (!p) {
    p = load();
    p.catch(() => memory.delete(cacheKey));
    memory.set(cacheKey, p);
  }
  return p;
}

/** A row of {@link SCRIPTS_TABLE}. */
interface ScriptRow {
  database_server_id: number;
  migrations_sha256: string;
  latest_migration: string;
  script: string;
}

async function readStored(catalog: Knex, serverId: number, key: string): Promise<SchemaScript | null> {
  try {
    const row = await catalog<ScriptRow>(SCRIPTS_TABLE).where({ database_server_id: serverId, migrations_sha256: key }).first();
    if (!row) return null;
    const parsed = JSON.parse(row.script) as { migrations: string[]; statements: string[] };
    return { key, latest: row.latest_migration, migrations: parsed.migrations, statements: parsed.statements };
  } catch (err) {
    if (mysqlErrno(err) === MysqlErrno.NO_SUCH_TABLE) return null;
    throw err;
  }
}

async function store(catalog: Knex, serverId: number, s: SchemaScript): Promise<void> {
  try {
    await catalog<ScriptRow>(SCRIPTS_TABLE)
      .insert({
        database_server_id: serverId,
        migrations_sha256: s.key,
        latest_migration: s.latest,
        script: JSON.stringify({ migrations: s.migrations, statements: s.statements }),
      })
      .onConflict(['database_server_id', 'migrations_sha256'])
      .ignore();
  } catch (err) {
    if (mysqlErrno(err) !== MysqlErrno.NO_SUCH_TABLE) throw err;
  }
}

/** DML a migration sends (what the script replays); reads and the runner's bookkeeping are left out. */
const DML = /^\s*(insert|update|delete|replace)\b/i;
const BOOKKEEPING = new RegExp(`\`${MIGRATIONS_TABLE}\``);

/**
 * Runs the migrations on a scratch database `<prefix>_schema_<key>_<random>` (a name no
 * tenant can have: slugs start with a letter; orphan pruning drops one a crash left),
 * captures the script and drops the scratch database.
 */
async function buildScript(admin: MysqlUrl, migrations: readonly LoadedMigration[], key: string, prefix: string): Promise<SchemaScript | null> {
  const latest = migrations.at(-1)?.name;
  if (!latest) return null;
  const scratch = `${prefix}_schema_${key.slice(0, 12)}_${randomBytes(3).toString('hex')}`;
  const server = createMysqlKnex({ ...admin, database: '' }, { min: 0, max: 1 });
  const sql = createMysqlAdmin(server);
  try {
    await sql.createDatabase(scratch);
    const knex = createMysqlKnex({ ...admin, database: scratch }, { min: 0, max: 1 });
    try {
      const dml: string[] = [];
      const onQuery = (q: { sql: string; bindings?: Knex.RawBinding[] }) => {
        if (DML.test(q.sql) && !BOOKKEEPING.test(q.sql)) dml.push(knex.raw(q.sql, q.bindings ?? []).toQuery());
      };
      knex.on('query', onQuery);
      try {
        await (await createMigrator(knex, [...migrations])).up();
      } finally {
        knex.off('query', onQuery);
      }
      const [objects] = (await knex.raw(
        `SELECT (SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE())
              + (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE())
              + (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()) AS n`,
      )) as [Array<{ n: number | string }>];
      if (Number(objects[0]?.n) > 0) return null;
      const tables = (await sql.listTables(scratch)).filter((t) => t !== MIGRATIONS_TABLE).sort();
      const create = async (table: string) => {
        const [rows] = (await knex.raw('SHOW CREATE TABLE ??', [table])) as [Array<Record<string, string>>];
        // The counter is state, not schema: the rows replayed below move it as the migrations did.
        return rows[0]!['Create Table']!.replace(/ AUTO_INCREMENT=\d+/, '');
      };
      const names = migrations.map((m) => m.name);
      const statements = [
        'SET FOREIGN_KEY_CHECKS = 0',
        "SET time_zone = '+00:00'",
        await create(MIGRATIONS_TABLE),
        knex(MIGRATIONS_TABLE)
          .insert(names.map((name) => ({ name, state: 'started' })))
          .toQuery(),
        ...(await Promise.all(tables.map(create))),
        ...dml,
        knex(MIGRATIONS_TABLE)
          .where({ state: 'started' })
          .update({ state: 'applied', applied_at: knex.raw('CURRENT_TIMESTAMP(3)') })
          .toQuery(),
        'SET FOREIGN_KEY_CHECKS = 1',
      ];
      return { key, latest, migrations: names, statements };
    } finally {
      await knex.destroy();
    }
  } finally {
    await sql.dropDatabase(scratch).catch(() => undefined);
    await server.destroy();
  }
}

/**
 * Sends `script` to `database` as one multi-statement query, on a connection of its own
 * (`multipleStatements` is set for this connection only, never on a pool).
 * @param fault `SILO_FAULT_KILL_AFTER_STATEMENT=0000-schema-script:<n>`: only the first n statements are sent, then SIGKILL (tests)
 * @throws the server's error (bound values stripped) when a statement fails: the database holds a prefix of the script
 */
export async function runScript(admin: MysqlUrl, database: string, script: SchemaScript, fault?: Config['faultKillAfterStatement']): Promise<void> {
  const conn = await mysql.createConnection({
    host: admin.host,
    port: admin.port,
    user: admin.user,
    password: admin.password,
    database,
    charset: 'utf8mb4',
    timezone: 'Z',
    multipleStatements: true,
    connectTimeout: 10_000,
  });
  const killAt = fault?.migration === SCRIPT_FAULT_NAME ? fault.statement : undefined;
  const statements = killAt === undefined ? script.statements : script.statements.slice(0, killAt);
  const sql = statements.join(';\n');
  try {
    if (statements.length) await conn.query(sql);
    if (killAt !== undefined) {
      process.stderr.write(`silo: fault injection: SIGKILL after statement ${killAt} of the schema script\n`);
      process.kill(process.pid, 'SIGKILL');
    }
  } catch (err) {
    sanitizeMysqlError(err, '(tenant schema script)');
    throw err;
  } finally {
    await conn.end().catch(() => conn.destroy());
  }
}

/** Whether `knex`'s database has no table or view (the script runs only on an empty database). */
export async function isEmptyDatabase(knex: Knex): Promise<boolean> {
  const [rows] = (await knex.raw('SHOW FULL TABLES')) as [unknown[]];
  return rows.length === 0;
}

/**
 * Empties a database an interrupted script left, so that it is made again from scratch.
 * Such a database is told by its migrations table: more than one migration `started` (the
 * migrator starts one at a time; only the script records them all before its first
 * `CREATE TABLE`), and the script runs only on an empty database, so every table in it
 * is the script's. The tables are dropped with foreign key checks off (a `down` of a later
 * migration could not run on the prefix of the script: it expects the earlier tables),
 * the migrations table last, so a crash while dropping is found again by the next run.
 * @param knex a one-connection Knex on the tenant database (session settings span its statements)
 * @returns the tables dropped (empty when the database was not left by a script)
 * @throws ConflictError `SCHEMA_SCRIPT_LEFTOVER` when a table the migrations do not make is there
 */
export async function resetInterruptedScript(knex: Knex, migrations: readonly LoadedMigration[]): Promise<string[]> {
  let started: string[];
  try {
    started = (await knex(MIGRATIONS_TABLE).where({ state: 'started' }).pluck('name')) as string[];
  } catch (err) {
    if (mysqlErrno(err) === MysqlErrno.NO_SUCH_TABLE) return [];
    throw err;
  }
  if (started.length < 2) return [];
  const [rows] = (await knex.raw("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")) as [Array<Record<string, string>>];
  const present = rows.map((r) => Object.values(r)[0]!);
  const known = expectedTables(
    [...migrations],
    migrations.map((m) => m.name),
  );
  const unknown = present.filter((t) => !known.has(t));
  if (unknown.length) {
    throw new ConflictError(
      `an interrupted schema script left the database with tables its migrations do not make (${unknown.join(', ')}): not dropped`,
      'SCHEMA_SCRIPT_LEFTOVER',
    );
  }
  const tables = present.filter((t) => t !== MIGRATIONS_TABLE);
  await knex.raw('SET FOREIGN_KEY_CHECKS = 0');
  try {
    for (const t of tables) await knex.raw('DROP TABLE IF EXISTS ??', [t]);
    await knex.raw('DROP TABLE IF EXISTS ??', [MIGRATIONS_TABLE]);
  } finally {
    await knex.raw('SET FOREIGN_KEY_CHECKS = 1');
  }
  return [...tables, MIGRATIONS_TABLE];
}
