/**
 * Tenant: leads. `status` is one of new, contacted, qualified, unqualified, converted (only
 * the convert sets `converted`, with `contact_id`, `company_id`, `deal_id` and
 * `converted_at`); `score` is 0-100; soft-deleted (`deleted_at`). Indexes:
 * `leads_search_ft` (FULLTEXT on full_name, email, company_name: the list's `q`),
 * `leads_status_idx`, `leads_source_idx`, `leads_owner_idx`, `leads_score_idx`,
 * `leads_created_idx` (default sort), `leads_updated_idx`. One statement: `down` drops the
 * table if `up` got as far as making it.
 */
import { createTableInline, datetime, innodb, timestamps } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['leads'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await createTableInline(knex, 'leads', (t) => {
    innodb(t);
    t.bigIncrements('id').primary();
    t.string('full_name', 200).notNullable();
    t.string('email', 254).nullable();
    t.string('phone', 15).nullable();
    t.string('company_name', 200).nullable();
    t.enu('source', ['website', 'referral', 'event', 'cold-call', 'social', 'other']).notNullable().defaultTo('other');
    t.enu('status', ['new', 'contacted', 'qualified', 'unqualified', 'converted']).notNullable().defaultTo('new');
    t.tinyint('score').unsigned().notNullable().defaultTo(0);
    t.bigInteger('owner_id').unsigned().nullable().references('id').inTable('users');
    t.text('notes').nullable();
    t.bigInteger('contact_id').unsigned().nullable().references('id').inTable('contacts');
    t.bigInteger('company_id').unsigned().nullable().references('id').inTable('companies');
    t.bigInteger('deal_id').unsigned().nullable().references('id').inTable('deals');
    datetime(t, 'converted_at');
    t.integer('version').unsigned().notNullable().defaultTo(1);
    timestamps(t, knex);
    datetime(t, 'deleted_at');
    t.index(['full_name', 'email', 'company_name'], 'leads_search_ft', { indexType: 'FULLTEXT' });
    t.index(['status'], 'leads_status_idx');
    t.index(['source'], 'leads_source_idx');
    t.index(['owner_id'], 'leads_owner_idx');
    t.index(['score'], 'leads_score_idx');
    t.index(['created_at'], 'leads_created_idx');
    t.index(['updated_at'], 'leads_updated_idx');
  });
}

/** Undoes any prefix of `up`: drops the table only if `up` got as far as making it. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('leads');
}
