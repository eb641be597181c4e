/**
 * Catalog: rollups of the request history, what `GET /platform/v1/history/stats` and
 * `silo history stats` read instead of the raw rows (src/history/rollup.ts says what each
 * holds and how the recorder keeps them). Each table is at three grains (`grain` 1 =
 * minute, 2 = hour, 3 = day; `period_start` UTC); key columns are NOT NULL (no tenant is
 * `tenant_id` 0, no route is `''`). Tables: `request_rollup` (counts, errors, duration
 * sum and max, bytes), `request_rollup_latency` and `request_rollup_tenant_latency`
 * (latency histogram buckets, all tenants / per tenant), `request_rollup_users`
 * (requests per user), and `request_rollup_backfill`: one row (id 1) whose `through_id`
 * is the newest `request_history` id when this ran, i.e. the rows that existed before the
 * recorder wrote rollups; `silo history maintain` adds them in batches, moving `done_id`.
 */
import type { MigrationParams } from '../../src/migrations/types.js';

export const creates = ['request_rollup', 'request_rollup_latency', 'request_rollup_tenant_latency', 'request_rollup_users', 'request_rollup_backfill'];

const TABLE_OPTIONS = 'ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci';

export async function up({ context: knex }: MigrationParams): Promise<void> {
  await knex.raw(`
    CREATE TABLE request_rollup (
      grain TINYINT UNSIGNED NOT NULL,
      period_start DATETIME NOT NULL,
      tenant_id INT UNSIGNED NOT NULL,
      route VARCHAR(255) NOT NULL,
      method VARCHAR(10) NOT NULL,
      status SMALLINT UNSIGNED NOT NULL,
      requests BIGINT UNSIGNED NOT NULL,
      client_errors BIGINT UNSIGNED NOT NULL,
      server_errors BIGINT UNSIGNED NOT NULL,
      sum_ms DOUBLE NOT NULL,
      max_ms DOUBLE NOT NULL,
      sum_bytes BIGINT UNSIGNED NOT NULL,
      PRIMARY KEY (grain, period_start, tenant_id, route, method, status),
      KEY rollup_tenant_idx (tenant_id, grain, period_start)
    ) ${TABLE_OPTIONS}`);
  await knex.raw(`
    CREATE TABLE request_rollup_latency (
      grain TINYINT UNSIGNED NOT NULL,
      period_start DATETIME NOT NULL,
      route VARCHAR(255) NOT NULL,
      method VARCHAR(10) NOT NULL,
      status_class TINYINT UNSIGNED NOT NULL,
      bucket SMALLINT NOT NULL,
      n BIGINT UNSIGNED NOT NULL,
      PRIMARY KEY (grain, period_start, route, method, status_class, bucket)
    ) ${TABLE_OPTIONS}`);
  await knex.raw(`
    CREATE TABLE request_rollup_tenant_latency (
      tenant_id INT UNSIGNED NOT NULL,
      grain TINYINT UNSIGNED NOT NULL,
      period_start DATETIME NOT NULL,
      route VARCHAR(255) NOT NULL,
      method VARCHAR(10) NOT NULL,
      status_class TINYINT UNSIGNED NOT NULL,
      bucket SMALLINT NOT NULL,
      n BIGINT UNSIGNED NOT NULL,
      PRIMARY KEY (tenant_id, grain, period_start, route, method, status_class, bucket)
    ) ${TABLE_OPTIONS}`);
  await knex.raw(`
    CREATE TABLE request_rollup_users (
      grain TINYINT UNSIGNED NOT NULL,
      period_start DATETIME NOT NULL,
      tenant_id INT UNSIGNED NOT NULL,
      user_kind TINYINT UNSIGNED NOT NULL,
      user_id BIGINT UNSIGNED NOT NULL,
      requests BIGINT UNSIGNED NOT NULL,
      PRIMARY KEY (grain, period_start, tenant_id, user_kind, user_id),
      KEY rollup_users_tenant_idx (tenant_id, grain, period_start)
    ) ${TABLE_OPTIONS}`);
  await knex.raw(`
    CREATE TABLE request_rollup_backfill (
      id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
      done_id BIGINT UNSIGNED NOT NULL,
      through_id BIGINT UNSIGNED NOT NULL
    ) ${TABLE_OPTIONS}`);
  // The one progress row: the rows that exist now are the backfill's (one statement, in the table made above).
  await knex.raw('INSERT INTO request_rollup_backfill (id, done_id, through_id) SELECT 1, 0, COALESCE(MAX(id), 0) FROM request_history');
}

/** Undoes any prefix of `up`: drops what it made, newest first, each only if it exists. */
export async function down({ context: knex }: MigrationParams): Promise<void> {
  await knex.schema.dropTableIfExists('request_rollup_backfill');
  await knex.schema.dropTableIfExists('request_rollup_users');
  await knex.schema.dropTableIfExists('request_rollup_tenant_latency');
  await knex.schema.dropTableIfExists('request_rollup_latency');
  await knex.schema.dropTableIfExists('request_rollup');
}
