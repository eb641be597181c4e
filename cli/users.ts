/** `silo users add`: add a user to a tenant. */
import { Command } from 'commander';
import { addTenantUser } from '../src/provisioning/users-service.js';
import { printJson, say, withContext } from './runtime.js';

export function usersCommand(): Command {
  const cmd = new Command('users').description('users of a tenant');
  cmd
    .command('add')
    .description('add a tenant user (without --password a strong one is generated and printed once)')
    .argument('<slug>', 'tenant')
    .argument('<email>')
    .requiredOption('--role <role>', 'admin | manager | staff')
    .option('--password <password>', 'at least 12 characters')
    .option('--name <fullName>', 'full name')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  $ silo users add acme jane@acme.test --role manager')
    .action(async (slug: string, email: string, o: { role: string; password?: string; name?: string; json?: boolean }) => {
      await withContext(async (ctx) => {
        const u = await addTenantUser(ctx, slug, { email, role: o.role as 'staff', password: o.password, fullName: o.name });
        if (o.json) return printJson({ tenant: slug, ...u });
        say(`User ${u.email} (${u.role}) added to ${slug} with id ${u.id}.`);
        if (u.generatedPassword) say(`Password (shown once, store it now): ${u.generatedPassword}`);
      });
    });
  return cmd;
}
