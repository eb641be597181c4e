/** `silo secrets rotate`: stored secrets re-encrypted under the current `SILO_SECRET_KEY`. */
import { Command } from 'commander';
import { z } from 'zod';
import { rotateStoredSecrets } from '../src/catalog/secret-rotation.js';
import { EXIT, note, parseOptions, printJson, printTable, say, withContext } from './runtime.js';

export function secretsCommand(): Command {
  const cmd = new Command('secrets').description('secrets stored in the catalog (encrypted with SILO_SECRET_KEY)');

  cmd
    .command('rotate')
    .description(
      're-encrypt every stored secret under SILO_SECRET_KEY, reading with SILO_SECRET_KEY_PREVIOUS; resumable, rows already under the current key are skipped',
    )
    .option('--dry-run', 'count what would be re-encrypted, change nothing')
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      `
Rollout of a new key, with no downtime:
  1. deploy every process with SILO_SECRET_KEY=<new> and SILO_SECRET_KEY_PREVIOUS=<old>
  2. $ silo secrets rotate            (again after a crash: it finishes the rest)
  3. deploy every process without SILO_SECRET_KEY_PREVIOUS`,
    )
    .action(async (raw: { dryRun?: boolean; json?: boolean }) => {
      const o = parseOptions(z.object({ dryRun: z.boolean().default(false), json: z.boolean().default(false) }), raw);
      await withContext(async (ctx) => {
        const r = await rotateStoredSecrets(ctx.catalog.knex, ctx.config.catalog.database, ctx.config.secrets, { dryRun: o.dryRun });
        if (r.total.unreadable) process.exitCode = EXIT.failed;
        if (o.json) return printJson(r);
        if (!r.previousKey) note('note: SILO_SECRET_KEY_PREVIOUS is not set: only values already readable with SILO_SECRET_KEY can be re-encrypted');
        printTable(
          ['column', 'rows', 'current', o.dryRun ? 'to rotate' : 'rotated', 'unreadable'],
          r.columns.map((c) => [`${c.table}.${c.column}`, c.rows, c.current, o.dryRun ? c.rotate : c.rotated, c.unreadable]),
        );
        say(
          `${o.dryRun ? 'Dry run: would re-encrypt' : 'Re-encrypted'} ${o.dryRun ? r.total.rotate : r.total.rotated} of ${r.total.rows} stored secret(s) under key ${r.keyId}; ${r.total.current} already under it.`,
        );
        for (const c of r.columns) {
          if (c.unreadable)
            note(
              `${c.table}.${c.column}: ${c.unreadable} value(s) readable with neither key (ids ${c.unreadableIds.slice(0, 20).join(', ')}${c.unreadable > 20 ? ', ...' : ''}): left as they are`,
            );
        }
      });
    });
  return cmd;
}
