/**
 * Tenant: `invitations` (an admin invites an email address to join with a role) and
 * `password_resets` (a user asked for a reset link). Both keep only the SHA-256 (hex) of
 * their one-time token: the tokens are 32 random bytes, so a fast hash is enough (there is
 * nothing to guess by brute force, unlike a password, which needs argon2), and a lookup is
 * one unique-index read.
 *
 * An invitation is open until accepted (`accepted_at`, `accepted_user_id`) or revoked
 * (`revoked_at`: deleted by an admin, or replaced by a newer invitation of the same email);
 * at most one is open per email, enforced by MySQL through a stored generated column that
 * is the email while the invitation is open and NULL afterwards (NULLs never collide in a
 * UNIQUE index). Expiry (`expires_at`, 7 days) is checked at acceptance. A reset is used
 * once (`used_at`) before `expires_at` (1 hour). Users are deactivated, never deleted, so
 * the user references are plain foreign keys. Indexes: `invitations_token_uq`,
 * `invitations_open_email_uq`, `password_resets_token_uq`, `password_resets_user_idx`
 * (a user's recent resets, for the per-user limit and for using them all up at once).
 */
import { createTableInline, datetime, innodb } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['invitations', 'password_resets'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await createTableInline(knex, 'invitations', (t) => {
    innodb(t);
    t.bigIncrements('id').primary();
    t.string('email', 254).notNullable();
    t.enu('role', ['admin', 'manager', 'staff']).notNullable();
    t.specificType('token_hash', 'CHAR(64)').notNullable().unique('invitations_token_uq');
    t.bigInteger('invited_by').unsigned().nullable().references('id').inTable('users');
    t.specificType('expires_at', 'DATETIME(3)').notNullable();
    datetime(t, 'accepted_at');
    t.bigInteger('accepted_user_id').unsigned().nullable().references('id').inTable('users');
    datetime(t, 'revoked_at');
    t.specificType('created_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.specificType('open_email', 'VARCHAR(254) GENERATED ALWAYS AS (IF(accepted_at IS NULL AND revoked_at IS NULL, email, NULL)) STORED');
    t.unique(['open_email'], { indexName: 'invitations_open_email_uq' });
  });
  await createTableInline(knex, 'password_resets', (t) => {
    innodb(t);
    t.bigIncrements('id').primary();
    t.bigInteger('user_id').unsigned().notNullable().references('id').inTable('users');
    t.specificType('token_hash', 'CHAR(64)').notNullable().unique('password_resets_token_uq');
    t.specificType('expires_at', 'DATETIME(3)').notNullable();
    datetime(t, 'used_at');
    t.specificType('created_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.index(['user_id', 'created_at'], 'password_resets_user_idx');
  });
}

/** Undoes any prefix of `up`, the newest table first: drops each only if `up` got as far as making it. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('password_resets');
  await knex.schema.dropTableIfExists('invitations');
}
