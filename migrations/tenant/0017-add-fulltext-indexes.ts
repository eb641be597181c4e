/**
 * Tenant: InnoDB FULLTEXT indexes for `q` (src/crm/search.ts), one per searched table:
 * `companies_search_ftx` (name, industry, website), `contacts_search_ftx` (full_name,
 * email, job_title) and `deals_search_ftx` (title). A `MATCH` must name exactly the columns
 * of one index, so each index covers all the searched columns of its table. The first
 * FULLTEXT index of a table rebuilds it (InnoDB adds its hidden `FTS_DOC_ID`), so this
 * takes a while on large tenants. One index per statement; `down` drops each only if it
 * exists (any prefix of `up`).
 */
import { hasIndex } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

/** table -> [index, columns], in the order `up` makes them. */
const INDEXES: Array<[string, string, string[]]> = [
  ['companies', 'companies_search_ftx', ['name', 'industry', 'website']],
  ['contacts', 'contacts_search_ftx', ['full_name', 'email', 'job_title']],
  ['deals', 'deals_search_ftx', ['title']],
];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  for (const [table, index, columns] of INDEXES) {
    await knex.raw(`ALTER TABLE ?? ADD FULLTEXT INDEX ?? (${columns.map(() => '??').join(', ')})`, [table, index, ...columns]);
  }
}

/** Undoes any prefix of `up`, the newest index first. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  for (const [table, index] of [...INDEXES].reverse()) {
    if (await hasIndex(knex, table, index)) await knex.raw('ALTER TABLE ?? DROP INDEX ??', [table, index]);
  }
}
