/** `silo users add`: add a user to a tenant. */
import { Command } from 'commander';
import { addTenantUser } from '../src/provisioning/users-service.js';
import { passwordFrom, UNSAFE_PASSWORD_HELP } from './password-input.js';
import { printJson, say, withContext } from './runtime.js';

export function usersCommand(): Command {
  const cmd = new Command('users').description('users of a tenant');
  cmd
    .command('add')
    .description('add a tenant user (without a password option a strong one is generated and printed once)')
    .argument('<slug>', 'tenant')
    .argument('<email>')
    .requiredOption('--role <role>', 'admin | manager | staff | a custom role of the tenant (GET /api/v1/roles)')
    .option('--password-stdin', 'read the password (at least 12 characters) from stdin, one trailing newline trimmed; on a terminal, a prompt without echo')
    .option('--password <password>', `at least 12 characters; ${UNSAFE_PASSWORD_HELP} --password-stdin`)
    .option('--name <fullName>', 'full name')
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      '\nExamples:\n  $ silo users add acme jane@acme.test --role manager\n  $ printf %s "$PW" | silo users add acme jane@acme.test --role manager --password-stdin',
    )
    .action(async (slug: string, email: string, o: { role: string; password?: string; passwordStdin?: boolean; name?: string; json?: boolean }) => {
      await withContext(async (ctx) => {
        const u = await addTenantUser(ctx, slug, {
          email,
          role: o.role,
          password: await passwordFrom({ given: o.password, fromStdin: o.passwordStdin, option: '--password' }),
          fullName: o.name,
        });
        if (o.json) return printJson({ tenant: slug, ...u });
        say(`User ${u.email} (${u.role}) added to ${slug} with id ${u.id}.`);
        if (u.generatedPassword) say(`Password (shown once, store it now): ${u.generatedPassword}`);
      });
    });
  return cmd;
}
