/**
 * History partitions are made ahead, not only by `prune`: a catalog whose monthly
 * partitions end with this month gets the next two months from `silo history maintain`
 * and from the start of `silo serve`; rows dated next month then land in their own
 * partition, and rows that had already piled into `pmax` are moved out of it.
 */
import t from 'tap';
import { startServer } from '../src/http/server.js';
import { listHistoryPartitions, monthPartitionsSql, monthStart, partitionName } from '../src/history/partitions.js';
import { runCliJson, setupSilo } from './fixtures/env.js';
import { TEST_JWT_SECRET } from './fixtures/app.js';

const { ctx, env, config } = await setupSilo(t, { SILO_JWT_SECRET: TEST_JWT_SECRET });
const k = ctx.catalog.knex;
const now = new Date();
const next = partitionName(monthStart(now, 1));
const afterNext = partitionName(monthStart(now, 2));

/** Re-partitions `request_history` so that its last monthly partition is this month's (then `pmax`). */
async function endPartitionsThisMonth(): Promise<void> {
  await k('request_history').del();
  await k.raw('ALTER TABLE request_history REMOVE PARTITIONING');
  await k.raw(`ALTER TABLE request_history ${monthPartitionsSql(now, 1, 0)}`);
  const names = (await listHistoryPartitions(k)).map((p) => p.name);
  if (names.includes(next)) throw new Error(`setup: ${next} should not exist yet (${names.join(', ')})`);
}

const rowsIn = async (partition: string): Promise<number> => {
  const [rows] = await k.raw(`SELECT COUNT(*) AS n FROM request_history PARTITION (${partition})`);
  return Number((rows as Array<{ n: number }>)[0]!.n);
};
const historyRow = (at: Date, id: string) => ({ created_at: at, request_id: id, method: 'GET', path: '/x', status: 200, duration_ms: 1 });

t.test('silo history maintain adds the next months and moves rows out of pmax', async (t) => {
  await endPartitionsThisMonth();
  // A row written before the maintenance, dated next month, sits in pmax.
  await k('request_history').insert(historyRow(new Date(monthStart(now, 1).getTime() + 3_600_000), 'early'));
  t.equal(await rowsIn('pmax'), 1, 'setup: the row is in pmax');

  const { result, json } = await runCliJson<{ added: string[]; pmaxRows: number }>(['history', 'maintain'], env);
  t.equal(result.code, 0, result.stderr);
  const names = (await listHistoryPartitions(k)).map((p) => p.name);
  t.ok(names.includes(next) && names.includes(afterNext), `next two months exist: ${names.join(', ')}`);
  t.equal(names.at(-1), 'pmax');
  t.same(json.added, [next, afterNext]);
  t.equal(json.pmaxRows, 0);
  t.equal(await rowsIn('pmax'), 0, 'pmax is empty again');
  t.equal(await rowsIn(next), 1, 'the early row moved to its month');

  await k('request_history').insert(historyRow(new Date(monthStart(now, 1).getTime() + 86_400_000), 'next-month'));
  t.equal(await rowsIn(next), 2, 'a row dated next month lands in its own partition');
  t.equal(await rowsIn('pmax'), 0);

  const again = await runCliJson<{ added: string[] }>(['history', 'maintain'], env);
  t.same(again.json.added, [], 'idempotent');
});

t.test('silo serve makes the next months when it starts', async (t) => {
  await endPartitionsThisMonth();
  const server = await startServer({ ...config, port: 0, host: '127.0.0.1' }, { handleSignals: false });
  t.teardown(() => server.close());
  const names = (await listHistoryPartitions(k)).map((p) => p.name);
  t.ok(names.includes(next) && names.includes(afterNext), `next two months exist after start: ${names.join(', ')}`);
  await k('request_history').insert(historyRow(new Date(monthStart(now, 2).getTime() + 1000), 'in-two-months'));
  t.equal(await rowsIn(afterNext), 1);
  t.equal(await rowsIn('pmax'), 0);
});
