import type { Knex } from 'knex';

/** `created_at` and `updated_at` as DATETIME(3) in UTC, set by MySQL (ms precision). */
export function timestamps(t: Knex.CreateTableBuilder, knex: Knex): void {
  t.specificType('created_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
  t.specificType('updated_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)'));
}

/** A nullable DATETIME(3) column. */
export function datetime(t: Knex.CreateTableBuilder | Knex.AlterTableBuilder, name: string): Knex.ColumnBuilder {
  return t.specificType(name, 'DATETIME(3)').nullable();
}

/** Table options every Silo table uses: InnoDB, utf8mb4. */
export function innodb(t: Knex.CreateTableBuilder): void {
  t.engine('InnoDB');
  t.charset('utf8mb4');
  t.collate('utf8mb4_unicode_ci');
}
