/** `silo tenants ...`: the tenant lifecycle. */
import { Command } from 'commander';
import { z } from 'zod';
import { TENANT_STATUSES, type TenantStatus } from '../src/catalog/types.js';
import type { ProvisionResult } from '../src/provisioning/tenants-service.js';
import { assertValidSlug, isPendingSlug } from '../src/lib/identifiers.js';
import { confirmDestructive } from './confirm.js';
import { cliActor, fmtTime, note, parseOptions, printJson, printTable, say, withContext } from './runtime.js';
import { passwordFrom, UNSAFE_PASSWORD_HELP } from './password-input.js';
import { purgeCommand } from './tenants-purge.js';
import { repairCommand } from './tenants-repair.js';
import { backupCommand, backupsCommand, restoreCommand } from './tenants-backup.js';
import { revokeTokensCommand } from './tenants-tokens.js';
import { setPlanCommand, usageCommand } from './tenants-plan.js';
import { rotateCredentialsCommand } from './tenants-credentials.js';
import { migrateCommand, rollbackCommand, statusCommand } from './tenants-schema.js';
import { tenantView } from './views.js';

// Services are imported inside the actions: a command loads only what it runs (start-up time).
const lifecycle = () => import('../src/provisioning/tenants-service.js');

function printProvisioned(r: ProvisionResult, verb: string, json?: boolean): void {
  const adminPassword = r.admin.generatedPassword;
  if (json) {
    printJson({
      tenant: tenantView(r.tenant),
      operationId: r.operationId,
      admin: { email: r.admin.adminEmail, created: r.admin.adminCreated, ...(adminPassword ? { password: adminPassword } : {}) },
    });
    return;
  }
  say(
    `Tenant ${r.tenant.slug} ${verb}: ${r.tenant.status}, database ${r.tenant.databaseName}, schema ${r.tenant.schemaVersion ?? '-'} (operation ${r.operationId})`,
  );
  say(`Admin: ${r.admin.adminEmail}`);
  if (adminPassword) say(`Admin password (shown once, store it now): ${adminPassword}`);
}

