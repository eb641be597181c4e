/** `silo tenants purge`: delete expired idempotency keys and expired or revoked refresh tokens. */
import { Command } from 'commander';
import { z } from 'zod';
import { assertValidSlug } from '../src/lib/identifiers.js';
import { ValidationError } from '../src/lib/errors.js';
import { parseOptions, printJson, printTable, say, withContext } from './runtime.js';

const purgeOptions = z.object({ all: z.boolean().optional(), json: z.boolean().optional() });

export function purgeCommand(): Command {
  return new Command('purge')
    .description(
      'delete idempotency keys older than 24 h and expired or revoked refresh tokens, through each tenant account (silo serve does it on SILO_MAINTENANCE_CRON)',
    )
    .argument('[slug...]', 'tenants to purge')
    .option('--all', 'every active or suspended tenant')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExamples:\n  $ silo tenants purge acme\n  $ silo tenants purge --all --json')
    .action(async (slugs: string[], o: Record<string, unknown>) => {
      const p = parseOptions(purgeOptions, o);
      for (const s of slugs) assertValidSlug(s);
      if (p.all && slugs.length) throw new ValidationError('give tenant slugs or --all, not both');
      if (!p.all && !slugs.length) throw new ValidationError('name the tenants to purge, or use --all');
      await withContext(async (ctx) => {
        const { purgeTenants } = await import('../src/jobs/purge.js');
        const results = await purgeTenants(ctx, { slugs, all: Boolean(p.all) });
        const failed = results.filter((r) => r.outcome === 'failed').length;
        if (p.json) printJson({ summary: { total: results.length, failed }, tenants: results });
        else {
          printTable(
            ['tenant', 'outcome', 'idempotency keys', 'refresh tokens', 'error'],
            results.map((r) => [r.slug, r.outcome, r.idempotencyKeys, r.refreshTokens, r.error]),
          );
          say(`${results.length - failed} tenant(s) done, ${failed} failed`);
        }
        if (failed > 0) process.exitCode = 1;
      });
    });
}
