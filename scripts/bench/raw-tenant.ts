/**
 * Tenant databases made with plain SQL, for the benchmarks: the final state of a tenant
 * Silo provisioned is read back (`SHOW CREATE TABLE` of every table, and the rows its
 * migrations and seed wrote, `schema_migrations` included) and replayed on a fresh
 * database over one admin connection, with no Silo code in the way. `provision` uses it
 * as its baseline; `migrate` uses it to make many real tenants quickly.
 */
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { parseMysqlUrl } from '../../src/config.js';
import { grantPattern } from '../../src/provisioning/grants.js';
import { TENANT_PRIVILEGES } from '../../src/provisioning/mysql-admin.js';
import { MYSQL_URL } from './common.js';

/** One table of a template: its DDL and the rows to copy (generated columns left out). */
export interface TemplateTable {
  name: string;
  create: string;
  columns: string[];
  rows: unknown[][];
}

/** The final state of a tenant database, replayable with {@link applyTemplate}. */
export interface DatabaseTemplate {
  database: string;
  tables: TemplateTable[];
}

/** Where {@link applyTemplate} writes: a new database and the account that may use it. */
export interface RawTarget {
  database: string;
  user: string;
  host: string;
  password: string;
}

/** A single admin connection (no default database), in UTC like Silo's. */
export function adminConnection(): Promise<Connection> {
  const s = parseMysqlUrl(MYSQL_URL);
  return mysql.createConnection({ host: s.host, port: s.port, user: s.user, password: s.password, charset: 'utf8mb4', timezone: 'Z', supportBigNumbers: true });
}

/**
 * Reads a template from a database.
 * @param withRows tables whose rows are copied too (default: every table)
 */
export async function readTemplate(conn: Connection, database: string, withRows: (table: string) => boolean = () => true): Promise<DatabaseTemplate> {
  const [names] = await conn.query<RowDataPacket[]>(
    "SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
    [database],
  );
  const tables: TemplateTable[] = [];
  for (const { name } of names as Array<{ name: string }>) {
    const [[show]] = await conn.query<RowDataPacket[]>('SHOW CREATE TABLE ??.??', [database, name]);
    // The counter is state, not schema: a fresh table starts at 1 (rows copied below move it on).
    const create = String(show!['Create Table']).replace(/ AUTO_INCREMENT=\d+/, '');
    const [cols] = await conn.query<RowDataPacket[]>(
      "SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND EXTRA NOT LIKE '%GENERATED%' ORDER BY ORDINAL_POSITION",
      [database, name],
    );
    const columns = (cols as Array<{ c: string }>).map((r) => r.c);
    let rows: unknown[][] = [];
    if (withRows(name)) {
      const [data] = await conn.query<RowDataPacket[][]>({ sql: 'SELECT ?? FROM ??.??', rowsAsArray: true }, [columns, database, name]);
      rows = (data as unknown[][]).map((r) => r.map(sqlValue));
    }
    tables.push({ name, create, columns, rows });
  }
  return { database, tables };
}

/** JSON read back as an object goes back as text; everything else as it is. */
function sqlValue(v: unknown): unknown {
  return v !== null && typeof v === 'object' && !(v instanceof Date) && !Buffer.isBuffer(v) ? JSON.stringify(v) : v;
}

/**
 * Creates `target.database` from a template and its account, as plain SQL on `conn`:
 * CREATE DATABASE; USE; FOREIGN_KEY_CHECKS=0; every CREATE TABLE and multi-row INSERT
 * (any order: no foreign key is checked); FOREIGN_KEY_CHECKS=1; CREATE USER; GRANT of
 * the tenant privileges. Leaves `conn` on the new database.
 */
export async function applyTemplate(conn: Connection, target: RawTarget, template: DatabaseTemplate): Promise<void> {
  await conn.query('CREATE DATABASE ?? CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci', [target.database]);
  await conn.query('USE ??', [target.database]);
  await conn.query('SET FOREIGN_KEY_CHECKS = 0');
  try {
    for (const t of template.tables) await conn.query(t.create);
    for (const t of template.tables) if (t.rows.length) await conn.query('INSERT INTO ?? (??) VALUES ?', [t.name, t.columns, t.rows]);
  } finally {
    await conn.query('SET FOREIGN_KEY_CHECKS = 1');
  }
  await conn.query('CREATE USER ?@? IDENTIFIED BY ? WITH MAX_USER_CONNECTIONS 20', [target.user, target.host, target.password]);
  // Escaped as Silo escapes it: `_` is a wildcard in a database-level GRANT.
  await conn.query(`GRANT ${TENANT_PRIVILEGES.join(', ')} ON \`${grantPattern(target.database)}\`.* TO ?@?`, [target.user, target.host]);
}
