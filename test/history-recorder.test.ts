/**
 * The request-history recorder under pressure: dropping the oldest row of a full buffer
 * costs O(1) (a buffer of 1,000,000 rows overflowing stays fast), one warning per
 * interval instead of one per request, rows after `close()` are counted as dropped, a
 * batch with a poisoned row (a value the column refuses in STRICT mode) writes the
 * others and drops that row with a count instead of retrying forever, and `close()`
 * waits for a flush in flight (or says what it lost).
 */
import t from 'tap';
import type { Logger } from 'pino';
import { HistoryRecorder, type HistoryRow } from '../src/history/recorder.js';
import { rootKnex, setupSilo } from './fixtures/env.js';

const { ctx, names } = await setupSilo(t);
const k = ctx.catalog.knex;

let seq = 0;
const row = (over: Partial<HistoryRow> = {}): HistoryRow => ({
  createdAt: new Date(),
  requestId: `rec-${++seq}`,
  tenantId: null,
  userId: null,
  userKind: null,
  method: 'GET',
  route: '/x',
  path: '/x',
  query: null,
  status: 200,
  durationMs: 1,
  responseBytes: 10,
  ip: null,
  userAgent: null,
  errorCode: null,
  ...over,
});

/** A logger that keeps what it is told. */
function captureLog() {
  const lines: Array<{ level: string; obj: unknown; msg: string }> = [];
  const at = (level: string) => (obj: unknown, msg?: string) => lines.push({ level, obj, msg: msg ?? String(obj) });
  const log = { warn: at('warn'), error: at('error'), info: at('info'), debug: at('debug') } as unknown as Logger;
  return { log, lines };
}
const countRows = async (prefix: string) => Number((await k('request_history').where('request_id', 'like', `${prefix}%`).count({ n: '*' }).first())?.n);

t.test('a full buffer of 1,000,000 rows drops its oldest in O(1) each, with one warning per interval', (t) => {
  const { log, lines } = captureLog();
  const r = new HistoryRecorder(k, { batchSize: 10_000_000, flushMs: 600_000, bufferMax: 1_000_000 }, log);
  t.teardown(() => r.close(0));
  const proto = row();
  for (let i = 0; i < 1_000_000; i++) r.record(proto);
  t.equal(r.stats.buffered, 1_000_000);
  const drops = 50_000;
  const started = process.hrtime.bigint();
  for (let i = 0; i < drops; i++) r.record(proto);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  t.equal(r.stats.dropped, drops);
  t.equal(r.stats.buffered, 1_000_000);
  t.ok(ms < 1_000, `${drops} drops from a full 1,000,000-row buffer took ${ms.toFixed(0)} ms (must be < 1000 ms)`);
  const warnings = lines.filter((l) => l.level === 'warn');
  t.equal(warnings.length, 1, `one warning for ${drops} drops within the interval, not ${warnings.length}`);
  t.end();
});

t.test('rows recorded after close() are counted as dropped', async (t) => {
  const r = new HistoryRecorder(k, { batchSize: 100, flushMs: 600_000, bufferMax: 1000 });
  r.record(row({ requestId: 'afterclose-before' }));
  t.equal(await r.close(), 0);
  r.record(row({ requestId: 'afterclose-late-1' }));
  r.record(row({ requestId: 'afterclose-late-2' }));
  t.equal(r.stats.dropped, 2);
  t.equal(r.stats.buffered, 0);
  t.equal(await countRows('afterclose-'), 1);
});

t.test('a poisoned row is dropped with a count and logged; the rest of its batch is written; no retry loop', async (t) => {
  const { log, lines } = captureLog();
  const r = new HistoryRecorder(k, { batchSize: 1000, flushMs: 600_000, bufferMax: 10_000 }, log);
  t.teardown(() => r.close(0));
  for (let i = 0; i < 9; i++) r.record(row({ requestId: `poison-ok-${i}` }));
  r.record(row({ requestId: 'poison-bad', status: 70_000 })); // SMALLINT UNSIGNED: out of range in STRICT mode
  for (let i = 9; i < 20; i++) r.record(row({ requestId: `poison-ok-${i}` }));
  await r.flush(true);
  t.equal(await countRows('poison-ok-'), 20, 'every good row of the batch is written');
  t.equal(await countRows('poison-bad'), 0);
  t.equal(r.stats.buffered, 0, 'nothing left to retry');
  t.equal(r.stats.rejected, 1, 'the poisoned row is counted');
  t.ok(
    lines.some((l) => l.level === 'error' && /rejected|dropped/.test(l.msg)),
    'and logged',
  );
  const inserts = r.stats.inserts;
  await r.flush(true);
  t.equal(r.stats.inserts, inserts, 'not retried: a second flush has nothing to write');
  t.equal(r.stats.dropped, 1);
});

t.test('close() waits for a flush in flight to finish', async (t) => {
  const locker = rootKnex();
  t.teardown(() => locker.destroy());
  const trx = await locker.transaction();
  // Hold a write lock on the table so that the recorder's INSERT waits.
  await trx.raw('LOCK TABLES ??.request_history WRITE', [names.catalog]);
  const r = new HistoryRecorder(k, { batchSize: 5, flushMs: 600_000, bufferMax: 1000 });
  for (let i = 0; i < 5; i++) r.record(row({ requestId: `inflight-${i}` })); // a full batch: the flush starts now
  await new Promise((res) => setTimeout(res, 300));
  const closing = r.close(10_000);
  setTimeout(() => {
    void trx
      .raw('UNLOCK TABLES')
      .then(() => trx.commit())
      .catch(() => undefined);
  }, 700);
  t.equal(await closing, 0, 'nothing lost');
  t.equal(await countRows('inflight-'), 5, 'when close() returns, the rows in flight are written');
});

t.test('close() that runs out of time reports the rows of the flush in flight as lost', async (t) => {
  const { log, lines } = captureLog();
  const locker = rootKnex();
  t.teardown(() => locker.destroy());
  const trx = await locker.transaction();
  await trx.raw('LOCK TABLES ??.request_history WRITE', [names.catalog]);
  const r = new HistoryRecorder(k, { batchSize: 4, flushMs: 600_000, bufferMax: 1000 }, log);
  for (let i = 0; i < 6; i++) r.record(row({ requestId: `lost-${i}` }));
  await new Promise((res) => setTimeout(res, 200));
  const lost = await r.close(300);
  t.equal(lost, 6, '4 in flight + 2 buffered');
  t.ok(lines.some((l) => l.level === 'error' && (l.obj as { lost?: number }).lost === 6));
  await trx.raw('UNLOCK TABLES');
  await trx.commit();
});
