/**
 * Tenant: companies. Soft-deleted (`deleted_at`); a name is unique among live companies,
 * enforced by MySQL through a stored generated column that is NULL for deleted rows
 * (NULLs never collide in a UNIQUE index). Indexes: `companies_live_name_uq` (name
 * uniqueness, name lookups and sort), `companies_industry_idx`, `companies_country_idx`,
 * `companies_created_idx` (default sort).
 */
import { createTableInline, datetime, innodb, timestamps } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['companies'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await createTableInline(knex, 'companies', (t) => {
    innodb(t);
    t.bigIncrements('id').primary();
    t.string('name', 200).notNullable();
    t.string('industry', 100).nullable();
    t.specificType('country', 'CHAR(2)').nullable();
    t.string('website', 2048).nullable();
    t.string('phone', 15).nullable();
    t.integer('version').unsigned().notNullable().defaultTo(1);
    timestamps(t, knex);
    datetime(t, 'deleted_at');
    t.specificType('live_name', 'VARCHAR(200) GENERATED ALWAYS AS (IF(deleted_at IS NULL, name, NULL)) STORED');
    t.unique(['live_name'], { indexName: 'companies_live_name_uq' });
    t.index(['industry'], 'companies_industry_idx');
    t.index(['country'], 'companies_country_idx');
    t.index(['created_at'], 'companies_created_idx');
  });
}

/** Undoes any prefix of `up`: drops the table only if `up` got as far as making it. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('companies');
}
