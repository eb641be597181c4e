/** `silo history stats | tail | prune | maintain`: the request history from the command line. */
import { setTimeout as delay } from 'node:timers/promises';
import { Command } from 'commander';
import { z } from 'zod';
import { archiveHistory, type HistoryArchive } from '../src/history/archive.js';
import { requireStore } from '../src/storage/s3.js';
import { historyAfter, lastHistoryId, type HistoryEntry } from '../src/history/query.js';
import { parseDuration, pruneHistory, type PruneResult } from '../src/history/retention.js';
import { EXACT_MAX_WINDOW_MS, historyStats, type HistoryStats } from '../src/history/stats.js';
import { countPartitionRows, ensureHistoryPartitions, listHistoryPartitions } from '../src/history/partitions.js';
import { backfillRollups } from '../src/history/rollup.js';
import { HISTORY_MONTHS_AHEAD } from '../src/jobs/maintenance.js';
import type { SiloContext } from '../src/context.js';
import { getTenant } from '../src/provisioning/tenants-service.js';
import { confirmTyped, fmtTime, note, opt, parseOptions, printJson, printTable, say, withContext } from './runtime.js';

const BREAKDOWNS = ['route', 'status', 'method', 'tenant', 'user'] as const;
type Breakdown = (typeof BREAKDOWNS)[number];

const statsOptions = z.object({
  tenant: z.string().optional(),
  since: z.string(),
  until: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 time such as 2026-05-01T00:00:00Z' }).optional(),
  by: z.enum(BREAKDOWNS),
  bucket: z.enum(['minute', 'hour', 'day']).optional(),
  top: opt.int(1, 100),
  exact: z.boolean().optional(),
  json: z.boolean().optional(),
});

const tailOptions = z.object({
  tenant: z.string().optional(),
  intervalMs: opt.int(50, 60_000),
  limit: opt.int(1, 1_000_000).optional(),
});

async function tenantIdOf(ctx: SiloContext, slug: string | undefined): Promise<number | undefined> {
  return slug ? (await getTenant(ctx, slug, { includeDeleted: true })).id : undefined;
}

const pct = (r: number) => `${(r * 100).toFixed(2)}%`;
const tenantLabel = (id: number | null, slug: string | null) => slug ?? (id === null ? '(none)' : `#${id}`);

