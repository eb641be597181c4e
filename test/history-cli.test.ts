/**
 * `silo history stats | tail | prune` through the built CLI against a real catalog:
 * retention drops whole old months and deletes exactly the older rows, dry runs and
 * refusals change nothing, statistics equal the service's, tail follows new rows.
 *
 * `--archive` writes the rows to a local S3 (s3rver) first; the test reads them back.
 *
 * The migration partitions the table from last month on; the first RANGE partition has
 * no lower bound, so older rows land in it. To look like a table that has run for months
 * (where `ensureHistoryPartitions` split each month off ahead of time), the test splits
 * that first partition into the seven months before this one while it is still empty.
 */
import { spawn } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { listHistoryPartitions, monthStart, partitionName } from '../src/history/partitions.js';
import { historyStats } from '../src/history/stats.js';
import { lastHistoryId } from '../src/history/query.js';
import { rollupRawRows } from '../src/history/rollup.js';
import { makeTenant } from './fixtures/app.js';
import { ROOT, runCli, runCliJson, setupSilo, type CliResult } from './fixtures/env.js';
import { setupS3 } from './fixtures/s3.js';

const s3 = await setupS3(t);
const { ctx, env } = await setupSilo(t, s3.env);
const envNoS3 = { ...env, SILO_S3_BUCKET: '' };
const k = ctx.catalog.knex;
const ta = await makeTenant(ctx, 'hcli-a');
const tb = await makeTenant(ctx, 'hcli-b');
const now = new Date();
const DAY = 86_400_000;
const day = (d: Date) => d.toISOString().slice(0, 10);

// Monthly partitions for the seven months before this one (the first also takes anything older).
const first = (await listHistoryPartitions(k))[0]!;
if (first.name !== partitionName(monthStart(now, -1))) throw new Error(`the migration should start the table at last month, not ${first.name}`);
const past = Array.from({ length: 7 }, (_, i) => i - 7).map(
  (i) => `PARTITION ${partitionName(monthStart(now, i))} VALUES LESS THAN ('${day(monthStart(now, i + 1))}')`,
);
await k.raw(`ALTER TABLE request_history REORGANIZE PARTITION ${first.name} INTO (${past.join(', ')})`);

let seq = 0;
function row(at: Date, tenantId: number | null, status = 200, durationMs = 10, path = '/api/v1/companies') {
  seq++;
  return {
    created_at: at,
    request_id: `hcli-${seq}`,
    tenant_id: tenantId,
    method: seq % 3 ? 'GET' : 'POST',
    route: path,
    path,
    status,
    duration_ms: durationMs + (seq % 17),
  };
}
const times = [
  new Date(monthStart(now, -9).getTime() + 3 * DAY), // older than every partition bound: in the first partition
  new Date(monthStart(now, -6).getTime() + 10 * DAY),
  new Date(monthStart(now, -5).getTime() + 5 * DAY),
  new Date(monthStart(now, -5).getTime() + 20 * DAY),
  new Date(monthStart(now, -2).getTime() + DAY),
  new Date(now.getTime() - 30 * DAY - 60_000), // just before the cutoff: deleted row by row
  new Date(now.getTime() - 30 * DAY + 3_600_000), // just after it: kept
  new Date(now.getTime() - 2 * 3_600_000),
  new Date(now.getTime() - 30 * 60_000),
  new Date(now.getTime() - 10 * 60_000),
];
const rows = times.flatMap((at, i) => [row(at, ta.id, 200, 5 * i), row(at, tb.id, i % 2 ? 404 : 500, 7 * i), row(at, null, 404, 3)]);
// Distinct counts per tenant in the last 24 h (4, 5 and 3), so that every breakdown has one order.
const recent = times.at(-1)!;
rows.push(row(recent, ta.id, 200, 40), row(recent, tb.id, 200, 41), row(recent, tb.id, 503, 42));
await k('request_history').insert(rows);
// Inserted by SQL, not by the recorder: added to the rollups the statistics read, as a backfill would.
await rollupRawRows(k, 0, await lastHistoryId(k));

