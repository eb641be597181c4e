/**
 * What Silo relies on from knex, tarn and mysql2 (src/lib/knex.ts), held against the real
 * server so that an upgrade that changes it fails here first:
 * - a pooled connection killed on the server while idle (KILL, a restart, wait_timeout) is
 *   not lent again: the next read, the next transaction and the next plain write succeed,
 *   each run once; and one given back less than 5 s ago is lent without a COM_PING (no
 *   round trip before each statement);
 * - errors carry no bound values (not in `message`, `sql`, `sqlMessage`, nor the stack),
 *   inside a transaction too, and a caller's catch sees the error already cleaned;
 * - the knex surface this goes through has the expected shape (knex's `query-error`
 *   event runs before the caller's catch; tarn takes a `validate` through knex's pool config;
 *   mysql2 connections answer `ping`).
 */
import t from 'tap';
import type { Knex } from 'knex';
import { parseMysqlUrl } from '../src/config.js';
import { createMysqlKnex } from '../src/lib/knex.js';
import { MYSQL_URL, rootKnex, uniqueNames } from './fixtures/env.js';

const db = `${uniqueNames().prefix}knex_contract`;
const root = rootKnex();
await root.raw('CREATE DATABASE ??', [db]);
t.teardown(async () => {
  await root.raw('DROP DATABASE IF EXISTS ??', [db]);
  await root.destroy();
});

/** A Knex as Silo builds it, on the contract database, with two pooled connections. */
function silo(): Knex {
  const k = createMysqlKnex({ ...parseMysqlUrl(MYSQL_URL), database: db }, { min: 0, max: 2 });
  t.teardown(() => k.destroy());
  return k;
}

const k = silo();
await k.schema.createTable('items', (tb) => {
  tb.increments('id');
  tb.string('name', 100).notNullable().unique();
});

/** Opens both pooled connections (two queries that overlap), so that both sit idle in the pool. */
async function fillPool(knex: Knex): Promise<void> {
  await Promise.all([knex.raw('SELECT SLEEP(0.05)'), knex.raw('SELECT SLEEP(0.05)')]);
  const pool = knex.client.pool as { numFree(): number };
  if (pool.numFree() !== 2) throw new Error(`expected 2 idle connections, found ${pool.numFree()}`);
}

/** Kills, on the server, every connection that uses the contract database; returns how many. */
async function killPooled(): Promise<number> {
  const rows: Array<{ ID: number | string }> = await root('information_schema.PROCESSLIST').where('DB', db).select('ID');
  for (const r of rows) await root.raw('KILL ?', [Number(r.ID)]);
  return rows.length;
}

t.test('reads on pooled connections killed on the server are answered', async (t) => {
  await k('items').insert({ name: 'seed' });
  await fillPool(k);
  t.equal(await killPooled(), 2, 'both idle connections killed');
  const reads = await Promise.all([k('items').where({ name: 'seed' }).first('name'), k('items').pluck('name')]);
  t.same(reads, [{ name: 'seed' }, ['seed']]);
});

t.test('a transaction whose connection was killed while idle runs its callback once and commits', async (t) => {
  await fillPool(k);
  t.equal(await killPooled(), 2);
  let calls = 0;
  const names = ['trx-a', 'trx-b'];
  await Promise.all(
    names.map((name) =>
      k.transaction(async (trx) => {
        calls++;
        await trx('items').insert({ name });
      }),
    ),
  );
  t.equal(calls, 2, 'each callback ran once');
  t.same((await k('items').whereIn('name', names).pluck('name')).sort(), names, 'each committed once');
});

t.test('a plain write on a connection killed while idle succeeds, once', async (t) => {
  await fillPool(k);
  t.equal(await killPooled(), 2);
  const names = ['plain-a', 'plain-b'];
  await Promise.all(names.map((name) => k('items').insert({ name })));
  t.same((await k('items').whereIn('name', names).pluck('name')).sort(), names, 'each row written once');
});

t.test('statements one after another send no COM_PING: a connection given back less than 5 s ago is lent as is', async (t) => {
  await k.raw('SELECT 1');
  const conn = (await k.client.acquireConnection()) as { ping(cb: (err: Error | null) => void): void };
  type Ping = (this: unknown, cb: (err: Error | null) => void) => void;
  const proto = Object.getPrototypeOf(conn) as { ping: Ping };
  await k.client.releaseConnection(conn);
  const ping = proto.ping;
  let pings = 0;
  proto.ping = function (this: unknown, cb: (err: Error | null) => void) {
    pings++;
    return ping.call(this, cb);
  };
  try {
    for (let i = 0; i < 20; i++) await k('items').count({ n: '*' });
    await k.transaction(async (trx) => trx('items').count({ n: '*' }));
  } finally {
    proto.ping = ping;
  }
  t.equal(pings, 0, '20 reads and a transaction, no ping');
});

t.test('errors carry no bound values, and the caller sees them cleaned', async (t) => {
  const secret = 'SECRET-VALUE-0123456789';
  await k('items').insert({ name: secret });
  let seenByCatch: string | undefined;
  const plain = await k('items')
    .insert({ name: secret })
    .catch((e: unknown) => {
      seenByCatch = JSON.stringify({ ...(e as object), message: (e as Error).message });
      return e;
    });
  const inTrx = await k
    .transaction(async (trx) => {
      await trx('items').insert({ name: secret });
    })
    .catch((e: unknown) => e);
  const raw = await k.raw('INSERT INTO items (name) VALUES (?)', [secret]).catch((e: unknown) => e);
  for (const [label, err] of [
    ['query builder', plain],
    ['transaction', inTrx],
    ['raw', raw],
  ] as const) {
    const e = err as Error & Record<string, unknown>;
    t.equal(e.errno, 1062, `${label}: a duplicate entry`);
    const text = JSON.stringify({ ...e, message: e.message, stack: e.stack });
    t.notOk(text.includes(secret), `${label}: no bound value in the error`);
    t.match(e.message, /Duplicate entry/, `${label}: the message stays readable`);
    t.match(String(e.sql), /\?/, `${label}: err.sql keeps the placeholders`);
  }
  t.notOk(seenByCatch?.includes(secret), 'already cleaned when the caller catches it');
});

t.test('the knex, tarn and mysql2 surface Silo goes through has the expected shape', async (t) => {
  const events: string[] = [];
  k.on('query-error', () => events.push('query-error'));
  await k.raw('SELECT * FROM no_such_table').catch(() => events.push('catch'));
  t.same(events, ['query-error', 'catch'], "knex's query-error event runs before the caller's catch");

  const pool = k.client.pool as { validate?: unknown };
  t.type(pool.validate, 'function', "tarn's pool has a validate (knex passes the pool config's through)");
  const conn = (await k.client.acquireConnection()) as { ping?: unknown };
  try {
    t.type(conn.ping, 'function', 'mysql2 connections answer ping');
  } finally {
    await k.client.releaseConnection(conn);
  }
});
