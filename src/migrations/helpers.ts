import type { Knex } from 'knex';
import { MysqlErrno, mysqlErrno } from '../lib/knex.js';

/** `created_at` and `updated_at` as DATETIME(3) in UTC, set by MySQL (ms precision). */
export function timestamps(t: Knex.CreateTableBuilder, knex: Knex): void {
  t.specificType('created_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
  t.specificType('updated_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)'));
}

/** A nullable DATETIME(3) column. */
export function datetime(t: Knex.CreateTableBuilder | Knex.AlterTableBuilder, name: string): Knex.ColumnBuilder {
  return t.specificType(name, 'DATETIME(3)').nullable();
}

/** Table options every Silo table uses: InnoDB, utf8mb4. */
export function innodb(t: Knex.CreateTableBuilder): void {
  t.engine('InnoDB');
  t.charset('utf8mb4');
  t.collate('utf8mb4_unicode_ci');
}

/** Clauses of knex's follow-up `ALTER TABLE ... ADD` statements that a CREATE TABLE body accepts. */
const INLINE_CLAUSE = /^(index|unique|constraint|primary key|fulltext|spatial)\b/i;

/** Index of the `)` closing the `(` at `open`, skipping quoted names and strings. */
function matchingParen(sql: string, open: number): number {
  let depth = 0;
  for (let i = open; i < sql.length; i++) {
    const c = sql[i];
    if (c === '`' || c === "'" || c === '"') {
      const end = sql.indexOf(c, i + 1);
      if (end < 0) return -1;
      i = end;
    } else if (c === '(') {
      depth++;
    } else if (c === ')' && --depth === 0) {
      return i;
    }
  }
  return -1;
}

/**
 * Creates a table with one `CREATE TABLE` statement. Knex's MySQL dialect emits every
 * index, unique key and foreign key of a new table as its own `ALTER TABLE ... ADD` after
 * the `CREATE TABLE` (36 extra DDL statements for the tenant schema, most of a tenant's
 * provisioning time); a CREATE TABLE body accepts the same definitions (MySQL 8.4
 * §15.1.20 "CREATE TABLE Statement": `INDEX`, `UNIQUE`, `[CONSTRAINT] FOREIGN KEY`), so
 * they are moved into it. The resulting table is the same (names, columns, keys). Any
 * statement that cannot be inlined runs after the CREATE TABLE, as knex would run it.
 * @param build the usual knex table builder callback
 */
export async function createTableInline(knex: Knex, name: string, build: (t: Knex.CreateTableBuilder) => void): Promise<void> {
  const statements = knex.schema.createTable(name, build).toSQL() as Array<{ sql: string; bindings: readonly unknown[] }>;
  const [create, ...rest] = statements;
  const quoted = `\`${name}\``;
  const open = create ? create.sql.indexOf('(', create.sql.indexOf(quoted) + quoted.length) : -1;
  const close = create && open >= 0 ? matchingParen(create.sql, open) : -1;
  if (!create || !/^create table /i.test(create.sql) || close < 0 || create.bindings.length) {
    for (const s of statements) await knex.raw(s.sql, s.bindings as Knex.RawBinding[]);
    return;
  }
  const prefix = `alter table ${quoted} add `;
  const inline: string[] = [];
  const after: typeof statements = [];
  for (const s of rest) {
    const clause = s.sql.toLowerCase().startsWith(prefix) ? s.sql.slice(prefix.length) : '';
    if (clause && INLINE_CLAUSE.test(clause) && !s.bindings.length) inline.push(clause);
    else after.push(s);
  }
  const sql = inline.length ? `${create.sql.slice(0, close)}, ${inline.join(', ')}${create.sql.slice(close)}` : create.sql;
  await knex.raw(sql);
  for (const s of after) await knex.raw(s.sql, s.bindings as Knex.RawBinding[]);
}

/**
 * Whether `table` (of the connection's current database) has an index named `index`
 * (`SHOW INDEX`; false when the table does not exist either), so that a `down` drops an
 * index only when its `up` got as far as making it.
 */
export async function hasIndex(knex: Knex, table: string, index: string): Promise<boolean> {
  try {
    const [rows] = (await knex.raw('SHOW INDEX FROM ?? WHERE Key_name = ?', [table, index])) as [unknown[]];
    return rows.length > 0;
  } catch (err) {
    if (mysqlErrno(err) === MysqlErrno.NO_SUCH_TABLE) return false;
    throw err;
  }
}
