/**
 * Catalog: the request history, one row per API request (method, route, status,
 * duration, tenant, user, ...; never bodies, tokens or passwords). RANGE COLUMNS
 * partitioned by month on `created_at` (MySQL 8.4 §26.2.1, MariaDB "RANGE COLUMNS"), so
 * retention drops whole partitions; `pmax` catches rows beyond the newest month and is
 * split ahead of time by `ensureHistoryPartitions`. The primary key includes the
 * partitioning column, as MySQL requires. Indexes: `history_tenant_time_idx`
 * (tenant + time), `history_time_idx` (time).
 */
import type { MigrationParams } from '../../src/migrations/types.js';
import { monthPartitionsSql } from '../../src/history/partitions.js';

export const creates = ['request_history'];

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await knex.raw(`
    CREATE TABLE request_history (
      id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
      created_at DATETIME(3) NOT NULL,
      request_id VARCHAR(64) NOT NULL,
      tenant_id INT UNSIGNED NULL,
      user_id BIGINT UNSIGNED NULL,
      user_kind ENUM('tenant', 'platform') NULL,
      method VARCHAR(10) NOT NULL,
      route VARCHAR(255) NULL,
      path VARCHAR(2048) NOT NULL,
      query VARCHAR(2048) NULL,
      status SMALLINT UNSIGNED NOT NULL,
      duration_ms DOUBLE NOT NULL,
      response_bytes INT UNSIGNED NULL,
      ip VARCHAR(45) NULL,
      user_agent VARCHAR(512) NULL,
      error_code VARCHAR(64) NULL,
      PRIMARY KEY (id, created_at),
      KEY history_tenant_time_idx (tenant_id, created_at),
      KEY history_time_idx (created_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
    ${monthPartitionsSql(new Date(), 1, 2)}`);
}

/** Undoes any prefix of `up`: drops the table only if `up` got as far as making it. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('request_history');
}
