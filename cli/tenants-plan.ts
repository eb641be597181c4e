/** `silo tenants set-plan|usage`: a tenant's plan and what it uses of it. */
import { Command } from 'commander';
import { assertValidSlug } from '../src/lib/identifiers.js';
import { cliActor, fmtTime, printJson, printTable, say, withContext } from './runtime.js';
import { fmtBytes } from './tenants-backup.js';

export function setPlanCommand(): Command {
  return new Command('set-plan')
    .description("put a tenant on a plan (journaled as a set-plan operation); every API process applies the plan's limits within one poll interval")
    .argument('<slug>')
    .argument('<plan>', 'a plan of `silo plans list`')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  $ silo tenants set-plan acme pro')
    .action(async (slug: string, plan: string, o: { json?: boolean }) => {
      assertValidSlug(slug);
      await withContext(async (ctx) => {
        const { setTenantPlan } = await import('../src/provisioning/plans-service.js');
        const r = await setTenantPlan(ctx, slug, plan, cliActor());
        if (o.json) return printJson({ slug: r.tenant.slug, plan: r.tenant.plan, previousPlan: r.previousPlan, operationId: r.operationId });
        say(`Tenant ${slug} is on plan ${r.tenant.plan} (was ${r.previousPlan}; operation ${r.operationId}).`);
      });
    });
}

export function usageCommand(): Command {
  return new Command('usage')
    .description("what a tenant uses (users, contacts, companies, deals, attachment and database bytes, requests of the last 24 h) next to its plan's limits")
    .argument('<slug>')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  $ silo tenants usage acme --json')
    .action(async (slug: string, o: { json?: boolean }) => {
      assertValidSlug(slug);
      await withContext(async (ctx) => {
        const [{ getTenant }, { tenantUsage }] = await Promise.all([
          import('../src/provisioning/tenant-lookup.js'),
          import('../src/provisioning/tenant-usage.js'),
        ]);
        const u = await tenantUsage(ctx, await getTenant(ctx, slug));
        if (o.json) return printJson(u);
        const of = (used: string | number, limit: number | null, shown = String(limit)) => [used, limit === null ? 'unlimited' : shown];
        printTable(
          ['what', 'used', 'limit'],
          [
            ['users (active)', ...of(u.usage.users, u.limits.maxUsers)],
            ['contacts', ...of(u.usage.contacts, u.limits.maxContacts)],
            ['companies', u.usage.companies, ''],
            ['deals', u.usage.deals, ''],
            [
              'attachment bytes',
              ...of(`${fmtBytes(u.usage.attachmentBytes)} (${u.usage.attachmentBytes})`, u.limits.maxAttachmentBytes, fmtBytes(u.limits.maxAttachmentBytes)),
            ],
            ['database bytes', `${fmtBytes(u.usage.databaseBytes)} (${u.usage.databaseBytes})`, ''],
            ['requests, last 24 h', u.usage.requestsLast24h, u.limits.requestsPerMinute === null ? 'unlimited' : `${u.limits.requestsPerMinute}/min`],
          ],
        );
        say(`Tenant ${u.tenant}, plan ${u.plan}, measured ${fmtTime(u.at)}`);
      });
    });
}
