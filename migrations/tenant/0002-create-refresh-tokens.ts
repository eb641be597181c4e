/**
 * Tenant: refresh tokens, stored as SHA-256 hashes. Tokens of one login form a family;
 * reuse of a rotated token revokes the family (OAuth 2.0 Security BCP, RFC 9700 §4.14).
 */
import { createTableInline, datetime, innodb } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['refresh_tokens'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await createTableInline(knex, 'refresh_tokens', (t) => {
    innodb(t);
    t.bigIncrements('id').primary();
    t.bigInteger('user_id').unsigned().notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.specificType('token_hash', 'CHAR(64)').notNullable().unique('refresh_tokens_hash_uq');
    t.specificType('family_id', 'CHAR(36)').notNullable();
    t.specificType('expires_at', 'DATETIME(3)').notNullable();
    datetime(t, 'revoked_at');
    datetime(t, 'rotated_at');
    t.specificType('created_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.index(['family_id'], 'refresh_tokens_family_idx');
    t.index(['user_id'], 'refresh_tokens_user_idx');
  });
}

/** Undoes any prefix of `up`: drops the table only if `up` got as far as making it. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('refresh_tokens');
}
