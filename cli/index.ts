/**
 * `silo`: the operator's CLI. The entry only assembles the command groups and maps
 * errors to exit codes (0 ok, 1 failed, 2 usage error).
 *
 * Start-up cost: only the group named on the command line is loaded (`silo tenants ...`
 * imports `tenants.ts`, and its commands import their services inside their actions);
 * the other groups are stand-ins that carry their name and description for `silo --help`.
 * `GROUPS` must list every group: `test/cli-help.test.ts` runs `--help` of every command
 * of the fully loaded program ({@link buildProgram}) and checks that the lazy one shows the same.
 */
import { Command, CommanderError, Help } from 'commander';
import { EXIT } from './exit.js';

/** One top-level command group: what `silo --help` shows of it without loading it, and how to load it. */
interface Group {
  name: string;
  /** Its line in `silo --help` (name plus usage, e.g. `init [options]`). */
  term: string;
  description: string;
  load: () => Promise<Command>;
}

const GROUPS: readonly Group[] = [
  {
    name: 'init',
    term: 'init [options]',
    description: 'write a .env in the working directory (mode 0600) with fresh SILO_SECRET_KEY and SILO_JWT_SECRET; existing values are never replaced',
    load: async () => (await import('./init.js')).initCommand(),
  },
  {
    name: 'catalog',
    term: 'catalog',
    description: 'the catalog database (tenants, servers, operations, ...)',
    load: async () => (await import('./catalog.js')).catalogCommand(),
  },
  {
    name: 'tenants',
    term: 'tenants',
    description: 'tenant lifecycle: create, migrate, repair, suspend, recreate, delete',
    load: async () => (await import('./tenants.js')).tenantsCommand(),
  },
  {
    name: 'plans',
    term: 'plans',
    description: 'plans: what tenants on each may use (users, contacts, attachment bytes, requests per minute)',
    load: async () => (await import('./plans.js')).plansCommand(),
  },
  { name: 'users', term: 'users', description: 'users of a tenant', load: async () => (await import('./users.js')).usersCommand() },
  {
    name: 'platform-users',
    term: 'platform-users',
    description: 'platform users: operators and support staff',
    load: async () => (await import('./platform-users.js')).platformUsersCommand(),
  },
  {
    name: 'operations',
    term: 'operations',
    description: 'lifecycle operations (create, migrate, repair, ...)',
    load: async () => (await import('./operations.js')).operationsCommand(),
  },
  {
    name: 'history',
    term: 'history',
    description: 'request history: statistics, live tail, retention, partitions ahead',
    load: async () => (await import('./history.js')).historyCommand(),
  },
  {
    name: 'secrets',
    term: 'secrets',
    description: 'secrets stored in the catalog (encrypted with SILO_SECRET_KEY)',
    load: async () => (await import('./secrets.js')).secretsCommand(),
  },
  {
    name: 'serve',
    term: 'serve',
    description: 'run the API (HOST, PORT and the SILO_* settings); stops gracefully on SIGINT/SIGTERM',
    load: async () => (await import('./serve.js')).serveCommand(),
  },
];

/** The group a command line names (`silo <group> ...` or `silo help <group>`), if any. */
function groupOf(args: readonly string[]): Group | undefined {
  const words = args.filter((a) => !a.startsWith('-'));
  const name = words[0] === 'help' ? words[1] : words[0];
  return GROUPS.find((g) => g.name === name);
}

/**
 * Builds the `silo` program with the groups in `load` loaded and the others as stand-ins
 * (a name and a description, no subcommands).
 */
async function assemble(load: (g: Group) => boolean): Promise<Command> {
  const terms = new Map<Command, string>();
  const program = new Command('silo')
    .description('Silo: control plane for database-per-tenant SaaS (catalog, tenant lifecycle, migrations)')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const loaded = await Promise.all(GROUPS.map((g) => (load(g) ? g.load() : Promise.resolve(null))));
  GROUPS.forEach((g, i) => {
    const cmd = loaded[i] ?? new Command(g.name).description(g.description);
    if (!loaded[i]) terms.set(cmd, g.term);
    program.addCommand(cmd);
  });
  program.configureHelp({
    subcommandTerm(this: Help, cmd: Command): string {
      return terms.get(cmd) ?? Help.prototype.subcommandTerm.call(this, cmd);
    },
  });
  // Subcommands inherit exitOverride so that usage errors reach our handler (exit 2).
  const walk = (c: Command) => {
    c.exitOverride();
    c.commands.forEach(walk);
  };
  walk(program);
  return program;
}

/** Builds the whole `silo` program, every group loaded (for tests and tools that walk it). */
export function buildProgram(): Promise<Command> {
  return assemble(() => true);
}

/** Runs `silo` with `argv` (node + script + args) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const wanted = groupOf(argv.slice(2));
  const program = await assemble((g) => g === wanted);
  const json = argv.includes('--json');
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.ok;
      return EXIT.usage;
    }
    const { reportError } = await import('./runtime.js');
    return reportError(err, json);
  }
}
