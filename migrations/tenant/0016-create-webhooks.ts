/**
 * Tenant: webhooks (issue 16 part 6). Three tables, each made by one CREATE TABLE:
 * - `webhooks`: an endpoint (`url`, subscribed `events` as a JSON array of event types,
 *   `active`), its signing secret (`secret_enc`: AES-256-GCM under SILO_SECRET_KEY, or
 *   `plain.<secret>` when no key is configured) and a `version` for optimistic locking.
 * - `webhook_events`: the outbox, one row per event (`public_id` is the UUID receivers see
 *   as `id` and `Silo-Event-Id`; `data` the resource as the API shows it), written in the
 *   transaction of the change it reports, only when an active webhook subscribes to it.
 * - `webhook_deliveries`: one row per attempt to POST one event to one webhook. A `pending`
 *   row is due at `next_attempt_at`; a dispatcher leases it (`locked_until`, `lease_token`)
 *   with `SELECT ... FOR UPDATE SKIP LOCKED`, posts outside any transaction and records the
 *   outcome: `succeeded`, `retrying` (a next attempt row was inserted) or `failed` (given up).
 *   Index `webhook_deliveries_due_idx` (status, next_attempt_at) serves the claim,
 *   `webhook_deliveries_webhook_idx` the delivery log of one webhook.
 * Deleting a webhook deletes its deliveries (ON DELETE CASCADE); events stay until purged.
 */
import { createTableInline, datetime, innodb, timestamps } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['webhooks', 'webhook_events', 'webhook_deliveries'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await createTableInline(knex, 'webhooks', (t) => {
    innodb(t);
    t.bigIncrements('id').primary();
    t.string('url', 2048).notNullable();
    t.json('events').notNullable();
    t.boolean('active').notNullable().defaultTo(true);
    t.string('secret_enc', 512).notNullable();
    t.integer('version').unsigned().notNullable().defaultTo(1);
    timestamps(t, knex);
    t.index(['active'], 'webhooks_active_idx');
  });
  await createTableInline(knex, 'webhook_events', (t) => {
    innodb(t);
    t.bigIncrements('id').primary();
    t.specificType('public_id', 'CHAR(36)').notNullable().unique('webhook_events_public_uq');
    t.string('type', 64).notNullable();
    t.json('data').notNullable();
    t.specificType('occurred_at', 'DATETIME(3)').notNullable();
    t.index(['occurred_at'], 'webhook_events_occurred_idx');
  });
  await createTableInline(knex, 'webhook_deliveries', (t) => {
    innodb(t);
    t.bigIncrements('id').primary();
    t.bigInteger('webhook_id').unsigned().notNullable().references('id').inTable('webhooks').onDelete('CASCADE');
    t.bigInteger('event_id').unsigned().notNullable().references('id').inTable('webhook_events').onDelete('CASCADE');
    t.integer('attempt').unsigned().notNullable();
    t.enu('status', ['pending', 'succeeded', 'retrying', 'failed']).notNullable().defaultTo('pending');
    t.specificType('next_attempt_at', 'DATETIME(3)').notNullable();
    datetime(t, 'retry_until');
    datetime(t, 'locked_until');
    t.specificType('lease_token', 'CHAR(32)').nullable();
    datetime(t, 'attempted_at');
    t.integer('status_code').unsigned().nullable();
    t.string('error', 500).nullable();
    t.integer('latency_ms').unsigned().nullable();
    t.specificType('created_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.index(['status', 'next_attempt_at'], 'webhook_deliveries_due_idx');
    t.index(['webhook_id', 'id'], 'webhook_deliveries_webhook_idx');
  });
}

/** Undoes any prefix of `up`, the newest table first (rows go with their tables). */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('webhook_deliveries');
  await knex.schema.dropTableIfExists('webhook_events');
  await knex.schema.dropTableIfExists('webhooks');
}