export function tenantsCommand(): Command {
  const cmd = new Command('tenants').description('tenant lifecycle: create, migrate, repair, suspend, recreate, delete');

  cmd
    .command('create')
    .description('provision a tenant: catalog row, database, MySQL user, migrations, first admin')
    .argument('<slug>', 'tenant slug: 3-32 of a-z 0-9 -, starting with a letter')
    .option('--name <name>', 'display name (default: the slug)')
    .option('--plan <plan>', 'plan name (one of `silo plans list`)', 'standard')
    .option('--admin-email <email>', 'email of the first admin (default admin@<slug>.localhost)')
    .option('--admin-password-stdin', "read the first admin's password from stdin (one trailing newline trimmed; on a terminal, a prompt without echo)")
    .option('--admin-password <password>', `password of the first admin (default: generated and printed once); ${UNSAFE_PASSWORD_HELP} --admin-password-stdin`)
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  $ silo tenants create acme --name "Acme Inc" --admin-email admin@acme.test')
    .action(
      async (slug: string, o: { name?: string; plan: string; adminEmail?: string; adminPassword?: string; adminPasswordStdin?: boolean; json?: boolean }) => {
        assertValidSlug(slug);
        const adminPassword = await passwordFrom({ given: o.adminPassword, fromStdin: o.adminPasswordStdin, option: '--admin-password' });
        await withContext(async (ctx) => {
          const { createTenant } = await import('../src/provisioning/tenant-create.js');
          const r = await createTenant(ctx, { slug, name: o.name, plan: o.plan, adminEmail: o.adminEmail, adminPassword }, cliActor());
          printProvisioned(r, 'created', o.json);
        });
      },
    );

  cmd
    .command('list')
    .description('list tenants')
    .option('--status <status>', `only tenants in this status (${TENANT_STATUSES.join('|')})`)
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  $ silo tenants list --status active')
    .action(async (o: { status?: string; json?: boolean }) => {
      const { status } = parseOptions(z.object({ status: z.enum(TENANT_STATUSES as [TenantStatus, ...TenantStatus[]]).optional() }), { status: o.status });
      await withContext(async (ctx) => {
        const all = await ctx.catalog.tenants.list(status ? { statuses: [status] } : {});
        if (o.json) return printJson(all.map((t) => tenantView(t)));
        // Pending tenants (provisioned ahead for signups) are listed apart, after the others.
        const pending = all.filter((t) => isPendingSlug(t.slug));
        const tenants = all.filter((t) => !isPendingSlug(t.slug));
        const row = (t: (typeof all)[number]) => [t.slug, t.name, t.status, t.plan, t.schemaVersion, t.databaseName, fmtTime(t.createdAt)];
        const head = ['slug', 'name', 'status', 'plan', 'schema', 'database', 'created'];
        if (tenants.length || !pending.length) printTable(head, tenants.map(row));
        say(`${tenants.length} tenant(s)`);
        if (pending.length) {
          say('Pending (provisioned ahead, waiting for a signup):');
          printTable(head, pending.map(row));
          say(`${pending.filter((t) => t.status === 'pending').length} pending tenant(s)`);
        }
      });
    });

  cmd
    .command('show')
    .description('show one tenant, its domains and latest operations')
    .argument('<slug>')
    .option('--json', 'machine-readable output')
    .action(async (slug: string, o: { json?: boolean }) => {
      await withContext(async (ctx) => {
        const { getTenant } = await import('../src/provisioning/tenant-lookup.js');
        const t = await getTenant(ctx, slug, { includeDeleted: true });
        const domains = await ctx.catalog.tenants.listDomains(t.id);
        const ops = await ctx.catalog.operations.list({ tenantId: t.id, limit: 5 });
        if (o.json) return printJson({ ...tenantView(t, domains), recentOperations: ops });
        printTable(
          ['field', 'value'],
          [
            ['slug', t.slug],
            ['name', t.name],
            ['status', t.status + (t.statusReason ? ` (${t.statusReason})` : '')],
            ['plan', t.plan],
            ['database', t.databaseName],
            ['MySQL user', t.dbUser],
            ['schema version', t.schemaVersion],
            ['admin email', t.adminEmail],
            ['domains', domains.map((d) => d.domain).join(', ')],
            ['created', fmtTime(t.createdAt)],
            ['updated', fmtTime(t.updatedAt)],
            ...(t.deletedAt ? [['deleted', fmtTime(t.deletedAt)]] : []),
          ],
        );
        if (ops.length) {
          say('Recent operations:');
          printTable(
            ['id', 'kind', 'status', 'step', 'started', 'error'],
            ops.map((p) => [p.id, p.kind, p.status, p.step, fmtTime(p.startedAt), p.error]),
          );
        }
      });
    });

  cmd
    .command('rename')
    .description('give a tenant a new slug: only the catalog changes (no data moves); the old slug answers 404 and stays reserved')
    .argument('<slug>', 'current slug')
    .argument('<new-slug>', 'new slug: 3-32 of a-z 0-9 -, starting with a letter')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  $ silo tenants rename acme acme-corp')
    .action(async (slug: string, newSlug: string, o: { json?: boolean }) => {
      assertValidSlug(newSlug);
      await withContext(async (ctx) => {
        const { renameTenant } = await import('../src/provisioning/tenant-rename.js');
        const r = await renameTenant(ctx, slug, newSlug, cliActor());
        if (o.json)
          return printJson({ tenant: tenantView(r.tenant), operationId: r.operationId, previousSlug: r.previousSlug, reservedUntil: r.reservedUntil });
        say(`Tenant ${r.previousSlug} is now ${r.tenant.slug} (operation ${r.operationId}); database ${r.tenant.databaseName} unchanged.`);
        say(
          r.reservedUntil
            ? `The slug ${r.previousSlug} stays reserved for this tenant until ${fmtTime(r.reservedUntil)}.`
            : `The slug ${r.previousSlug} is free again.`,
        );
      });
    });

  const pendingCmd = cmd.command('pending').description('tenants provisioned ahead for signups (SILO_PENDING_TENANTS)');
  pendingCmd
    .command('fill')
    .description('provision pending tenants until N are pending (default SILO_PENDING_TENANTS)')
    .option('--count <n>', 'pending tenants wanted (0-1000)')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  $ silo tenants pending fill --count 5')
    .action(async (o: { count?: string; json?: boolean }) => {
      const { count } = parseOptions(z.object({ count: z.coerce.number().int().min(0).max(1000).optional() }), { count: o.count });
      await withContext(async (ctx) => {
        const { fillPendingTenants } = await import('../src/provisioning/pending-tenants.js');
        const target = count ?? ctx.config.signup.pendingTenants;
        const r = await fillPendingTenants(ctx, target, cliActor());
        if (o.json) return printJson({ target, ...r });
        if (!r.ran) return note(`another process is filling the pending tenants (${r.pending} pending now); nothing done`);
        say(`${r.created} pending tenant(s) provisioned; ${r.pending} pending (target ${target}).`);
      });
    });

  cmd.addCommand(migrateCommand());
  cmd.addCommand(rollbackCommand());
  cmd.addCommand(statusCommand());
  cmd.addCommand(repairCommand());
  cmd.addCommand(backupCommand());
  cmd.addCommand(backupsCommand());
  cmd.addCommand(restoreCommand());
  cmd.addCommand(revokeTokensCommand());
  cmd.addCommand(rotateCredentialsCommand());
  cmd.addCommand(purgeCommand());
  cmd.addCommand(setPlanCommand());
  cmd.addCommand(usageCommand());

  for (const verb of ['suspend', 'resume'] as const) {
    cmd
      .command(verb)
      .description(verb === 'suspend' ? 'suspend a tenant: its API answers 403, data stays' : 'resume a suspended tenant')
      .argument('<slug>')
      .option('--json', 'machine-readable output')
      .action(async (slug: string, o: { json?: boolean }) => {
        assertValidSlug(slug);
        await withContext(async (ctx) => {
          const { suspendTenant, resumeTenant } = await import('../src/provisioning/tenant-status.js');
          const t = verb === 'suspend' ? await suspendTenant(ctx, slug, cliActor()) : await resumeTenant(ctx, slug, cliActor());
          if (o.json) return printJson(tenantView(t));
          say(`Tenant ${t.slug} is ${t.status}.`);
        });
      });
  }

  const domains = cmd.command('domains').description('custom domains of a tenant');
  for (const verb of ['add', 'remove'] as const) {
    domains
      .command(verb)
      .description(`${verb} a custom domain (the API identifies the tenant by its Host header)`)
      .argument('<slug>')
      .argument('<domain>')
      .option('--json', 'machine-readable output')
      .addHelpText('after', `\nExample:\n  $ silo tenants domains ${verb} acme crm.acme.com`)
      .action(async (slug: string, domain: string, o: { json?: boolean }) => {
        assertValidSlug(slug);
        await withContext(async (ctx) => {
          const { addDomain, removeDomain } = await import('../src/provisioning/tenant-domains.js');
          const list = verb === 'add' ? await addDomain(ctx, slug, domain, cliActor()) : await removeDomain(ctx, slug, domain, cliActor());
          if (o.json) return printJson({ slug, domains: list.map((d) => d.domain) });
          say(`Domains of ${slug}: ${list.map((d) => d.domain).join(', ') || '(none)'}`);
        });
      });
  }

  cmd
    .command('recreate')
    .description('DESTRUCTIVE: back up to S3, drop the tenant database and user, then provision them afresh (empty data, new admin)')
    .argument('<slug>')
    .option('--admin-email <email>', 'first admin of the new database (default: the tenant admin email)')
    .option(
      '--admin-password-stdin',
      "read that admin's password from stdin (one trailing newline trimmed; on a terminal, a prompt without echo; from a pipe, add --yes)",
    )
    .option('--admin-password <password>', `password of that admin (default: generated and printed once); ${UNSAFE_PASSWORD_HELP} --admin-password-stdin`)
    .option('--no-backup', 'do not take the pre-recreate backup (the data is lost for good; only --confirm <slug> skips the question)')
    .option('-y, --yes', 'do not ask for confirmation (not enough with --no-backup)')
    .option('--confirm <slug>', 'confirm by naming the tenant: runs without a question, with or without a backup')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExamples:\n  $ silo tenants recreate acme --yes\n  $ silo tenants recreate acme --no-backup --confirm acme')
    .action(
      async (
        slug: string,
        o: { adminEmail?: string; adminPassword?: string; adminPasswordStdin?: boolean; backup: boolean; yes?: boolean; confirm?: string; json?: boolean },
      ) => {
        assertValidSlug(slug);
        const adminPassword = await passwordFrom({ given: o.adminPassword, fromStdin: o.adminPasswordStdin, option: '--admin-password' });
        await withContext(async (ctx) => {
          const { getTenant, recreateTenant } = await lifecycle();
          const t = await getTenant(ctx, slug);
          await confirmDestructive({
            slug,
            yes: o.yes,
            confirm: o.confirm,
            backedUp: o.backup,
            question: `This drops database ${t.databaseName} and every row of tenant ${slug}${o.backup ? ' (a pre-recreate backup is taken first)' : ', WITHOUT a backup'}.`,
          });
          const r = await recreateTenant(ctx, slug, cliActor(), { adminEmail: o.adminEmail, adminPassword, backup: o.backup });
          printProvisioned(r, 'recreated', o.json);
        });
      },
    );

  cmd
    .command('delete')
    .description('DESTRUCTIVE: back up to S3, then drop the tenant database and user; the catalog keeps the tenant as deleted (slug stays reserved)')
    .argument('<slug>')
    .option('--no-backup', 'do not take the pre-delete backup (the data is lost for good; only --confirm <slug> skips the question)')
    .option('-y, --yes', 'do not ask for confirmation (not enough with --no-backup)')
    .option('--confirm <slug>', 'confirm by naming the tenant: runs without a question, with or without a backup')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExamples:\n  $ silo tenants delete acme --yes\n  $ silo tenants delete acme --no-backup --confirm acme')
    .action(async (slug: string, o: { backup: boolean; yes?: boolean; confirm?: string; json?: boolean }) => {
      assertValidSlug(slug);
      await withContext(async (ctx) => {
        const { getTenant, deleteTenant } = await lifecycle();
        const t = await getTenant(ctx, slug);
        await confirmDestructive({
          slug,
          yes: o.yes,
          confirm: o.confirm,
          backedUp: o.backup,
          question: `This drops database ${t.databaseName} and MySQL user ${t.dbUser} of tenant ${slug}${o.backup ? ' (a pre-delete backup is taken first)' : ', WITHOUT a backup'}.`,
        });
        const r = await deleteTenant(ctx, slug, cliActor(), { backup: o.backup });
        if (o.json) return printJson({ tenant: tenantView(r.tenant), operationId: r.operationId });
        say(`Tenant ${slug} deleted (operation ${r.operationId}).`);
        note(o.backup ? `The slug stays reserved. To bring the tenant back: silo tenants restore ${slug} --latest` : 'The slug stays reserved.');
      });
    });
  return cmd;
}
