/** `silo platform-users add`: operators and support staff. */
import { Command } from 'commander';
import { addPlatformUser } from '../src/provisioning/users-service.js';
import { passwordFrom, UNSAFE_PASSWORD_HELP } from './password-input.js';
import { printJson, say, withContext } from './runtime.js';

export function platformUsersCommand(): Command {
  const cmd = new Command('platform-users').description('platform users: operators and support staff');
  cmd
    .command('add')
    .description('add a platform user (without a password option a strong one is generated and printed once)')
    .argument('<email>')
    .requiredOption('--role <role>', 'operator | support')
    .option('--password-stdin', 'read the password (at least 12 characters) from stdin, one trailing newline trimmed; on a terminal, a prompt without echo')
    .option('--password <password>', `at least 12 characters; ${UNSAFE_PASSWORD_HELP} --password-stdin`)
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  $ silo platform-users add ops@example.com --role operator')
    .action(async (email: string, o: { role: string; password?: string; passwordStdin?: boolean; json?: boolean }) => {
      await withContext(async (ctx) => {
        const u = await addPlatformUser(ctx, {
          email,
          role: o.role as 'operator',
          password: await passwordFrom({ given: o.password, fromStdin: o.passwordStdin, option: '--password' }),
        });
        if (o.json) return printJson(u);
        say(`Platform user ${u.email} (${u.role}) added with id ${u.id}.`);
        if (u.generatedPassword) say(`Password (shown once, store it now): ${u.generatedPassword}`);
      });
    });
  return cmd;
}
