/** `silo operations list`: the journal of lifecycle actions. */
import { Command } from 'commander';
import { z } from 'zod';
import { getTenant } from '../src/provisioning/tenants-service.js';
import { fmtTime, opt, parseOptions, printJson, printTable, say, withContext } from './runtime.js';
import { operationView } from './views.js';

export function operationsCommand(): Command {
  const cmd = new Command('operations').description('lifecycle operations (create, migrate, repair, ...)');
  cmd
    .command('list')
    .description('newest operations first')
    .option('--tenant <slug>', 'only this tenant')
    .option('--status <status>', 'running | succeeded | failed')
    .option('--limit <n>', 'rows (1-1000)', '50')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  $ silo operations list --tenant acme --status failed')
    .action(async (o: { tenant?: string; status?: string; limit: string; json?: boolean }) => {
      const p = parseOptions(z.object({ limit: opt.int(1, 1000), status: z.enum(['running', 'succeeded', 'failed']).optional() }), o);
      await withContext(async (ctx) => {
        const tenantId = o.tenant ? (await getTenant(ctx, o.tenant, { includeDeleted: true })).id : undefined;
        const ops = await ctx.catalog.operations.list({ ...(tenantId ? { tenantId } : {}), ...(p.status ? { status: p.status } : {}), limit: p.limit });
        if (o.json) return printJson(ops.map(operationView));
        printTable(
          ['id', 'tenant', 'kind', 'status', 'step', 'actor', 'started', 'ms', 'error'],
          ops.map((x) => [x.id, x.tenantSlug, x.kind, x.status, x.step, x.actor, fmtTime(x.startedAt), operationView(x).durationMs, x.error?.slice(0, 120)]),
        );
        say(`${ops.length} operation(s)`);
      });
    });
  return cmd;
}
