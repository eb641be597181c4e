/**
 * Tenant: deals. Amount is DECIMAL(15,2) (sent and returned as a string), currency ISO
 * 4217. Soft-deleted; a deleted company keeps its deals' reference. Indexes:
 * `deals_stage_idx`, `deals_status_idx`, `deals_owner_idx`, `deals_company_idx`,
 * `deals_contact_idx`, `deals_close_idx` (expected close date ranges),
 * `deals_amount_idx` (amount ranges), `deals_created_idx`.
 */
import { createTableInline, datetime, innodb, timestamps } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['deals'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await createTableInline(knex, 'deals', (t) => {
    innodb(t);
    t.bigIncrements('id').primary();
    t.string('title', 200).notNullable();
    t.decimal('amount', 15, 2).notNullable();
    t.specificType('currency', 'CHAR(3)').notNullable();
    t.bigInteger('stage_id').unsigned().notNullable().references('id').inTable('pipeline_stages');
    t.bigInteger('company_id').unsigned().nullable().references('id').inTable('companies');
    t.bigInteger('contact_id').unsigned().nullable().references('id').inTable('contacts');
    t.bigInteger('owner_id').unsigned().nullable().references('id').inTable('users');
    t.date('expected_close_date').nullable();
    t.enu('status', ['open', 'won', 'lost']).notNullable().defaultTo('open');
    t.integer('version').unsigned().notNullable().defaultTo(1);
    timestamps(t, knex);
    datetime(t, 'deleted_at');
    t.index(['stage_id'], 'deals_stage_idx');
    t.index(['status'], 'deals_status_idx');
    t.index(['owner_id'], 'deals_owner_idx');
    t.index(['company_id'], 'deals_company_idx');
    t.index(['contact_id'], 'deals_contact_idx');
    t.index(['expected_close_date'], 'deals_close_idx');
    t.index(['amount'], 'deals_amount_idx');
    t.index(['created_at'], 'deals_created_idx');
  });
}

/** Undoes any prefix of `up`: drops the table only if `up` got as far as making it. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('deals');
}
