/**
 * Error text that may be stored and shown: in operations, tenants' status reasons, CLI
 * output, API answers and logs. A MySQL error message quotes values from the statement
 * ("Duplicate entry 'jane@x' for key ...", "... near 'IDENTIFIED BY 'secret'' at line
 * 1", "Incorrect integer value: 'abc'"), and a statement's bound values may be a
 * password, a hash or personal data. So quoted literals in server messages are replaced
 * by `'…'`, except those that name an object (a key, column, table, database, account):
 * the names stay, the values go.
 */

/** Words after which a quoted literal in a MySQL message names an object, not a value. */
const NAMES_AN_OBJECT = /(?:\b(?:key|column|table|database|user|for|index|constraint|procedure|function|field|schema|role|variable|plugin|engine)|@)\s*$/i;

/** Single-quoted literals in MySQL messages, with `''` and `\'` escapes inside. */
const QUOTED = /'(?:[^'\\]|\\.|'')*'/g;

/**
 * Replaces the quoted values in a MySQL server message with `'…'`, keeping quoted object
 * names (after "key", "column", "table", "database", "for", `@`, ...).
 * @returns the message, safe to store and show
 */
export function redactServerMessage(message: string): string {
  // A syntax error quotes the rest of the statement, quotes and all: drop all of it.
  const withoutNear = message.replace(/near '[\s\S]*' at line (\d+)/g, "near '…' at line $1");
  return withoutNear.replace(QUOTED, (quoted, offset: number) => (NAMES_AN_OBJECT.test(withoutNear.slice(Math.max(0, offset - 24), offset)) ? quoted : "'…'"));
}

/** What {@link sanitizeMysqlError} reads and rewrites of a mysql2 error. */
interface MysqlErrorFields {
  message?: unknown;
  sqlMessage?: unknown;
  sql?: unknown;
  errno?: unknown;
}

/**
 * Rewrites a mysql2 error in place so that it carries no bound value: `sql` becomes the
 * statement with its `?` placeholders (not the values mysql2 inlined), `message` and
 * `sqlMessage` lose their quoted values ({@link redactServerMessage}). Errors without a
 * MySQL errno (connection errors) are left as they are.
 * @param placeholderSql the statement as sent, with `?` for each bound value
 */
export function sanitizeMysqlError(err: unknown, placeholderSql: string | undefined): void {
  if (typeof err !== 'object' || err === null) return;
  const e = err as MysqlErrorFields;
  if (typeof e.errno !== 'number') return;
  if (typeof e.sqlMessage === 'string') e.sqlMessage = redactServerMessage(e.sqlMessage);
  if (typeof e.message === 'string') e.message = redactServerMessage(e.message);
  if ('sql' in e) e.sql = placeholderSql ?? '(statement withheld)';
}

/** Longest error text kept in the catalog (`operations.error`, `tenants.status_reason`), characters. */
export const MAX_ERROR_TEXT = 1000;

/**
 * The one text of an error that may reach operations, status reasons, reports and
 * answers: its message (MySQL values redacted again, whatever path it took), cut to
 * {@link MAX_ERROR_TEXT} characters.
 */
export function safeErrorText(err: unknown): string {
  const message = err instanceof Error ? err.message || err.name : String(err);
  return redactServerMessage(message).slice(0, MAX_ERROR_TEXT);
}
