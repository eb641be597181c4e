/**
 * `silo`: the operator's CLI. The entry only assembles the command groups and maps
 * errors to exit codes (0 ok, 1 failed, 2 usage error).
 */
import { Command, CommanderError } from 'commander';
import { catalogCommand } from './catalog.js';
import { historyCommand } from './history.js';
import { initCommand } from './init.js';
import { operationsCommand } from './operations.js';
import { platformUsersCommand } from './platform-users.js';
import { secretsCommand } from './secrets.js';
import { serveCommand } from './serve.js';
import { EXIT, reportError } from './runtime.js';
import { tenantsCommand } from './tenants.js';
import { usersCommand } from './users.js';

/** Builds the `silo` program (exported for tests). */
export function buildProgram(): Command {
  const program = new Command('silo')
    .description('Silo: control plane for database-per-tenant SaaS (catalog, tenant lifecycle, migrations)')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const cmd of [
    initCommand(),
    catalogCommand(),
    tenantsCommand(),
    usersCommand(),
    platformUsersCommand(),
    operationsCommand(),
    historyCommand(),
    secretsCommand(),
    serveCommand(),
  ]) {
    program.addCommand(cmd);
  }
  // Subcommands inherit exitOverride so that usage errors reach our handler (exit 2).
  const walk = (c: Command) => {
    c.exitOverride();
    c.commands.forEach(walk);
  };
  walk(program);
  return program;
}

/** Runs `silo` with `argv` (node + script + args) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  const json = argv.includes('--json');
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.ok;
      return EXIT.usage;
    }
    return reportError(err, json);
  }
}
