/** `silo tenants rotate-credentials`: new MySQL passwords for tenant accounts, online. */
import { Command } from 'commander';
import { z } from 'zod';
import { assertValidSlug } from '../src/lib/identifiers.js';
import { cliActor, EXIT, note, parseOptions, printJson, printTable, say, withContext } from './runtime.js';

export function rotateCredentialsCommand(): Command {
  return new Command('rotate-credentials')
    .description('give tenant MySQL accounts a new password while the API serves them (journaled; repair converges a crash)')
    .argument('[slugs...]', 'tenants to rotate')
    .option('--all', 'every active and suspended tenant')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExamples:\n  $ silo tenants rotate-credentials acme globex\n  $ silo tenants rotate-credentials --all --json')
    .action(async (slugs: string[], raw: { all?: boolean; json?: boolean }) => {
      const o = parseOptions(z.object({ all: z.boolean().default(false), json: z.boolean().default(false) }), raw);
      slugs.forEach((s) => assertValidSlug(s));
      await withContext(async (ctx) => {
        const { rotateCredentials } = await import('../src/provisioning/credentials-service.js');
        const r = await rotateCredentials(ctx, cliActor(), { slugs, all: o.all });
        if (r.tenants.some((x) => x.outcome === 'failed')) process.exitCode = EXIT.failed;
        if (o.json) return printJson(r);
        printTable(
          ['tenant', 'outcome', 'operation', 'reason'],
          r.tenants.map((x) => [x.slug, x.outcome, x.operationId, x.reason]),
        );
        say(
          `${r.tenants.filter((x) => x.outcome === 'rotated').length} of ${r.tenants.length} tenant account(s) have a new password (not shown: it is stored encrypted in the catalog).`,
        );
        if (r.tenants.some((x) => x.outcome === 'failed'))
          note('a failed rotation leaves the tenant served (the API tries both passwords); run it again or `silo tenants repair <slug>`');
      });
    });
}
