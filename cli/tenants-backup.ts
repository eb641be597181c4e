/** `silo tenants backup|backups|restore`: tenant backups in S3. */
import { Command } from 'commander';
import { z } from 'zod';
import type { Backup } from '../src/catalog/index.js';
import { assertValidSlug } from '../src/lib/identifiers.js';
import { ValidationError } from '../src/lib/errors.js';
import { tenantView } from './views.js';
import { confirmDestructive } from './confirm.js';
import { cliActor, fmtTime, note, opt, parseOptions, printJson, printTable, say, withContext } from './runtime.js';

/** Bytes for people: 1.2 MiB. */
export function fmtBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

/** A backup for JSON output. */
export function backupView(b: Backup) {
  return { ...b };
}

export function backupCommand(): Command {
  return new Command('backup')
    .description('back up tenant databases to S3: a consistent gzip-compressed dump, recorded with its size and SHA-256')
    .argument('[slug...]', 'tenants to back up')
    .option('--all', 'every active or suspended tenant')
    .option('--concurrency <n>', 'tenants backed up at once (1-16)', '2')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExamples:\n  $ silo tenants backup acme\n  $ silo tenants backup --all --concurrency 4')
    .action(async (slugs: string[], o: { all?: boolean; concurrency: string; json?: boolean }) => {
      const { concurrency } = parseOptions(z.object({ concurrency: opt.int(1, 16) }), o);
      for (const s of slugs) assertValidSlug(s);
      if (o.all && slugs.length) throw new ValidationError('give tenant slugs or --all, not both');
      await withContext(async (ctx) => {
        const tty = Boolean(process.stderr.isTTY) && !o.json;
        // Loaded only for a terminal (start-up time).
        const cliProgress = tty ? (await import('cli-progress')).default : undefined;
        const bar = cliProgress
          ? new cliProgress.SingleBar(
              { stream: process.stderr, format: 'backing up {bar} {value}/{total} tenants | {slug}' },
              cliProgress.Presets.shades_classic,
            )
          : undefined;
        const { backupTenants } = await import('../src/provisioning/backup-service.js');
        const results = await backupTenants(ctx, cliActor(), {
          slugs,
          all: Boolean(o.all),
          concurrency,
          onStart: (total) => bar?.start(total, 0, { slug: '' }),
          onResult: (r) => bar?.increment({ slug: r.slug }),
        });
        bar?.stop();
        const failed = results.filter((r) => r.outcome === 'failed').length;
        if (o.json) printJson({ summary: { total: results.length, completed: results.length - failed, failed }, tenants: results });
        else {
          printTable(
            ['tenant', 'outcome', 'backup', 'size', 'ms', 'operation', 'error'],
            results.map((r) => [r.slug, r.outcome, r.backupId, fmtBytes(r.sizeBytes), r.durationMs, r.operationId, r.error]),
          );
          say(`${results.length - failed} completed, ${failed} failed`);
        }
        if (failed > 0) process.exitCode = 1;
      });
    });
}

export function backupsCommand(): Command {
  return new Command('backups')
    .description('list the backups of a tenant, newest first (deleted tenants too)')
    .argument('<slug>')
    .option('--limit <n>', 'rows at most (1-1000)', '50')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  $ silo tenants backups acme')
    .action(async (slug: string, o: { limit: string; json?: boolean }) => {
      assertValidSlug(slug);
      const { limit } = parseOptions(z.object({ limit: opt.int(1, 1000) }), o);
      await withContext(async (ctx) => {
        const { listBackups } = await import('../src/provisioning/backup-service.js');
        const { backups } = await listBackups(ctx, slug, limit);
        if (o.json) return printJson(backups.map(backupView));
        printTable(
          ['id', 'kind', 'status', 'size', 'sha256', 'schema', 'created', 'operation', 'error'],
          backups.map((b) => [
            b.id,
            b.kind,
            b.status,
            fmtBytes(b.sizeBytes),
            b.sha256?.slice(0, 12),
            b.schemaVersion,
            fmtTime(b.createdAt),
            b.operationId,
            b.error?.slice(0, 80),
          ]),
        );
        say(`${backups.length} backup(s)`);
      });
    });
}

export function restoreCommand(): Command {
  return new Command('restore')
    .description('DESTRUCTIVE: replace the tenant database with a backup (a pre-restore backup of the current state is taken first)')
    .argument('<slug>')
    .option('--backup <id>', 'the backup to restore (see `silo tenants backups <slug>`)')
    .option('--latest', 'the newest completed backup')
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--confirm <slug>', 'confirm by naming the tenant: runs without a question')
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      '\nExamples:\n  $ silo tenants restore acme --latest\n  $ silo tenants restore acme --backup 42 --yes\n  $ silo tenants restore acme --latest --confirm acme',
    )
    .action(async (slug: string, o: { backup?: string; latest?: boolean; yes?: boolean; confirm?: string; json?: boolean }) => {
      assertValidSlug(slug);
      const { backup } = parseOptions(z.object({ backup: opt.int(1, Number.MAX_SAFE_INTEGER).optional() }), { backup: o.backup });
      if (backup === undefined && !o.latest)
        throw new ValidationError('name the backup to restore with --backup <id>, or use --latest (list them: silo tenants backups <slug>)');
      if (backup !== undefined && o.latest) throw new ValidationError('give --backup <id> or --latest, not both');
      await withContext(async (ctx) => {
        const { getTenant } = await import('../src/provisioning/tenant-lookup.js');
        const t = await getTenant(ctx, slug, { includeDeleted: true });
        const which = backup !== undefined ? `backup ${backup}` : 'its newest backup';
        // The pre-restore backup is always taken (restore has no --no-backup): --yes is enough.
        await confirmDestructive({
          slug,
          yes: o.yes,
          confirm: o.confirm,
          backedUp: true,
          question: `This replaces every row of tenant ${slug} (database ${t.databaseName}) with ${which}; a pre-restore backup is taken first.`,
        });
        const { restoreTenant } = await import('../src/provisioning/restore-service.js');
        const r = await restoreTenant(ctx, slug, cliActor(), { ...(backup !== undefined ? { backupId: backup } : {}), latest: Boolean(o.latest) });
        if (o.json) {
          return printJson({
            tenant: tenantView(r.tenant),
            operationId: r.operationId,
            backup: r.backup,
            preRestoreBackup: r.preRestoreBackup ?? null,
            migrationsApplied: r.migrationsApplied,
          });
        }
        say(
          `Tenant ${slug} restored from backup ${r.backup.id} (${r.backup.kind}, ${fmtTime(r.backup.createdAt)}): ${r.tenant.status}, schema ${r.tenant.schemaVersion ?? '-'} (operation ${r.operationId})`,
        );
        if (r.migrationsApplied.length) say(`Migrations applied after the load: ${r.migrationsApplied.join(', ')}`);
        if (r.preRestoreBackup)
          note(
            `The state before the restore is backup ${r.preRestoreBackup.id} (pre-restore): silo tenants restore ${slug} --backup ${r.preRestoreBackup.id} undoes this.`,
          );
        if (t.status === 'deleted') note('The tenant was deleted and is active again; its custom domains were released at deletion and must be added again.');
      });
    });
}
