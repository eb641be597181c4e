/**
 * Database-level grant patterns and what a tenant account holds.
 *
 * In a database-level `GRANT ... ON db.*` (and in `mysql.db.Db`), `_` matches any one
 * character and `%` any run of characters; `\_` and `\%` are the literal characters
 * (MySQL 8.4 Reference Manual §15.7.1.6 "GRANT Statement", "The _ and % wildcards are
 * permitted when specifying database names in GRANT statements that grant privileges at
 * the database level"; §8.2.6 "Access Control, Stage 2: Request Verification"). MariaDB
 * behaves the same. So `tenant_acme_co` granted as it is also opens `tenantXacme1co`:
 * every GRANT/REVOKE Silo makes uses {@link grantPattern}, and every check applies
 * {@link grantPatternLiteral}.
 */
import type { Knex } from 'knex';
import { assertSafeIdentifier } from '../lib/identifiers.js';
import { mysqlErrno, MysqlErrno } from '../lib/knex.js';

/**
 * The pattern that matches `database` and nothing else: `_` and `%` escaped as `\_`, `\%`.
 * @throws ValidationError `INVALID_IDENTIFIER` for a name outside `[A-Za-z0-9_]{1,64}`
 */
export function grantPattern(database: string): string {
  return assertSafeIdentifier(database).replace(/[_%]/g, (c) => `\\${c}`);
}

/**
 * The one database name a grant pattern matches, or undefined when it has a wildcard
 * (an unescaped `_` or `%`) and so may match others.
 */
export function grantPatternLiteral(pattern: string): string | undefined {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\' && i + 1 < pattern.length) out += pattern[++i]!;
    else if (c === '_' || c === '%') return undefined;
    else out += c;
  }
  return out;
}

/**
 * Back-quotes a name read from the grant tables for REVOKE (MySQL §11.2: a backtick
 * inside is doubled; backslashes stay, which is what keeps an escaped pattern escaped).
 */
function quoteStored(name: string): string {
  if (name.length === 0 || name.length > 64 || name.includes('\u0000')) throw new Error(`unexpected name in the grant tables: ${JSON.stringify(name)}`);
  return `\`${name.replaceAll('`', '``')}\``;
}

/** A privilege keyword as the server lists it (`SELECT`, `CREATE TEMPORARY TABLES`, ...): checked before it reaches SQL. */
function privilegeKeyword(p: string): string {
  if (!/^[A-Z][A-Z ]{1,40}$/.test(p)) throw new Error(`unexpected privilege name ${JSON.stringify(p)}`);
  return p;
}

/** One change that brings an account back to exactly its tenant grant. */
export interface GrantFix {
  /** What is wrong, for reports: e.g. `global PROCESS`, `schema tenant_acme_co (wildcard)`, `limit 0 -> 20`. */
  problem: string;
  /** The statement that fixes it, with its value bindings (account user and host). */
  sql: string;
  bindings: Array<string | number>;
}

/** The privileges a tenant account holds on its own database, with the statement that revokes others. */
export interface TenantGrantState {
  /** DML privileges missing on the escaped pattern of its own database. */
  missing: string[];
  /** Everything beyond it, each with its REVOKE (or ALTER USER for the limit). */
  fixes: GrantFix[];
}

/** The privileges on its own database a tenant account must hold. */
type Dml = readonly string[];

/**
 * Reads what an account holds (global, database, table, column and routine privileges,
 * roles, connection limit) and lists every difference from "exactly `dml` on its own
 * database, through the escaped pattern, with MAX_USER_CONNECTIONS `limit`".
 * A database row is kept only when its pattern has no wildcard and names the tenant's
 * own database.
 */
