/**
 * Tenant: contacts, optionally of a company. Soft-deleted; an email is unique per
 * company among live contacts, enforced by MySQL: UNIQUE(company_key, email, live) where
 * `company_key` is the company id or 0 and `live` is 1 for live rows and NULL for
 * deleted ones. Indexes: `contacts_live_email_uq`, `contacts_email_idx` (email filter),
 * `contacts_company_idx` (company filter, cascade delete), `contacts_created_idx`.
 */
import { createTableInline, datetime, innodb, timestamps } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['contacts'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await createTableInline(knex, 'contacts', (t) => {
    innodb(t);
    t.bigIncrements('id').primary();
    t.bigInteger('company_id').unsigned().nullable().references('id').inTable('companies');
    t.string('full_name', 200).notNullable();
    t.string('email', 254).nullable();
    t.string('phone', 15).nullable();
    t.string('job_title', 200).nullable();
    t.integer('version').unsigned().notNullable().defaultTo(1);
    timestamps(t, knex);
    datetime(t, 'deleted_at');
    t.specificType('company_key', 'BIGINT UNSIGNED GENERATED ALWAYS AS (IFNULL(company_id, 0)) STORED');
    t.specificType('live', 'TINYINT GENERATED ALWAYS AS (IF(deleted_at IS NULL, 1, NULL)) STORED');
    t.unique(['company_key', 'email', 'live'], { indexName: 'contacts_live_email_uq' });
    t.index(['email'], 'contacts_email_idx');
    t.index(['company_id', 'deleted_at'], 'contacts_company_idx');
    t.index(['created_at'], 'contacts_created_idx');
  });
}

/** Undoes any prefix of `up`: drops the table only if `up` got as far as making it. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('contacts');
}
