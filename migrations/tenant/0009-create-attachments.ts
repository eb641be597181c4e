/**
 * Tenant: attachments of companies, contacts and deals. The bytes live in S3 under a key
 * the server made (`tenants/<tenant-id>/files/<uuid>`); a row holds the client's file
 * name (as given), media type, size in bytes, SHA-256 (hex) and who uploaded it (a
 * user: users are deactivated, never deleted). A company has at most one logo, enforced
 * by MySQL through a stored generated column that is NULL for every row that is not a
 * company logo (NULLs never collide in a UNIQUE index). Indexes:
 * `attachments_entity_idx` (attachments of one record), `attachments_logo_uq` (the logo
 * of a company, and the logos of a page of companies), `attachments_key_uq`.
 */
import { createTableInline, innodb } from '../../src/migrations/helpers.js';
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['attachments'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await createTableInline(knex, 'attachments', (t) => {
    innodb(t);
    t.bigIncrements('id').primary();
    t.enu('entity_type', ['company', 'contact', 'deal']).notNullable();
    t.bigInteger('entity_id').unsigned().notNullable();
    t.string('file_name', 255).notNullable();
    t.string('content_type', 255).notNullable();
    t.bigInteger('size_bytes').unsigned().notNullable();
    t.specificType('sha256', 'CHAR(64)').notNullable();
    t.string('storage_key', 255).notNullable().unique('attachments_key_uq');
    t.boolean('is_logo').notNullable().defaultTo(false);
    t.bigInteger('uploaded_by').unsigned().nullable().references('id').inTable('users');
    t.specificType('created_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.specificType('logo_company_id', "BIGINT UNSIGNED GENERATED ALWAYS AS (IF(is_logo AND entity_type = 'company', entity_id, NULL)) STORED");
    t.unique(['logo_company_id'], { indexName: 'attachments_logo_uq' });
    t.index(['entity_type', 'entity_id'], 'attachments_entity_idx');
  });
}

/** Undoes any prefix of `up`: drops the table only if `up` got as far as making it. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('attachments');
}
