/**
 * `q` search over an InnoDB FULLTEXT index, with a LIKE fallback for what the index cannot
 * find. The text is split on whitespace into terms; a term made only of letters and digits,
 * at least `innodb_ft_min_token_size` characters long and not an InnoDB default stopword is
 * a prefix word of a `MATCH ... AGAINST (... IN BOOLEAN MODE)` (`+term*`: every such term
 * must start a word); any other term (shorter, a stopword, or with punctuation such as an
 * email address) must appear as a substring of one of the columns (`LIKE '%term%'`). Every
 * term must match. Terms reach MySQL only as bound values; boolean-mode operators cannot
 * be sent (only letters and digits go into the AGAINST string).
 */
import type { Knex } from 'knex';
import { likeContains } from './common.js';

/** InnoDB's default stopword list (INFORMATION_SCHEMA.INNODB_FT_DEFAULT_STOPWORD, MySQL 8.4 §14.9.4). */
const STOPWORDS = new Set(
  'a about an are as at be by com de en for from how i in is it la of on or that the this to was what when where who will with und www'.split(' '),
);

/** `innodb_ft_min_token_size` per pool (a Knex of one account on one server). */
const minTokenSizes = new WeakMap<Knex, Promise<number>>();

/**
 * The server's `innodb_ft_min_token_size` (characters), read once per Knex and cached; 3
 * (InnoDB's default) when the server does not say. A failed read is not cached.
 */
export function ftMinTokenSize(knex: Knex): Promise<number> {
  let p = minTokenSizes.get(knex);
  if (!p) {
    p = (async () => {
      const [rows] = (await knex.raw('SELECT @@innodb_ft_min_token_size AS n')) as [Array<{ n: number | string | null }>];
      const n = Number(rows[0]?.n);
      return Number.isInteger(n) && n > 0 ? n : 3;
    })();
    p.catch(() => minTokenSizes.delete(knex));
    minTokenSizes.set(knex, p);
  }
  return p;
}

/** A search split into the boolean-mode expression (empty: no MATCH) and the terms for LIKE. */
export interface SearchPlan {
  match: string;
  like: string[];
}

/** Splits `q` into FULLTEXT and LIKE terms (see the module comment); at most 10 terms are used. */
export function planSearch(q: string, minTokenSize: number): SearchPlan {
  const terms = [...new Set(q.split(/\s+/u).filter(Boolean))].slice(0, 10);
  const words: string[] = [];
  const like: string[] = [];
  for (const term of terms) {
    const indexable = /^[\p{L}\p{N}]+$/u.test(term) && [...term].length >= minTokenSize && !STOPWORDS.has(term.toLowerCase());
    if (indexable) words.push(`+${term}*`);
    else like.push(term);
  }
  return { match: words.join(' '), like };
}

/**
 * Adds the search of `q` over `columns` to `query`.
 * @param columns the columns of the FULLTEXT index, in its order (MATCH must name exactly them)
 * @param minTokenSize the server's `innodb_ft_min_token_size` ({@link ftMinTokenSize})
 */
export function applySearch(query: Knex.QueryBuilder, q: string, columns: readonly string[], minTokenSize: number): void {
  const plan = planSearch(q, minTokenSize);
  if (plan.match) query.whereRaw(`MATCH(${columns.map(() => '??').join(', ')}) AGAINST (? IN BOOLEAN MODE)`, [...columns, plan.match]);
  for (const term of plan.like) {
    query.where((w) => {
      for (const c of columns) w.orWhere(c, 'like', likeContains(term));
    });
  }
}