async function countsByTime(): Promise<Record<string, number>> {
  const r: Array<{ created_at: Date; n: number }> = await k('request_history').select('created_at').count({ n: '*' }).groupBy('created_at');
  return Object.fromEntries(r.map((x) => [x.created_at.toISOString(), Number(x.n)]));
}
const partitionNames = async () => (await listHistoryPartitions(k)).map((p) => p.name);
const before = await countsByTime();

type PruneJson = { dryRun: boolean; cutoff: string; droppedPartitions: string[]; deletedRows: number };

/** What a prune at `cutoff` must do, given the partitions before it. */
function expectedPrune(parts: Awaited<ReturnType<typeof listHistoryPartitions>>, cutoff: Date) {
  const dropped = parts.filter((p) => p.lessThan && p.lessThan <= cutoff);
  const bound = dropped.at(-1)?.lessThan ?? new Date(0);
  return {
    droppedPartitions: dropped.map((p) => p.name),
    deletedRows: rows.filter((r) => r.created_at < cutoff && r.created_at >= bound).length,
    remaining: Object.fromEntries(Object.entries(before).filter(([at]) => new Date(at) >= cutoff)),
  };
}

t.test('prune --dry-run reports the plan and changes nothing', async (t) => {
  const parts = await listHistoryPartitions(k);
  const { result, json } = await runCliJson<PruneJson>(['history', 'prune', '--older-than', '30d', '--dry-run'], env);
  t.equal(result.code, 0, result.stderr);
  const want = expectedPrune(parts, new Date(json.cutoff));
  t.equal(json.dryRun, true);
  t.same(json.droppedPartitions, want.droppedPartitions, 'the partitions wholly before the cutoff');
  t.equal(json.deletedRows, want.deletedRows, 'the older rows outside them');
  t.ok(json.deletedRows > 0);
  t.same(await countsByTime(), before, 'no row removed');
  t.same(
    await partitionNames(),
    parts.map((p) => p.name),
    'no partition dropped or added',
  );
});

t.test('prune --archive without S3 settings fails (exit 1) and removes nothing', async (t) => {
  const human = await runCli(['history', 'prune', '--older-than', '30d', '--archive', '--yes'], envNoS3);
  t.equal(human.code, 1);
  t.match(human.stderr, /SILO_S3_BUCKET/);
  const { result, json } = await runCliJson<{ error: { code: string; message: string } }>(
    ['history', 'prune', '--older-than', '30d', '--archive', '--yes'],
    envNoS3,
  );
  t.equal(result.code, 1);
  t.equal(json.error.code, 'STORAGE_NOT_CONFIGURED');
  t.match(json.error.message, /SILO_S3_BUCKET/);
  t.same(await countsByTime(), before, 'no row removed');
});

t.test('prune --archive with S3 down fails before removing anything', async (t) => {
  const down = { ...env, SILO_S3_ENDPOINT: 'http://127.0.0.1:9', SILO_S3_TIMEOUT_MS: '1000' };
  const { result, json } = await runCliJson<{ error: { code: string } }>(['history', 'prune', '--older-than', '30d', '--archive', '--yes'], down);
  t.equal(result.code, 1);
  t.equal(json.error.code, 'STORAGE_UNAVAILABLE');
  t.same(await countsByTime(), before, 'no row removed');
});

t.test('a bad or missing --older-than is a usage error (exit 2) and removes nothing', async (t) => {
  for (const bad of ['30', '0d', '1.5d', '3y', 'soon']) {
    const r = await runCli(['history', 'prune', '--older-than', bad, '--yes'], env);
    t.equal(r.code, 2, `--older-than ${bad}`);
    t.match(r.stderr, /not a duration/);
  }
  const { result, json } = await runCliJson<{ error: { code: string } }>(['history', 'prune', '--older-than', 'soon', '--yes'], env);
  t.equal(result.code, 2);
  t.equal(json.error.code, 'INVALID_DURATION');
  t.equal((await runCli(['history', 'prune', '--yes'], env)).code, 2, 'missing --older-than');
  t.same(await countsByTime(), before);
});

t.test('prune without --yes asks to type "prune" and, unanswered, removes nothing', async (t) => {
  const r = await runCli(['history', 'prune', '--older-than', '30d'], env, 'no\n');
  t.equal(r.code, 1);
  t.match(r.stderr, /Type "prune" to confirm/);
  t.match(r.stderr, /NOT_CONFIRMED/);
  t.same(await countsByTime(), before);
});

