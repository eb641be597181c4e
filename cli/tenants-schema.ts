/** `silo tenants migrate|rollback|status`: tenant schema migrations. */
import { Command } from 'commander';
import { z } from 'zod';
import type { MigrateResult } from '../src/provisioning/migrate-service.js';

// Imported inside the actions: a command loads only what it runs (start-up time).
const service = () => import('../src/provisioning/migrate-service.js');
import { cliActor, note, opt, parseOptions, printJson, printTable, say, withContext } from './runtime.js';

export function migrateCommand(): Command {
  return new Command('migrate')
    .description('apply pending tenant migrations (per-tenant advisory lock; failures do not stop the others)')
    .argument('[slug...]', 'tenants to migrate')
    .option('--all', 'every active, suspended or in-maintenance tenant')
    .option('--concurrency <n>', 'tenants migrated at once (1-64)', '4')
    .option('--dry-run', 'list pending migrations, change nothing')
    .option('--verify', "read every tenant's own migrations table, not only the schema version the catalog recorded")
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExamples:\n  $ silo tenants migrate acme globex\n  $ silo tenants migrate --all --concurrency 8')
    .action(async (slugs: string[], o: { all?: boolean; concurrency: string; dryRun?: boolean; verify?: boolean; json?: boolean }) => {
      const { concurrency } = parseOptions(z.object({ concurrency: opt.int(1, 64) }), o);
      await withContext(async (ctx) => {
        const tty = Boolean(process.stderr.isTTY) && !o.json;
        // Loaded only for a terminal (start-up time).
        const cliProgress = tty ? (await import('cli-progress')).default : undefined;
        const bar = cliProgress
          ? new cliProgress.SingleBar(
              { stream: process.stderr, format: 'migrating {bar} {value}/{total} tenants | {slug}' },
              cliProgress.Presets.shades_classic,
            )
          : undefined;
        const { migrateTenants } = await service();
        const results = await migrateTenants(ctx, cliActor(), {
          slugs,
          all: Boolean(o.all),
          concurrency,
          dryRun: Boolean(o.dryRun),
          verify: Boolean(o.verify),
          onStart: (total) => bar?.start(total, 0, { slug: '' }),
          onResult: (r) => bar?.increment({ slug: r.slug }),
        });
        bar?.stop();
        const summary = summarize(results);
        if (o.json) printJson({ summary, tenants: results });
        else {
          printTable(
            ['tenant', 'outcome', 'applied', 'pending', 'schema', 'ms', 'error'],
            results.map((r) => [
              r.slug,
              r.outcome,
              r.applied.join(', '),
              r.outcome === 'would-migrate' ? r.pending.join(', ') : '',
              r.schemaVersion,
              r.durationMs,
              r.error,
            ]),
          );
          say(
            Object.entries(summary)
              .filter(([, n]) => n > 0)
              .map(([k, n]) => `${n} ${k}`)
              .join(', ') || 'no tenants',
          );
        }
        if (summary.failed > 0) process.exitCode = 1;
      });
    });
}

function summarize(results: MigrateResult[]) {
  const s = { total: results.length, migrated: 0, 'up-to-date': 0, 'would-migrate': 0, skipped: 0, failed: 0 };
  for (const r of results) s[r.outcome]++;
  return s;
}

export function rollbackCommand(): Command {
  return new Command('rollback')
    .description('undo the newest tenant migration(s) of one tenant')
    .argument('<slug>')
    .option('--step <n>', 'how many migrations to undo', '1')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  $ silo tenants rollback acme --step 1')
    .action(async (slug: string, o: { step: string; json?: boolean }) => {
      const { step } = parseOptions(z.object({ step: opt.int(1, 1000) }), o);
      await withContext(async (ctx) => {
        const { rollbackTenant } = await service();
        const r = await rollbackTenant(ctx, slug, cliActor(), step);
        if (o.json) return printJson({ slug, ...r });
        say(`Reverted ${r.reverted.join(', ')} on ${slug}; schema is now ${r.schemaVersion ?? '(empty)'} (operation ${r.operationId}).`);
      });
    });
}

export function statusCommand(): Command {
  return new Command('status')
    .description('applied and pending migrations per tenant, and drift (tables missing or extra)')
    .argument('[slug...]', 'tenants (default: all live tenants)')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  $ silo tenants status acme')
    .action(async (slugs: string[], o: { json?: boolean }) => {
      await withContext(async (ctx) => {
        const { tenantsSchemaStatus } = await service();
        const reports = await tenantsSchemaStatus(ctx, slugs);
        if (o.json) return printJson(reports);
        printTable(
          ['tenant', 'status', 'applied', 'pending', 'drift', 'error'],
          reports.map((r) => [
            r.slug,
            r.status,
            r.applied?.length ?? '',
            r.pending?.join(', ') ?? '',
            [...(r.drift?.missing.map((t) => `-${t}`) ?? []), ...(r.drift?.extra.map((t) => `+${t}`) ?? [])].join(' '),
            r.error,
          ]),
        );
        const behind = reports.filter((r) => r.pending?.length).length;
        if (behind) note(`${behind} tenant(s) have pending migrations: run \`silo tenants migrate --all\``);
      });
    });
}
