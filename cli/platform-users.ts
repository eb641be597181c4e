/** `silo platform-users add`: operators and support staff. */
import { Command } from 'commander';
import { addPlatformUser } from '../src/provisioning/users-service.js';
import { printJson, say, withContext } from './runtime.js';

export function platformUsersCommand(): Command {
  const cmd = new Command('platform-users').description('platform users: operators and support staff');
  cmd
    .command('add')
    .description('add a platform user (without --password a strong one is generated and printed once)')
    .argument('<email>')
    .requiredOption('--role <role>', 'operator | support')
    .option('--password <password>', 'at least 12 characters')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  $ silo platform-users add ops@example.com --role operator')
    .action(async (email: string, o: { role: string; password?: string; json?: boolean }) => {
      await withContext(async (ctx) => {
        const u = await addPlatformUser(ctx, { email, role: o.role as 'operator', password: o.password });
        if (o.json) return printJson(u);
        say(`Platform user ${u.email} (${u.role}) added with id ${u.id}.`);
        if (u.generatedPassword) say(`Password (shown once, store it now): ${u.generatedPassword}`);
      });
    });
  return cmd;
}