t.test('stats --json equals the service for the same window', async (t) => {
  const until = now.toISOString();
  const { result, json } = await runCliJson<any>(['history', 'stats', '--since', '24h', '--until', until], env);
  t.equal(result.code, 0, result.stderr);
  t.same(
    json.byMethod.map((m: any) => m.count),
    [8, 4],
    'distinct counts (GET, POST)',
  );
  const service = await historyStats(k, { from: new Date(now.getTime() - DAY), to: now });
  t.equal(json.totals.requests, 12, 'the rows of the last 24 h');
  t.same(json.totals, service.totals);
  t.same(json.latency, service.latency);
  t.same(json, JSON.parse(JSON.stringify(service)), 'the whole document');
  const one = await runCliJson<any>(['history', 'stats', '--since', '7d', '--until', until, '--tenant', 'hcli-b', '--bucket', 'day', '--top', '3'], env);
  t.same(
    one.json,
    JSON.parse(JSON.stringify(await historyStats(k, { from: new Date(now.getTime() - 7 * DAY), to: now, tenantId: tb.id }, { top: 3, bucket: 'day' }))),
  );
});

t.test('stats --by tenant lists the tenants in a table; bad options exit 2', async (t) => {
  const r = await runCli(['history', 'stats', '--since', '24h', '--until', now.toISOString(), '--by', 'tenant'], env);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /requests.*p95 ms/);
  t.match(r.stdout, /By tenant:/);
  for (const s of ['hcli-a', 'hcli-b', '(none)']) t.match(r.stdout, s);
  t.match(r.stdout, /Per minute|Per hour/);
  t.equal((await runCli(['history', 'stats', '--by', 'colour'], env)).code, 2);
  t.equal((await runCli(['history', 'stats', '--since', 'yesterday'], env)).code, 2);
  t.equal((await runCli(['history', 'stats', '--until', 'tomorrow'], env)).code, 2);
  t.equal((await runCli(['history', 'stats', '--since', '500d'], env)).code, 2, 'a window over 400 days');
  t.equal((await runCli(['history', 'stats', '--since', '2h', '--exact'], env)).code, 2, 'exact past its bound of 1 h');
  t.match((await runCliJson<any>(['history', 'stats', '--since', '1h', '--exact'], env)).json, { method: 'exact' });
  t.equal((await runCli(['history', 'stats', '--tenant', 'no-such'], env)).code, 1);
});

t.test('prune --older-than 30d --archive --yes archives, then drops the old months and exactly the rows before the cutoff', async (t) => {
  const parts = await listHistoryPartitions(k);
  const { result, json } = await runCliJson<PruneJson & { archives: Array<{ key: string; month: string; rows: number }> }>(
    ['history', 'prune', '--older-than', '30d', '--archive', '--yes'],
    env,
  );
  t.equal(result.code, 0, result.stderr);
  const cutoff = new Date(json.cutoff);
  // The archives hold exactly the removed rows, one object per month, as gzip NDJSON under history/YYYY/MM/.
  const removed = rows
    .filter((r) => r.created_at < cutoff)
    .map((r) => r.request_id)
    .sort();
  const archived: string[] = [];
  for (const a of json.archives) {
    t.match(a.key, new RegExp(`^history/${a.month.replace('-', '/')}/request_history-\\d{6}-before-\\d{8}T\\d{6}Z-\\d{8}T\\d{6}Z\\.ndjson\\.gz$`));
    const { body } = await ctx.storage!.download(a.key);
    const lines = gunzipSync(Buffer.concat(await body.toArray()))
      .toString('utf8')
      .trim()
      .split('\n');
    t.equal(lines.length, a.rows);
    for (const line of lines) {
      const r = JSON.parse(line);
      t.equal(r.created_at.slice(0, 7), a.month, 'each row in its month');
      archived.push(r.request_id);
    }
  }
  t.same(archived.sort(), removed, 'every removed row was archived first, and only those');
  t.same(
    json.archives.map((a) => a.month),
    [...new Set(rows.filter((r) => r.created_at < cutoff).map((r) => r.created_at.toISOString().slice(0, 7)))].sort(),
  );
  t.ok(Math.abs(cutoff.getTime() - (Date.now() - 30 * DAY)) < 60_000, 'cutoff is 30 days ago');
  const want = expectedPrune(parts, cutoff);
  t.same(json.droppedPartitions, want.droppedPartitions);
  for (const i of [-7, -6, -5]) t.ok(json.droppedPartitions.includes(partitionName(monthStart(now, i))), `month ${i} dropped`);
  t.equal(json.deletedRows, want.deletedRows, 'the rows of the cutoff month before it, deleted one by one');
  t.ok(json.deletedRows > 0);
  t.same(await countsByTime(), want.remaining, 'every row before the cutoff is gone, every later one stays');
  const left = await partitionNames();
  t.notOk(
    left.some((p) => json.droppedPartitions.includes(p)),
    'the dropped partitions are gone',
  );
  for (const i of [0, 1, 2]) t.ok(left.includes(partitionName(monthStart(now, i))), `month +${i} exists`);
  t.equal(left.at(-1), 'pmax');

  const again = await runCliJson<PruneJson>(['history', 'prune', '--older-than', '30d', '--yes'], env);
  t.same([again.json.droppedPartitions, again.json.deletedRows], [[], 0], 'a second run removes nothing more');
});

