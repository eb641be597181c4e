/**
 * `npm run bench -- history-stats [--rows 10000000] [--max-generate-s 420] [--batch 5000] [--tenants 50] [--rounds 3]`:
 * request-history statistics at scale (issue 14, part 6).
 *
 * 1. Generates `--rows` rows with timestamps spread over the last 24 h (in time order,
 *    as traffic arrives) through the recorder's write path (`HistoryRecorder.record` and
 *    its flushes: the raw INSERT and the rollups in one transaction), never by SQL. Over
 *    `--tenants` tenants, 12 routes, their methods, mostly 2xx with some 4xx/5xx, log-normal
 *    durations. Generation stops after `--max-generate-s` seconds whatever the count; the
 *    rows written and the rate (rows/s) are reported.
 * 2. 24 h statistics (`historyStats`, from the rollups) over those rows, `--rounds`
 *    times: target < 500 ms (the slowest round).
 * 3. The dashboard's first paint: the statistics request the dashboard page sends
 *    (`GET /platform/v1/history/stats?from&to`, 24 h, signed-in support user) through
 *    the API (in-process, `app.inject`), answered: target < 1 s (the slowest round). The
 *    page paints the statistics as soon as that answer arrives (src/http/dashboard/client.ts).
 * 4. For comparison, the same statistics computed from the raw rows over one hour (the
 *    longest window `exact` allows).
 * Whole run target: < 10 min.
 */
import { buildApp } from '../../src/http/app.js';
import { HistoryRecorder, type HistoryRow } from '../../src/history/recorder.js';
import { historyStats, EXACT_MAX_WINDOW_MS } from '../../src/history/stats.js';
import { addPlatformUser } from '../../src/provisioning/users-service.js';
import { benchEnv, machineFacts, parseArgs, printTable, round1 } from './common.js';
import { prng } from '../../test/fixtures/prng.js';

const STATS_TARGET_MS = 500;
const PAINT_TARGET_MS = 1000;
const RUN_TARGET_MS = 10 * 60_000;

const ROUTES: Array<[string, string, number]> = [
  ['GET', '/api/v1/contacts', 3],
  ['GET', '/api/v1/contacts/:id', 5],
  ['POST', '/api/v1/contacts', 0.6],
  ['PATCH', '/api/v1/contacts/:id', 0.5],
  ['GET', '/api/v1/companies', 1],
  ['GET', '/api/v1/companies/:id', 1.5],
  ['GET', '/api/v1/deals', 1.2],
  ['POST', '/api/v1/deals', 0.3],
  ['GET', '/api/v1/me', 2],
  ['POST', '/api/v1/auth/login', 0.2],
  ['POST', '/api/v1/auth/refresh', 0.4],
  ['GET', '/platform/v1/tenants', 0.05],
];

