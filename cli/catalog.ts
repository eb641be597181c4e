/** `silo catalog migrate|status`: the catalog database's own schema. */
import { Command } from 'commander';
import { catalogMigrationStatus, migrateCatalog } from '../src/catalog/db.js';
import { DEFAULT_SERVER_NAME } from '../src/catalog/servers.js';
import { note, printJson, printTable, say, withContext } from './runtime.js';

export function catalogCommand(): Command {
  const cmd = new Command('catalog').description('the catalog database (tenants, servers, operations, ...)');

  cmd
    .command('migrate')
    .description('create the catalog database if missing, apply pending catalog migrations, register the default database server')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  $ silo catalog migrate')
    .action(async (o: { json?: boolean }) => {
      await withContext(async (ctx) => {
        const applied = await migrateCatalog(ctx.config, ctx.config.migrationLockTimeoutS);
        const serverId = await ctx.catalog.servers.upsert(DEFAULT_SERVER_NAME, ctx.config.tenantDb);
        if (ctx.config.secrets.isDevelopmentKey)
          note(
            'warning: NODE_ENV=development: secrets are encrypted with the development key published in the repository (run `silo init` for a key of your own)',
          );
        if (o.json) return printJson({ database: ctx.config.catalog.database, applied, defaultServerId: serverId });
        say(applied.length ? `Applied ${applied.length} catalog migration(s): ${applied.join(', ')}` : 'Catalog is up to date.');
        say(`Default database server: ${ctx.config.tenantDb.host}:${ctx.config.tenantDb.port} (id ${serverId})`);
      });
    });

  cmd
    .command('status')
    .description('list applied and pending catalog migrations')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      await withContext(async (ctx) => {
        const s = await catalogMigrationStatus(ctx.catalog.knex);
        if (o.json) return printJson({ database: ctx.config.catalog.database, ...s });
        printTable(['migration', 'state'], [...s.applied.map((n) => [n, 'applied']), ...s.pending.map((n) => [n, 'pending'])]);
        say(s.pending.length ? `${s.pending.length} pending: run \`silo catalog migrate\`` : 'Catalog is up to date.');
      });
    });
  return cmd;
}
