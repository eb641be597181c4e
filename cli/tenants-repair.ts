/** `silo tenants repair`: converge tenants to their catalog record; report orphans. */
import { Command } from 'commander';
import { cliActor, note, printJson, printTable, say, withContext } from './runtime.js';

export function repairCommand(): Command {
  return new Command('repair')
    .description('resume failed creates, re-create missing databases/users/grants, apply pending migrations; with --all also report orphans')
    .argument('[slug...]', 'tenants to repair')
    .option('--all', 'every tenant, and report orphan databases and users with the tenant prefix')
    .option('--dry-run', 'show what would be done, change nothing')
    .option('--prune-orphans', 'with --all: drop orphan databases and users')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExamples:\n  $ silo tenants repair acme\n  $ silo tenants repair --all --dry-run')
    .action(async (slugs: string[], o: { all?: boolean; dryRun?: boolean; pruneOrphans?: boolean; json?: boolean }) => {
      await withContext(async (ctx) => {
        const { repairTenants } = await import('../src/provisioning/repair-service.js');
        const r = await repairTenants(ctx, cliActor(), { slugs, all: Boolean(o.all), dryRun: Boolean(o.dryRun), pruneOrphans: Boolean(o.pruneOrphans) });
        const failed = r.tenants.filter((t) => t.outcome === 'failed').length;
        if (failed) process.exitCode = 1;
        if (o.json) return printJson(r);
        printTable(
          ['tenant', 'before', 'after', 'outcome', 'actions', 'error'],
          r.tenants.map((t) => [t.slug, t.statusBefore, t.status, t.outcome, t.actions.join(', '), t.error ?? t.warnings?.join('; ')]),
        );
        for (const t of r.tenants) {
          if (t.admin?.generatedPassword) say(`New admin of ${t.slug}: ${t.admin.adminEmail} password (shown once): ${t.admin.generatedPassword}`);
        }
        if (r.orphans) {
          const { databases, users, pruned } = r.orphans;
          if (!databases.length && !users.length) say('No orphans.');
          else {
            say(
              `Orphans${pruned ? ' (dropped)' : ''}: databases ${databases.join(', ') || '-'}; users ${users.map((u) => `${u.user}@${u.host}`).join(', ') || '-'}`,
            );
            if (!pruned) note('Drop them with: silo tenants repair --all --prune-orphans');
          }
        }
      });
    });
}