export async function run(argv: string[]): Promise<unknown> {
  const opts = parseArgs(argv, { rows: 10_000_000, maxGenerateS: 420, batch: 5000, tenants: 50, rounds: 3 });
  const started = Date.now();
  const b = await benchEnv({ SILO_HISTORY_ENABLED: '0' });
  try {
    const k = b.ctx.catalog.knex;
    const rnd = prng(6);
    const weights = ROUTES.map((r) => r[2]);
    const wsum = weights.reduce((a, x) => a + x, 0);
    const pickRoute = () => {
      let x = rnd() * wsum;
      for (const r of ROUTES) if ((x -= r[2]) < 0) return r;
      return ROUTES[0]!;
    };
    const to = new Date();
    const from = new Date(to.getTime() - 24 * 3_600_000);
    const span = to.getTime() - from.getTime();
    const normal = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
    const gen = (i: number): HistoryRow => {
      const [method, route] = pickRoute();
      // Tenants by a Zipf-like weight: a few busy ones, a long tail.
      const tenantId = 1 + Math.floor(opts.tenants * Math.pow(rnd(), 2));
      const s = rnd();
      const status = s < 0.9 ? (method === 'POST' ? 201 : 200) : s < 0.95 ? 404 : s < 0.98 ? 400 : s < 0.995 ? 401 : 500;
      return {
        createdAt: new Date(from.getTime() + Math.floor(((i + rnd()) / opts.rows) * span)),
        requestId: `bench-${i}`,
        tenantId,
        userId: 1 + Math.floor(rnd() * 20),
        userKind: 'tenant',
        method,
        route,
        path: route.replace(':id', String(1 + Math.floor(rnd() * 1000))),
        query: null,
        status,
        durationMs: Math.round(Math.exp(1.8 + 0.8 * normal()) * 1000) / 1000,
        responseBytes: 200 + Math.floor(rnd() * 4000),
        ip: '10.0.0.1',
        userAgent: 'bench',
        errorCode: status >= 400 ? 'BENCH' : null,
      };
    };

    // 1. Generation through the recorder's write path.
    const recorder = new HistoryRecorder(k, { batchSize: opts.batch, flushMs: 3_600_000, bufferMax: opts.batch * 4 });
    const genStart = Date.now();
    let generated = 0;
    let lastReport = genStart;
    while (generated < opts.rows && Date.now() - genStart < opts.maxGenerateS * 1000 && !b.signal.aborted) {
      const n = Math.min(opts.batch, opts.rows - generated);
      for (let i = 0; i < n; i++) recorder.record(gen(generated + i));
      generated += n;
      while (recorder.stats.buffered >= opts.batch || recorder.stats.written + recorder.stats.dropped < generated - opts.batch) await recorder.flush(true);
      if (Date.now() - lastReport > 15_000) {
        lastReport = Date.now();
        process.stderr.write(`  ${recorder.stats.written} rows written, ${Math.round(recorder.stats.written / ((Date.now() - genStart) / 1000))} rows/s\n`);
      }
    }
    while (recorder.stats.written + recorder.stats.dropped < generated) await recorder.flush(true);
    await recorder.close();
    const genMs = Date.now() - genStart;
    const written = recorder.stats.written;
    const rate = Math.round(written / (genMs / 1000));
    // When generation stopped early, the rows cover the first part of the 24 h only; the statistics still ask for 24 h.

    // 2. 24 h statistics from the rollups.
    const statsMs: number[] = [];
    let requests = 0;
    for (let i = 0; i < opts.rounds; i++) {
      const t0 = performance.now();
      const s = await historyStats(k, { from, to });
      statsMs.push(performance.now() - t0);
      requests = s.totals.requests;
    }
    // Where one 24 h statistics call spends its time: each SQL statement, from knex's query events.
    const startedAt = new Map<string, number>();
    const perQuery: Array<{ ms: number; sql: string }> = [];
    const onQuery = (q: { __knexQueryUid: string }) => startedAt.set(q.__knexQueryUid, performance.now());
    const onResponse = (_r: unknown, q: { __knexQueryUid: string; sql: string }) =>
      perQuery.push({ ms: round1(performance.now() - (startedAt.get(q.__knexQueryUid) ?? 0)), sql: q.sql.replace(/\s+/g, ' ').slice(0, 90) });
    k.on('query', onQuery).on('query-response', onResponse);
    await historyStats(k, { from, to });
    k.off('query', onQuery).off('query-response', onResponse);
    perQuery.sort((a, b) => b.ms - a.ms);
    if (requests !== written) throw new Error(`24 h statistics count ${requests} requests, ${written} were written`);

    // 3. The dashboard's first paint: its statistics request through the API.
    const app = await buildApp({ ctx: b.ctx });
    await app.ready();
    const paintMs: number[] = [];
    try {
      await addPlatformUser(b.ctx, { email: 'support@bench.test', role: 'support', password: 'bench-password-123' });
      const login = await app.inject({
        method: 'POST',
        url: '/platform/v1/auth/login',
        payload: { email: 'support@bench.test', password: 'bench-password-123' },
      });
      const token = login.json<{ accessToken: string }>().accessToken;
      for (let i = 0; i < opts.rounds; i++) {
        const now = new Date();
        const q = new URLSearchParams({ from: new Date(now.getTime() - 24 * 3_600_000).toISOString(), to: now.toISOString() });
        const t0 = performance.now();
        const res = await app.inject({ url: `/platform/v1/history/stats?${q.toString()}`, headers: { authorization: `Bearer ${token}` } });
        paintMs.push(performance.now() - t0);
        if (res.statusCode !== 200) throw new Error(`stats: ${res.statusCode} ${res.body}`);
      }
    } finally {
      await app.close();
    }

    // 4. For comparison: exact statistics (raw rows) of the longest window they allow, the last hour of the rows.
    const lastAt = new Date(from.getTime() + Math.floor((written / opts.rows) * span));
    const t0 = performance.now();
    const exact = await historyStats(k, { from: new Date(lastAt.getTime() - EXACT_MAX_WINDOW_MS), to: lastAt }, { exact: true });
    const exactMs = performance.now() - t0;
    const rollup1h = performance.now();
    await historyStats(k, { from: new Date(lastAt.getTime() - EXACT_MAX_WINDOW_MS), to: lastAt });
    const rollup1hMs = performance.now() - rollup1h;

    const [sizes] = (await k.raw(
      "SELECT TABLE_NAME AS name, TABLE_ROWS AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND (TABLE_NAME = 'request_history' OR TABLE_NAME LIKE 'request\\_rollup%') ORDER BY TABLE_NAME",
    )) as [Array<{ name: string; n: number }>];
    const runMs = Date.now() - started;
    const stats = Math.max(...statsMs);
    const paint = Math.max(...paintMs);
    const verdict = (ok: boolean) => (ok ? 'met' : 'missed');
    printTable(
      ['measure', 'value', 'target', ''],
      [
        [
          'rows written through the recorder',
          `${written} of ${opts.rows} in ${round1(genMs / 1000)} s (${rate} rows/s)`,
          String(opts.rows),
          verdict(written >= opts.rows),
        ],
        [
          '24 h statistics (rollups), slowest of rounds',
          `${round1(stats)} ms (${statsMs.map(round1).join(', ')})`,
          `< ${STATS_TARGET_MS} ms`,
          verdict(stats < STATS_TARGET_MS),
        ],
        [
          'dashboard first paint (its stats answer), slowest',
          `${round1(paint)} ms (${paintMs.map(round1).join(', ')})`,
          `< ${PAINT_TARGET_MS} ms`,
          verdict(paint < PAINT_TARGET_MS),
        ],
        ['whole run', `${round1(runMs / 1000)} s`, `< ${RUN_TARGET_MS / 1000} s`, verdict(runMs < RUN_TARGET_MS)],
        [`1 h exact (raw rows, ${exact.totals.requests} rows) vs rollups`, `${round1(exactMs)} ms vs ${round1(rollup1hMs)} ms`, '-', ''],
      ],
    );
    printTable(
      ['one 24 h statistics call: statement', 'ms'],
      perQuery.map((q) => [q.sql, q.ms]),
    );
    printTable(
      ['table', 'rows (estimate)'],
      sizes.map((s) => [s.name, s.n]),
    );
    return {
      machine: await machineFacts(b.root),
      options: opts,
      generation: { rowsWanted: opts.rows, rowsWritten: written, seconds: round1(genMs / 1000), rowsPerSecond: rate, dropped: recorder.stats.dropped },
      stats24h: { ms: statsMs.map(round1), targetMs: STATS_TARGET_MS, met: stats < STATS_TARGET_MS },
      dashboardFirstPaint: { ms: paintMs.map(round1), targetMs: PAINT_TARGET_MS, met: paint < PAINT_TARGET_MS },
      stats24hStatements: perQuery,
      exact1h: { ms: round1(exactMs), rows: exact.totals.requests, rollupsMs: round1(rollup1hMs) },
      tables: Object.fromEntries(sizes.map((s) => [s.name, Number(s.n)])),
      run: { seconds: round1(runMs / 1000), targetS: RUN_TARGET_MS / 1000, met: runMs < RUN_TARGET_MS },
    };
  } finally {
    await b.cleanup();
  }
}
