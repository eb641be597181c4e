/**
 * `createTableInline` (src/migrations/helpers.ts) makes the same table as knex's
 * CREATE TABLE followed by one ALTER TABLE per index, unique key and foreign key: the
 * SHOW CREATE TABLE of both are equal, for a table with every kind of key, a generated
 * column, a composite primary key and parentheses inside expressions.
 */
import t from 'tap';
import type { Knex } from 'knex';
import { parseMysqlUrl } from '../src/config.js';
import { createMysqlKnex } from '../src/lib/knex.js';
import { createTableInline, innodb } from '../src/migrations/helpers.js';
import { MYSQL_URL, rootKnex, uniqueNames } from './fixtures/env.js';

const names = uniqueNames();
const dbs = [`${names.prefix}knex`, `${names.prefix}inline`];
const root = rootKnex();
t.teardown(async () => {
  for (const d of dbs) await root.raw('DROP DATABASE IF EXISTS ??', [d]);
  await root.destroy();
});

function define(k: Knex) {
  return {
    parent: (tb: Knex.CreateTableBuilder) => {
      innodb(tb);
      tb.bigIncrements('id').primary();
      tb.string('code', 20).notNullable().unique({ indexName: 'parent_code_uq' });
    },
    child: (tb: Knex.CreateTableBuilder) => {
      innodb(tb);
      tb.bigInteger('parent_id').unsigned().notNullable().references('id').inTable('parent').onDelete('CASCADE');
      tb.integer('seq').unsigned().notNullable();
      tb.string('label', 100).nullable().comment("a label (with 'parentheses')");
      tb.specificType('label_key', "VARCHAR(100) GENERATED ALWAYS AS (IFNULL(LOWER(label), '(none)')) STORED");
      tb.specificType('created_at', 'DATETIME(3)').notNullable().defaultTo(k.raw('CURRENT_TIMESTAMP(3)'));
      tb.primary(['parent_id', 'seq']);
      tb.unique(['label_key', 'parent_id'], { indexName: 'child_label_uq' });
      tb.index(['created_at'], 'child_created_idx');
      tb.index(['label', 'seq'], 'child_label_seq_idx');
    },
  };
}

async function showCreate(k: Knex, table: string): Promise<string> {
  const [rows] = await k.raw('SHOW CREATE TABLE ??', [table]);
  return String(rows[0]['Create Table']).replace(/ AUTO_INCREMENT=\d+/, '');
}

t.test('the same tables, with one statement per table instead of one per key', async (t) => {
  const server = parseMysqlUrl(MYSQL_URL);
  const created: string[][] = [];
  for (const [i, db] of dbs.entries()) {
    await root.raw('CREATE DATABASE ?? CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci', [db]);
    const k = createMysqlKnex({ ...server, database: db }, { min: 0, max: 1 });
    try {
      const d = define(k);
      if (i === 0) {
        await k.schema.createTable('parent', d.parent);
        await k.schema.createTable('child', d.child);
      } else {
        await createTableInline(k, 'parent', d.parent);
        await createTableInline(k, 'child', d.child);
      }
      created.push([await showCreate(k, 'parent'), await showCreate(k, 'child')]);
    } finally {
      await k.destroy();
    }
  }
  t.same(created[1], created[0]);
  t.match(created[1]![1], /CONSTRAINT `child_parent_id_foreign` FOREIGN KEY \(`parent_id`\) REFERENCES `parent` \(`id`\) ON DELETE CASCADE/);
  t.match(created[1]![1], /UNIQUE KEY `child_label_uq`/);
  const k = createMysqlKnex(parseMysqlUrl(MYSQL_URL), { min: 0, max: 1 });
  try {
    const statements = k.schema.createTable('child', define(k).child).toSQL();
    t.ok(statements.length > 3, `knex would run ${statements.length} statements; the helper runs 1`);
  } finally {
    await k.destroy();
  }
});
