/**
 * `q`, the search of the CRM lists, over InnoDB FULLTEXT indexes (tenant migration 0017)
 * with a `LIKE` fallback for the words a FULLTEXT index cannot find.
 *
 * The user's text is split into words on every character that is not a letter, a digit
 * or `_` (InnoDB's own word delimiters), so the boolean operators `+ - < > ( ) ~ * " @`
 * never reach `AGAINST`: they only separate words. Every word must match (AND):
 * - a word the index holds becomes `+word*` (a word of the column that starts with it) in
 *   one `MATCH(cols) AGAINST(? IN BOOLEAN MODE)`, the query bound as a value;
 * - a word shorter than the server's `innodb_ft_min_token_size`, longer than
 *   `innodb_ft_max_token_size`, or (when `innodb_ft_enable_stopword` is on) one of
 *   InnoDB's default stopwords is not in the index: it is matched with
 *   `col LIKE '%word%'` over the same columns (`%`, `_` and `\` escaped), which scans the
 *   rows the other conditions leave.
 * A text without any word (`%`, `--`) is looked for as it is, with one escaped `LIKE`.
 * So `q=ada lovelace` finds contacts with a word starting with "ada" and one starting
 * with "lovelace"; `q=al` finds "al" anywhere. Custom stopword tables
 * (`innodb_ft_server_stopword_table`) are not read: only the default list is known.
 * The results are in the requested `sort` (default newest first), not by relevance, so
 * pages are stable and a search sorts like any other list.
 */
import type { Knex } from 'knex';
import { likeContains } from './common.js';

/** The server's FULLTEXT settings that decide which words the index holds. */
export interface FulltextSettings {
  minTokenSize: number;
  maxTokenSize: number;
  stopwords: boolean;
}

/** InnoDB's default stopword list (INFORMATION_SCHEMA.INNODB_FT_DEFAULT_STOPWORD). */
export const INNODB_DEFAULT_STOPWORDS: ReadonlySet<string> = new Set(
  'a about an are as at be by com de en for from how i in is it la of on or that the this to was what when where who will with und www'.split(' '),
);

/** Settings per MySQL server (`host:port`), read once. */
const settingsByServer = new Map<string, Promise<FulltextSettings>>();

function serverKey(knex: Knex): string {
  const c = (knex.client as { config?: { connection?: unknown } }).config?.connection;
  if (c && typeof c === 'object') {
    const { host, port, socketPath } = c as { host?: string; port?: number; socketPath?: string };
    return socketPath ?? `${host ?? 'localhost'}:${port ?? 3306}`;
  }
  return 'default';
}

/**
 * The FULLTEXT settings of the server behind `knex`, read with one `SELECT @@...` the
 * first time per server and cached for the life of the process (they are read-only or
 * need a restart to change). A failed read is not cached.
 */
export function fulltextSettings(knex: Knex): Promise<FulltextSettings> {
  const key = serverKey(knex);
  let p = settingsByServer.get(key);
  if (!p) {
    p = (async () => {
      const [rows] = (await knex.raw(
        'SELECT @@innodb_ft_min_token_size AS min_size, @@innodb_ft_max_token_size AS max_size, @@innodb_ft_enable_stopword AS stopwords',
      )) as [Array<{ min_size: number | string; max_size: number | string; stopwords: number | string }>];
      const r = rows[0]!;
      return { minTokenSize: Number(r.min_size), maxTokenSize: Number(r.max_size), stopwords: Number(r.stopwords) === 1 };
    })();
    settingsByServer.set(key, p);
    p.catch(() => settingsByServer.delete(key));
  }
  return p;
}

/** A search split into what the FULLTEXT index answers and what `LIKE` answers. */
export interface SearchPlan {
  /** The boolean-mode query (`+ada* +lovelace*`), or null when no word is indexed. */
  against: string | null;
  /** Words matched with `LIKE '%word%'`. */
  like: string[];
}

/** Splits `q` into words and decides, word by word, FULLTEXT or LIKE (see the module comment). */
export function planSearch(q: string, s: FulltextSettings): SearchPlan {
  const words = [
    ...new Set(
      q
        .toLowerCase()
        .split(/[^\p{L}\p{N}_]+/u)
        .filter(Boolean),
    ),
  ];
  const indexed: string[] = [];
  const like: string[] = [];
  for (const w of words) {
    const n = [...w].length;
    if (n < s.minTokenSize || n > s.maxTokenSize || (s.stopwords && INNODB_DEFAULT_STOPWORDS.has(w))) like.push(w);
    else indexed.push(`+${w}*`);
  }
  // No word at all (`%`, `@@`): the text itself is looked for, literally, with LIKE.
  if (!words.length && q.trim()) like.push(q.trim());
  return { against: indexed.length ? indexed.join(' ') : null, like };
}

/**
 * Adds the search `q` to a query: a `MATCH(columns) AGAINST(? IN BOOLEAN MODE)` for the
 * indexed words and a `LIKE` over the same columns for each other word, all ANDed.
 * Synchronous (a query builder is thenable: it must not pass through an `await`), so the
 * caller reads the settings first with {@link fulltextSettings}.
 * @param columns exactly the columns of one FULLTEXT index, in its order (constants of the
 *   caller, never input), optionally qualified (`deals.title`)
 */
export function applySearch(q: Knex.QueryBuilder, settings: FulltextSettings, columns: readonly string[], text: string | undefined): void {
  if (!text) return;
  const plan = planSearch(text, settings);
  const ids = columns.map(() => '??').join(', ');
  if (plan.against !== null) q.whereRaw(`MATCH(${ids}) AGAINST(? IN BOOLEAN MODE)`, [...columns, plan.against]);
  for (const word of plan.like) {
    q.where((w) => {
      for (const c of columns) w.orWhere(c, 'like', likeContains(word));
    });
  }
}
