/**
 * Tenant: the activity log, written in the same transaction as each change (create,
 * update, delete, restore) of a company, contact, deal or user. `changes` is JSON:
 * `{ field: { old, new } }`. Indexes: `activity_entity_idx` (history of one record),
 * `activity_created_idx` (newest first), `activity_user_idx`.
 */
import { createTableInline, innodb } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['activity_log'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await createTableInline(knex, 'activity_log', (t) => {
    innodb(t);
    t.bigIncrements('id').primary();
    t.bigInteger('user_id').unsigned().nullable();
    t.enu('action', ['create', 'update', 'delete', 'restore']).notNullable();
    t.string('entity', 32).notNullable();
    t.bigInteger('entity_id').unsigned().notNullable();
    t.json('changes').nullable();
    t.specificType('created_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.index(['entity', 'entity_id', 'id'], 'activity_entity_idx');
    t.index(['created_at'], 'activity_created_idx');
    t.index(['user_id'], 'activity_user_idx');
  });
}

/** Undoes any prefix of `up`: drops the table only if `up` got as far as making it. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('activity_log');
}
