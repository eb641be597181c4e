/** `silo init`: a `.env` with fresh secrets for a new installation. */
import { Command } from 'commander';
import { initEnvFile } from '../src/lib/env-file.js';
import { note, printJson } from './runtime.js';

export function initCommand(): Command {
  return new Command('init')
    .description('write a .env in the working directory (mode 0600) with fresh SILO_SECRET_KEY and SILO_JWT_SECRET; existing values are never replaced')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  $ npx silo init && npx silo catalog migrate')
    .action((o: { json?: boolean }) => {
      // Reads no configuration: it is what makes one.
      const r = initEnvFile(process.cwd(), process.env);
      if (o.json) return printJson(r);
      if (r.written.length) note(`${r.created ? 'Created' : 'Updated'} ${r.path} (mode 0600): fresh ${r.written.join(' and ')} (values not shown)`);
      for (const name of r.kept) note(`${name}: already set in ${r.path}; kept`);
      for (const name of r.fromEnvironment) note(`${name}: set in the environment; not written to ${r.path} (the environment wins over .env)`);
      if (r.madePrivate && !r.written.length) note(`${r.path}: mode narrowed to 0600`);
      if (!r.written.length) note('Nothing to write.');
      note('Keep .env private and out of version control; back up SILO_SECRET_KEY: without it stored passwords cannot be read.');
    });
}