/** A running CLI whose output can be awaited as it comes. */
function startCli(args: string[]) {
  const child = spawn(process.execPath, [`${ROOT}bin/silo.js`, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '' };
  const listeners = new Set<() => void>();
  child.stdout.on('data', (d) => ((out.stdout += d), listeners.forEach((l) => l())));
  child.stderr.on('data', (d) => ((out.stderr += d), listeners.forEach((l) => l())));
  const done = new Promise<CliResult>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, ...out })));
  const until = (pred: (o: typeof out) => boolean) =>
    new Promise<void>((resolve, reject) => {
      const check = () => pred(out) && (listeners.delete(check), resolve());
      listeners.add(check);
      check();
      void done.then(() => (pred(out) ? resolve() : reject(new Error(`silo ${args.join(' ')} ended first:\n${out.stdout}\n${out.stderr}`))));
    });
  return { child, done, until };
}

t.test('tail --limit 3 prints the first three rows written after it started, then exits 0', async (t) => {
  const cli = startCli(['history', 'tail', '--interval-ms', '50', '--limit', '3']);
  await cli.until((o) => o.stderr.includes('following'));
  const fresh = [
    row(new Date(), ta.id, 201, 12, '/api/v1/tail-1'),
    row(new Date(), tb.id, 404, 3, '/api/v1/tail-2'),
    row(new Date(), null, 500, 99, '/api/v1/tail-3'),
    row(new Date(), ta.id, 200, 1, '/api/v1/tail-4'),
  ];
  for (const r of fresh) await k('request_history').insert(r);
  const r = await cli.done;
  t.equal(r.code, 0, `exit 0 (${r.stderr.trim()})`);
  const lines = r.stdout.trim().split('\n');
  t.equal(lines.length, 3);
  t.match(lines[0], /^\S+Z\s+hcli-a\s+\w+\s+201\s+[\d.]+ms\s+\/api\/v1\/tail-1\s+-$/);
  t.match(lines[1], /hcli-b .* 404 .*\/api\/v1\/tail-2/);
  t.match(lines[2], /\(none\) .* 500 .*\/api\/v1\/tail-3/);
  t.notMatch(r.stdout, /companies/, 'rows written before it started are not shown');
  t.match(r.stderr, /stopped after 3 row/);
});

t.test('tail --tenant follows one tenant and stops cleanly on SIGTERM', async (t) => {
  const cli = startCli(['history', 'tail', '--tenant', 'hcli-b', '--interval-ms', '50']);
  await cli.until((o) => o.stderr.includes('following'));
  await k('request_history').insert([
    row(new Date(), ta.id, 200, 1, '/api/v1/not-mine'),
    { ...row(new Date(), tb.id, 200, 1, '/api/v1/mine'), error_code: null },
  ]);
  await cli.until((o) => o.stdout.includes('/api/v1/mine'));
  cli.child.kill('SIGTERM');
  const r = await cli.done;
  t.equal(r.code, 0, 'exit 0 after SIGTERM');
  t.equal(r.signal, null);
  t.notMatch(r.stdout, /not-mine/);
  t.match(r.stderr, /stopped after 1 row/);
});