/** Human output of `history stats`: totals and latency, one breakdown, the non-empty buckets of the series. */
function printStats(s: HistoryStats, by: Breakdown, tenant: string | undefined): void {
  say(`Request history ${fmtTime(s.window.from)} .. ${fmtTime(s.window.to)}${tenant ? `, tenant ${tenant}` : ''}`);
  say(
    s.method === 'exact'
      ? 'From the raw rows (percentiles exact).'
      : `From the rollups (percentiles within ${s.latency.relativeError * 100}% of the exact value).`,
  );
  const { totals: t, latency: l } = s;
  printTable(
    ['requests', '4xx', '5xx', 'error rate', 'mean ms', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'],
    [[t.requests, t.clientErrors, t.serverErrors, pct(t.errorRate), l.mean, l.p50, l.p95, l.p99, l.max]],
  );
  say(`By ${by}:`);
  if (by === 'route')
    printTable(
      ['route', 'requests', 'error rate', 'p95 ms'],
      s.byRoute.map((r) => [r.route ?? '(unmatched)', r.count, pct(r.errorRate), r.p95]),
    );
  if (by === 'status')
    printTable(
      ['status', 'requests'],
      s.byStatus.map((r) => [r.status, r.count]),
    );
  if (by === 'method')
    printTable(
      ['method', 'requests'],
      s.byMethod.map((r) => [r.method, r.count]),
    );
  if (by === 'tenant')
    printTable(
      ['tenant', 'id', 'requests', 'error rate'],
      s.byTenant.map((r) => [tenantLabel(r.tenantId, r.slug), r.tenantId, r.count, pct(r.errorRate)]),
    );
  if (by === 'user' && !s.byUser) note('By user: not kept by the rollups with a route, method or status filter; use --exact on a short window');
  if (by === 'user' && s.byUser) {
    const slugs = new Map(s.byTenant.map((r) => [r.tenantId, r.slug]));
    printTable(
      ['kind', 'user id', 'tenant', 'requests'],
      s.byUser.map((r) => [r.userKind, r.userId, r.tenantId === null ? '' : tenantLabel(r.tenantId, slugs.get(r.tenantId) ?? null), r.count]),
    );
  }
  const points = s.series.filter((p) => p.count > 0);
  say(`Per ${s.window.bucket}${points.length < s.series.length ? ` (${s.series.length - points.length} empty not shown)` : ''}:`);
  printTable(
    [s.window.bucket, 'requests', 'errors', 'p95 ms'],
    points.map((p) => [fmtTime(p.start), p.count, p.errors, p.p95]),
  );
}

/** One line of `history tail`: time, tenant, method, status, duration, path, error code. */
function tailLine(r: HistoryEntry): string {
  return [
    fmtTime(r.createdAt),
    tenantLabel(r.tenantId, r.tenantSlug).padEnd(12),
    r.method.padEnd(6),
    r.status,
    `${r.durationMs.toFixed(1)}ms`.padStart(9),
    r.path,
    r.errorCode ?? '-',
  ].join('  ');
}

function printPrune(r: PruneResult, dryRun: boolean, json?: boolean, archives?: HistoryArchive[]): void {
  if (json)
    return printJson({ dryRun, cutoff: r.cutoff, droppedPartitions: r.droppedPartitions, deletedRows: r.deletedRows, ...(archives ? { archives } : {}) });
  const verb = dryRun ? 'would be' : 'were';
  say(`Cutoff ${fmtTime(r.cutoff)}: rows created before it ${dryRun ? 'would be removed' : 'are removed'}.`);
  say(`Partitions that ${verb} dropped: ${r.droppedPartitions.join(', ') || '(none)'}`);
  say(`Other rows that ${verb} deleted (in batches): ${r.deletedRows}`);
  if (dryRun) note('Dry run: nothing was changed.');
}

function statsCommand(): Command {
  return new Command('stats')
    .description('totals, latency percentiles, a breakdown and a time series of the request history')
    .option('--tenant <slug>', 'only this tenant')
    .option('--since <duration>', 'window length before --until: 30m, 24h, 7d, 2w', '24h')
    .option('--until <time>', 'window end (exclusive), ISO 8601 (default: now)')
    .option('--by <breakdown>', `breakdown table (${BREAKDOWNS.join('|')})`, 'route')
    .option('--bucket <bucket>', 'series bucket: minute | hour | day (default: by window length)')
    .option('--top <n>', 'rows of each breakdown (1-100)', '10')
    .option('--exact', `compute from the raw rows (percentiles exact) instead of the rollups; windows of at most ${EXACT_MAX_WINDOW_MS / 60_000} minutes`)
    .option('--json', 'print the statistics document (as the API returns it)')
    .addHelpText('after', '\nExample:\n  $ silo history stats --tenant acme --since 7d --by status')
    .action(async (o: Record<string, unknown>) => {
      const p = parseOptions(statsOptions, o);
      const sinceMs = parseDuration(p.since, 'since');
      const to = p.until ? new Date(p.until) : new Date();
      const from = new Date(to.getTime() - sinceMs);
      await withContext(async (ctx) => {
        const tenantId = await tenantIdOf(ctx, p.tenant);
        const stats = await historyStats(
          ctx.catalog.knex,
          { from, to, ...(tenantId !== undefined ? { tenantId } : {}) },
          { top: p.top, exact: p.exact === true, ...(p.bucket ? { bucket: p.bucket } : {}) },
        );
        if (p.json) return printJson(stats);
        printStats(stats, p.by, p.tenant);
      });
    });
}

/**
 * Follows new rows by polling for ids above the last one seen. A row whose INSERT commits
 * after a higher id was already read is not shown (auto-increment ids are assigned before
 * commit); the recorder's single-statement inserts make that window short.
 */
function tailCommand(): Command {
  return new Command('tail')
    .description('print request-history rows as they are written (Ctrl-C stops)')
    .option('--tenant <slug>', 'only this tenant')
    .option('--interval-ms <ms>', 'poll interval in ms (50-60000)', '1000')
    .option('--limit <n>', 'stop after this many rows')
    .addHelpText('after', '\nExample:\n  $ silo history tail --tenant acme')
    .action(async (o: Record<string, unknown>) => {
      const p = parseOptions(tailOptions, o);
      await withContext(async (ctx) => {
        const knex = ctx.catalog.knex;
        const tenantId = await tenantIdOf(ctx, p.tenant);
        let after = await lastHistoryId(knex);
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        note(`following request_history after id ${after}${p.tenant ? ` for tenant ${p.tenant}` : ''} (Ctrl-C stops)`);
        let printed = 0;
        try {
          while (!stop.signal.aborted && printed < (p.limit ?? Infinity)) {
            const want = Math.min(500, (p.limit ?? Infinity) - printed);
            const rows = await historyAfter(knex, after, { ...(tenantId !== undefined ? { tenantId } : {}), limit: want });
            for (const r of rows) {
              say(tailLine(r));
              after = r.id;
            }
            printed += rows.length;
            if (rows.length < want) await delay(p.intervalMs, undefined, { signal: stop.signal }).catch(() => undefined);
          }
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
        note(`stopped after ${printed} row(s)`);
      });
    });
}

function pruneCommand(): Command {
  return new Command('prune')
    .description('DESTRUCTIVE: remove request-history rows older than a duration (drops whole months, deletes the rest in batches)')
    .requiredOption('--older-than <duration>', 'age of the rows to remove: 30m, 24h, 90d, 2w')
    .option('--dry-run', 'show what would be removed; change nothing')
    .option(
      '--archive',
      'first copy the rows to S3 as gzip-compressed NDJSON, one object per month under history/YYYY/MM/ (needs SILO_S3_BUCKET); nothing is removed if the copy fails',
    )
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExamples:\n  $ silo history prune --older-than 90d --dry-run\n  $ silo history prune --older-than 90d --yes')
    .action(async (o: { olderThan: string; dryRun?: boolean; archive?: boolean; yes?: boolean; json?: boolean }) => {
      const ageMs = parseDuration(o.olderThan, 'older-than');
      const cutoff = new Date(Date.now() - ageMs);
      await withContext(async (ctx) => {
        const knex = ctx.catalog.knex;
        const store = o.archive ? requireStore(ctx.storage, 'history prune --archive') : undefined;
        if (o.dryRun || !o.yes) {
          const plan = await pruneHistory(knex, { olderThan: cutoff, dryRun: true });
          if (o.dryRun) return printPrune(plan, true, o.json);
          const parts = plan.droppedPartitions.length
            ? `drops partition(s) ${plan.droppedPartitions.join(', ')} of request_history and deletes ${plan.deletedRows} more row(s)`
            : `deletes ${plan.deletedRows} row(s)`;
          await confirmTyped(`This ${parts}: every request-history row created before ${fmtTime(cutoff)}.`, 'prune');
        }
        let archives: HistoryArchive[] | undefined;
        if (store) {
          archives = await archiveHistory(knex, store, cutoff);
          if (!o.json) for (const a of archives) note(`archived ${a.rows} row(s) of ${a.month} to s3://${store.bucket}/${a.key} (${a.bytes} bytes)`);
        }
        printPrune(await pruneHistory(knex, { olderThan: cutoff }), false, o.json, archives);
      });
    });
}

/**
 * Makes the partitions of the coming months (what `silo serve` does at start and on its
 * schedule), moving rows that piled into `pmax` into their months, and adds the rows
 * that existed before the rollups were created to them (resumable, each row once:
 * `backfillRollups`).
 */
function maintainCommand(): Command {
  return new Command('maintain')
    .description(
      `make the monthly partitions of request_history up to ${HISTORY_MONTHS_AHEAD} months ahead (rows in pmax move to their month) and add rows older than the rollups to them; idempotent`,
    )
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  $ silo history maintain')
    .action(async (o: { json?: boolean }) => {
      await withContext(async (ctx) => {
        const knex = ctx.catalog.knex;
        const added = await ensureHistoryPartitions(knex, new Date(), HISTORY_MONTHS_AHEAD);
        const partitions = await listHistoryPartitions(knex);
        const pmaxRows = partitions.some((p) => p.name === 'pmax') ? await countPartitionRows(knex, 'pmax') : 0;
        const backfill = await backfillRollups(knex);
        if (o.json)
          return printJson({
            added,
            partitions: partitions.map((p) => ({ name: p.name, lessThan: p.lessThan })),
            pmaxRows,
            rollupBackfill: { added: backfill.added, done: backfill.done },
          });
        if (backfill.added) say(`Rows added to the rollups (written before they existed): ${backfill.added}`);
        if (!partitions.length) return note('request_history is not partitioned: nothing to do');
        say(`Partitions added: ${added.join(', ') || '(none: already there)'}`);
        say(`Newest month: ${partitions.filter((p) => p.lessThan).at(-1)?.name ?? '-'}; rows in pmax: ${pmaxRows}`);
        if (pmaxRows) note(`pmax holds ${pmaxRows} row(s) dated more than ${HISTORY_MONTHS_AHEAD} months ahead: check the API servers' clocks`);
      });
    });
}

export function historyCommand(): Command {
  const cmd = new Command('history').description('request history: statistics, live tail, retention, partitions ahead');
  cmd.addCommand(statsCommand());
  cmd.addCommand(tailCommand());
  cmd.addCommand(pruneCommand());
  cmd.addCommand(maintainCommand());
  return cmd;
}
