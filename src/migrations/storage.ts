/**
 * Where umzug keeps the applied list: `schema_migrations` of the migrated database, one row
 * per migration, `state` `started` from before its `up` (or `down`) sends its first
 * statement until it has finished, then `applied` (a finished `down` deletes the row).
 * MySQL DDL commits statement by statement (MySQL 8.4 §15.3.3 "Statements That Cause an
 * Implicit Commit"), so a crash can stop a migration between two statements: the
 * `started` row is what tells the next run that the database holds some prefix of its `up`.
 */
import type { Knex } from 'knex';
import type { UmzugStorage } from 'umzug';
import { MysqlErrno, mysqlErrno } from '../lib/knex.js';

/** Name of the table that records applied migrations, in each migrated database. */
export const MIGRATIONS_TABLE = 'schema_migrations';

/** `state` of a row of {@link MIGRATIONS_TABLE}. */
export type MigrationState = 'started' | 'applied';

const STATE_COLUMN = "state ENUM('started', 'applied') NOT NULL DEFAULT 'applied'";
/** ER_DUP_FIELDNAME: another runner added the column first. */
const DUPLICATE_COLUMN = 1060;

/**
 * umzug storage in {@link MIGRATIONS_TABLE}, created on first use; a table made before
 * `state` existed gets the column (its rows, all finished, read `applied`).
 * `executed()` lists only `applied` migrations: a `started` one is pending, and the
 * runner undoes its prefix before applying it again.
 */
export class KnexStorage implements UmzugStorage<Knex> {
  constructor(private readonly knex: Knex) {}

  /** Set once the table is known to have its columns, so that each migration costs no extra statement. */
  private ensured = false;
  /** Migrations found `started` by the last {@link executed} call. */
  private started = new Set<string>();

  private async ensureTable(): Promise<void> {
    if (this.ensured) return;
    // SHOW COLUMNS, not information_schema: a server with many databases answers it at once.
    const columns = await this.columns();
    if (!columns) {
      await this.knex.raw(
        `CREATE TABLE IF NOT EXISTS ?? (name VARCHAR(255) NOT NULL PRIMARY KEY, applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), ${STATE_COLUMN}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
        [MIGRATIONS_TABLE],
      );
    } else if (!columns.includes('state')) {
      await this.knex.raw(`ALTER TABLE ?? ADD COLUMN ${STATE_COLUMN}`, [MIGRATIONS_TABLE]).catch((err: unknown) => {
        if (mysqlErrno(err) !== DUPLICATE_COLUMN) throw err;
      });
    }
    this.ensured = true;
  }

  /** Lower-case column names of the table, or undefined when it does not exist. */
  private async columns(): Promise<string[] | undefined> {
    try {
      const [rows] = (await this.knex.raw('SHOW COLUMNS FROM ??', [MIGRATIONS_TABLE])) as [Array<{ Field: string }>];
      return rows.map((r) => r.Field.toLowerCase());
    } catch (err) {
      if (mysqlErrno(err) === MysqlErrno.NO_SUCH_TABLE) return undefined;
      throw err;
    }
  }

  /** Records `name` as started: its `up` or `down` is about to send its first statement. */
  async logStarted(name: string): Promise<void> {
    await this.ensureTable();
    await this.knex(MIGRATIONS_TABLE).insert({ name, state: 'started' }).onConflict('name').merge(['state']);
  }

  /** Whether the last {@link executed} call found `name` started and not finished. */
  wasStarted(name: string): boolean {
    return this.started.has(name);
  }

  /** Records `name` as applied (umzug calls it once `up` has finished). */
  async logMigration({ name }: { name: string }): Promise<void> {
    await this.ensureTable();
    await this.knex(MIGRATIONS_TABLE)
      .insert({ name, state: 'applied' })
      .onConflict('name')
      .merge({ state: 'applied', applied_at: this.knex.raw('CURRENT_TIMESTAMP(3)') });
    this.started.delete(name);
  }

  /** Forgets `name` (umzug calls it once `down` has finished). */
  async unlogMigration({ name }: { name: string }): Promise<void> {
    await this.ensureTable();
    await this.knex(MIGRATIONS_TABLE).where({ name }).delete();
    this.started.delete(name);
  }

  /** Names of the applied migrations, sorted; remembers the started ones. */
  async executed(): Promise<string[]> {
    await this.ensureTable();
    const rows = (await this.knex(MIGRATIONS_TABLE).select('name', 'state').orderBy('name')) as Array<{ name: string; state: MigrationState }>;
    this.started = new Set(rows.filter((r) => r.state === 'started').map((r) => r.name));
    return rows.filter((r) => r.state === 'applied').map((r) => r.name);
  }
}
