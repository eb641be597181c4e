/**
 * Tenant: tasks and notes, each about one record (`related_type` + `related_id`: a
 * company, contact or deal, later a lead; `related_type` is a string, not an enum, so a
 * new kind of record needs no migration, see src/crm/related.ts). Both are soft-deleted
 * and versioned; times are DATETIME(3) UTC. A task's `assignee_id` and a note's
 * `author_id` are users (deactivated, never deleted). Indexes:
 * `tasks_related_idx` / `notes_related_idx` (related_type, related_id, created_at): the
 * tasks and notes of one record newest first (the timeline, the list by record);
 * `tasks_assignee_idx` (assignee_id, status, due_at): "my open tasks by due date";
 * `tasks_due_idx` (status, due_at): overdue/today/week; `tasks_created_idx`,
 * `notes_author_idx`. Two more indexes on existing tables serve the timeline, so that each
 * of its sources is read newest first from an index and bounded by the page:
 * `activity_entity_created_idx` on activity_log (entity, entity_id, created_at) and
 * `attachments_entity_created_idx` on attachments (entity_type, entity_id, created_at).
 */
import { createTableInline, datetime, hasIndex, innodb, timestamps } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['tasks', 'notes'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await createTableInline(knex, 'tasks', (t) => {
    innodb(t);
    t.bigIncrements('id').primary();
    t.string('title', 200).notNullable();
    t.text('description').nullable();
    datetime(t, 'due_at');
    t.enu('priority', ['low', 'normal', 'high']).notNullable().defaultTo('normal');
    t.enu('status', ['open', 'done', 'cancelled']).notNullable().defaultTo('open');
    t.bigInteger('assignee_id').unsigned().nullable().references('id').inTable('users');
    t.string('related_type', 32).nullable();
    t.bigInteger('related_id').unsigned().nullable();
    datetime(t, 'completed_at');
    t.bigInteger('created_by').unsigned().nullable().references('id').inTable('users');
    t.integer('version').unsigned().notNullable().defaultTo(1);
    timestamps(t, knex);
    datetime(t, 'deleted_at');
    t.index(['related_type', 'related_id', 'created_at'], 'tasks_related_idx');
    t.index(['assignee_id', 'status', 'due_at'], 'tasks_assignee_idx');
    t.index(['status', 'due_at'], 'tasks_due_idx');
    t.index(['created_at'], 'tasks_created_idx');
  });
  await createTableInline(knex, 'notes', (t) => {
    innodb(t);
    t.bigIncrements('id').primary();
    t.string('related_type', 32).notNullable();
    t.bigInteger('related_id').unsigned().notNullable();
    t.text('text').notNullable();
    t.bigInteger('author_id').unsigned().notNullable().references('id').inTable('users');
    t.integer('version').unsigned().notNullable().defaultTo(1);
    timestamps(t, knex);
    datetime(t, 'deleted_at');
    t.index(['related_type', 'related_id', 'created_at'], 'notes_related_idx');
    t.index(['author_id'], 'notes_author_idx');
  });
  await knex.schema.alterTable('activity_log', (t) => t.index(['entity', 'entity_id', 'created_at'], 'activity_entity_created_idx'));
  await knex.schema.alterTable('attachments', (t) => t.index(['entity_type', 'entity_id', 'created_at'], 'attachments_entity_created_idx'));
}

/** Undoes any prefix of `up`, the newest change first. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  if (await hasIndex(knex, 'attachments', 'attachments_entity_created_idx')) {
    await knex.schema.alterTable('attachments', (t) => t.dropIndex(['entity_type', 'entity_id', 'created_at'], 'attachments_entity_created_idx'));
  }
  if (await hasIndex(knex, 'activity_log', 'activity_entity_created_idx')) {
    await knex.schema.alterTable('activity_log', (t) => t.dropIndex(['entity', 'entity_id', 'created_at'], 'activity_entity_created_idx'));
  }
  await knex.schema.dropTableIfExists('notes');
  await knex.schema.dropTableIfExists('tasks');
}
