/**
 * The CLI loads only the command group named on its command line (`cli/index.ts`), and
 * commands import their services inside their actions. That must not lose anything:
 * `silo --help` lists every group with its description, and `silo <command> --help`
 * exits 0 and lists every option and subcommand of that command as the fully loaded
 * program (`buildProgram`) defines them, for every command of the tree. `silo help <group>`
 * shows the group's subcommands too. No database is needed: help reads no configuration.
 */
import type { Command } from 'commander';
import pLimit from 'p-limit';
import t from 'tap';
import { buildProgram } from '../cli/index.js';
import { runCli } from './fixtures/env.js';

const program = await buildProgram();

/** Every command of the tree with its path below `silo` (the root is `[]`). */
function commands(cmd: Command, path: string[] = []): Array<{ path: string[]; cmd: Command }> {
  return [{ path, cmd }, ...cmd.commands.flatMap((c) => commands(c, [...path, c.name()]))];
}

const all = commands(program);
t.ok(all.length > 30, `the program has its commands (${all.length})`);

const top = await runCli(['--help'], {});
t.equal(top.code, 0, 'silo --help exits 0');
for (const group of program.commands) {
  t.match(top.stdout, new RegExp(`\\n  ${group.name()}\\b`), `silo --help lists ${group.name()}`);
  t.ok(top.stdout.replace(/\s+/g, ' ').includes(group.description().slice(0, 40)), `silo --help describes ${group.name()}`);
}

const limit = pLimit(2);
await Promise.all(
  all
    .filter((x) => x.path.length > 0)
    .map(({ path, cmd }) =>
      limit(async () => {
        const r = await runCli([...path, '--help'], {});
        const name = `silo ${path.join(' ')} --help`;
        t.equal(r.code, 0, `${name} exits 0`, { stderr: r.stderr });
        const missing = [
          ...cmd.options.map((o) => o.long ?? o.short ?? o.flags).filter((flag) => !r.stdout.includes(flag)),
          ...cmd.commands.map((c) => c.name()).filter((sub) => !new RegExp(`\\n  ${sub}\\b`).test(r.stdout)),
        ];
        t.same(missing, [], `${name} lists its ${cmd.options.length} options and ${cmd.commands.length} subcommands`);
      }),
    ),
);

for (const group of program.commands.filter((c) => c.commands.length)) {
  const r = await runCli(['help', group.name()], {});
  t.equal(r.code, 0, `silo help ${group.name()} exits 0`);
  t.same(
    group.commands.map((c) => c.name()).filter((sub) => !new RegExp(`\\n  ${sub}\\b`).test(r.stdout)),
    [],
    `silo help ${group.name()} lists its subcommands`,
  );
}
