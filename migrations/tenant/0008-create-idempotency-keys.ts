/**
 * Tenant: `Idempotency-Key` records of POST creates: the first answer is stored and
 * replayed for a retry with the same key and body (draft-ietf-httpapi-idempotency-key-header).
 * Keys are per user; rows older than 24 h may be purged.
 */
import { createTableInline, innodb } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['idempotency_keys'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await createTableInline(knex, 'idempotency_keys', (t) => {
    innodb(t);
    t.bigInteger('user_id').unsigned().notNullable();
    t.string('idem_key', 255).notNullable();
    t.string('route', 255).notNullable();
    t.specificType('request_hash', 'CHAR(64)').notNullable();
    t.smallint('response_status').unsigned().notNullable();
    t.specificType('response_body', 'MEDIUMTEXT').notNullable();
    t.specificType('created_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.primary(['user_id', 'idem_key']);
    t.index(['created_at'], 'idempotency_created_idx');
  });
}

/** Undoes any prefix of `up`: drops the table only if `up` got as far as making it. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('idempotency_keys');
}