export async function inspectTenantGrants(
  knex: Knex,
  account: { user: string; host: string },
  database: string,
  dml: Dml,
  limit: number,
): Promise<TenantGrantState> {
  const grantee = `'${account.user}'@'${account.host}'`;
  const who = [account.user, account.host];
  const own = grantPattern(database);
  const fixes: GrantFix[] = [];

  const global: Array<{ PRIVILEGE_TYPE: string; IS_GRANTABLE: string }> = await knex('information_schema.USER_PRIVILEGES')
    .where({ GRANTEE: grantee })
    .select('PRIVILEGE_TYPE', 'IS_GRANTABLE');
  const globalExtra = global.filter((g) => g.PRIVILEGE_TYPE !== 'USAGE');
  if (globalExtra.length) {
    fixes.push({ problem: `global ${globalExtra.map((g) => g.PRIVILEGE_TYPE).join(', ')}`, sql: 'REVOKE ALL PRIVILEGES ON *.* FROM ?@?', bindings: who });
  }
  if (global.some((g) => g.IS_GRANTABLE === 'YES')) fixes.push({ problem: 'global GRANT OPTION', sql: 'REVOKE GRANT OPTION ON *.* FROM ?@?', bindings: who });

  const schema: Array<{ TABLE_SCHEMA: string; PRIVILEGE_TYPE: string; IS_GRANTABLE: string }> = await knex('information_schema.SCHEMA_PRIVILEGES')
    .where({ GRANTEE: grantee })
    .select('TABLE_SCHEMA', 'PRIVILEGE_TYPE', 'IS_GRANTABLE');
  const byPattern = new Map<string, { privileges: Set<string>; grantable: boolean }>();
  for (const r of schema) {
    const entry = byPattern.get(r.TABLE_SCHEMA) ?? { privileges: new Set<string>(), grantable: false };
    entry.privileges.add(r.PRIVILEGE_TYPE);
    entry.grantable ||= r.IS_GRANTABLE === 'YES';
    byPattern.set(r.TABLE_SCHEMA, entry);
  }
  for (const [pattern, { privileges, grantable }] of byPattern) {
    const target = `${quoteStored(pattern)}.*`;
    if (pattern !== own && grantPatternLiteral(pattern) !== database) {
      const why = grantPatternLiteral(pattern) === undefined ? 'wildcard' : 'another database';
      fixes.push({ problem: `schema ${pattern} (${why})`, sql: `REVOKE ALL PRIVILEGES ON ${target} FROM ?@?`, bindings: who });
      if (grantable) fixes.push({ problem: `schema ${pattern} GRANT OPTION`, sql: `REVOKE GRANT OPTION ON ${target} FROM ?@?`, bindings: who });
      continue;
    }
    // Its own database, spelt without wildcards: keep DML on the canonical pattern only.
    const extra = pattern === own ? [...privileges].filter((p) => !dml.includes(p)) : [...privileges];
    if (extra.length) {
      fixes.push({
        problem: `schema ${pattern} ${extra.join(', ')}`,
        sql: `REVOKE ${extra.map(privilegeKeyword).join(', ')} ON ${target} FROM ?@?`,
        bindings: who,
      });
    }
    if (grantable) fixes.push({ problem: `schema ${pattern} GRANT OPTION`, sql: `REVOKE GRANT OPTION ON ${target} FROM ?@?`, bindings: who });
  }
  const ownPrivileges = byPattern.get(own)?.privileges ?? new Set<string>();
  const missing = dml.filter((p) => !ownPrivileges.has(p));

  // Table and column privileges: Silo never grants them. REVOKE ALL on a table also
  // removes its column privileges; columns of a table with no table-level row are revoked by name.
  const tables: Array<{ TABLE_SCHEMA: string; TABLE_NAME: string; IS_GRANTABLE: string }> = await knex('information_schema.TABLE_PRIVILEGES')
    .where({ GRANTEE: grantee })
    .select('TABLE_SCHEMA', 'TABLE_NAME', 'IS_GRANTABLE');
  const tableKey = (r: { TABLE_SCHEMA: string; TABLE_NAME: string }) => `${quoteStored(r.TABLE_SCHEMA)}.${quoteStored(r.TABLE_NAME)}`;
  const revokedTables = new Set<string>();
  for (const r of tables) {
    const target = tableKey(r);
    if (!revokedTables.has(target))
      fixes.push({ problem: `table ${r.TABLE_SCHEMA}.${r.TABLE_NAME}`, sql: `REVOKE ALL PRIVILEGES ON ${target} FROM ?@?`, bindings: who });
    revokedTables.add(target);
    if (r.IS_GRANTABLE === 'YES')
      fixes.push({ problem: `table ${r.TABLE_SCHEMA}.${r.TABLE_NAME} GRANT OPTION`, sql: `REVOKE GRANT OPTION ON ${target} FROM ?@?`, bindings: who });
  }
  const columns: Array<{ TABLE_SCHEMA: string; TABLE_NAME: string; COLUMN_NAME: string; PRIVILEGE_TYPE: string }> = await knex(
    'information_schema.COLUMN_PRIVILEGES',
  )
    .where({ GRANTEE: grantee })
    .select('TABLE_SCHEMA', 'TABLE_NAME', 'COLUMN_NAME', 'PRIVILEGE_TYPE');
  for (const r of columns) {
    const target = tableKey(r);
    if (revokedTables.has(target)) continue;
    fixes.push({
      problem: `column ${r.TABLE_SCHEMA}.${r.TABLE_NAME}.${r.COLUMN_NAME} ${r.PRIVILEGE_TYPE}`,
      sql: `REVOKE ${privilegeKeyword(r.PRIVILEGE_TYPE)} (${quoteStored(r.COLUMN_NAME)}) ON ${target} FROM ?@?`,
      bindings: who,
    });
  }

  const routines: Array<{ Db: string; Routine_name: string; Routine_type: string }> = await knex('mysql.procs_priv')
    .where({ User: account.user, Host: account.host })
    .select('Db', 'Routine_name', 'Routine_type');
  for (const r of routines) {
    const kind = r.Routine_type === 'FUNCTION' ? 'FUNCTION' : 'PROCEDURE';
    const target = `${kind} ${quoteStored(r.Db)}.${quoteStored(r.Routine_name)}`;
    fixes.push({ problem: `routine ${r.Db}.${r.Routine_name}`, sql: `REVOKE EXECUTE, ALTER ROUTINE, GRANT OPTION ON ${target} FROM ?@?`, bindings: who });
  }

  for (const role of await grantedRoles(knex, account)) {
    fixes.push({ problem: `role ${role}`, sql: 'REVOKE ? FROM ?@?', bindings: [role, ...who] });
  }

  const row: { max_user_connections: number | string } | undefined = await knex('mysql.user')
    .where({ User: account.user, Host: account.host })
    .first('max_user_connections');
  const current = Number(row?.max_user_connections ?? limit);
  if (row && current !== limit) {
    fixes.push({ problem: `limit ${current} -> ${limit}`, sql: 'ALTER USER ?@? WITH MAX_USER_CONNECTIONS ?', bindings: [...who, limit] });
  }
  return { missing, fixes };
}

/** Roles granted to an account: MariaDB's `mysql.roles_mapping`, MySQL 8's `mysql.role_edges`. */
async function grantedRoles(knex: Knex, account: { user: string; host: string }): Promise<string[]> {
  try {
    const rows: Array<{ Role: string }> = await knex('mysql.roles_mapping').where({ User: account.user, Host: account.host }).select('Role');
    return rows.map((r) => r.Role);
  } catch (err) {
    if (mysqlErrno(err) !== MysqlErrno.NO_SUCH_TABLE) throw err;
  }
  const rows: Array<{ FROM_USER: string }> = await knex('mysql.role_edges').where({ TO_USER: account.user, TO_HOST: account.host }).select('FROM_USER');
  return rows.map((r) => r.FROM_USER);
}
