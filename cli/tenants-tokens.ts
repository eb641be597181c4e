/** `silo tenants revoke-tokens`: refuse every token issued for a tenant so far. */
import { Command } from 'commander';
import { assertValidSlug } from '../src/lib/identifiers.js';
import { cliActor, printJson, say, withContext } from './runtime.js';

export function revokeTokensCommand(): Command {
  return new Command('revoke-tokens')
    .description(
      'start a new token generation: every access and refresh token of the tenant is refused (401 TOKEN_REVOKED) by every API process within one poll interval; users sign in again',
    )
    .argument('<slug>')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  $ silo tenants revoke-tokens acme')
    .action(async (slug: string, o: { json?: boolean }) => {
      assertValidSlug(slug);
      await withContext(async (ctx) => {
        const { revokeTenantTokens } = await import('../src/provisioning/token-service.js');
        const r = await revokeTenantTokens(ctx, slug, cliActor());
        if (o.json) return printJson({ slug: r.tenant.slug, generation: r.generation, operationId: r.operationId });
        say(`Every token of ${slug} issued so far is revoked (generation ${r.generation}, operation ${r.operationId}).`);
      });
    });
}
