/**
 * Tenant: pipeline stages, with the default stages (data: inserts six rows when the
 * table is new). Index: `pipeline_stages_position_idx` (ordering).
 */
import { createTableInline, innodb, timestamps } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['pipeline_stages'];

/** Default stages of a new tenant: name, position, probability (%). */
export const DEFAULT_STAGES = [
  { name: 'Prospecting', position: 1, probability: 10 },
  { name: 'Qualification', position: 2, probability: 25 },
  { name: 'Proposal', position: 3, probability: 50 },
  { name: 'Negotiation', position: 4, probability: 75 },
  { name: 'Won', position: 5, probability: 100 },
  { name: 'Lost', position: 6, probability: 0 },
];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await createTableInline(knex, 'pipeline_stages', (t) => {
    innodb(t);
    t.bigIncrements('id').primary();
    t.string('name', 100).notNullable().unique('pipeline_stages_name_uq');
    t.integer('position').notNullable();
    t.tinyint('probability').unsigned().notNullable();
    t.integer('version').unsigned().notNullable().defaultTo(1);
    timestamps(t, knex);
    t.index(['position'], 'pipeline_stages_position_idx');
  });
  await knex('pipeline_stages').insert(DEFAULT_STAGES);
}

/**
 * Undoes any prefix of `up`: drops the table only if `up` got as far as making it. The
 * stages `up` inserted go with it: the table is this migration's own, so nothing but
 * what `up` (and the application since) put there is lost.
 */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('pipeline_stages');
}
