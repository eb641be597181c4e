/** `silo serve`: run the API. */
import { Command } from 'commander';
import { cliConfig, note } from './runtime.js';

export function serveCommand(): Command {
  return new Command('serve')
    .description('run the API (HOST, PORT and the SILO_* settings); stops gracefully on SIGINT/SIGTERM')
    .addHelpText('after', '\nExample:\n  $ SILO_JWT_SECRET=$(openssl rand -base64 48) silo serve')
    .action(async () => {
      const { startServer } = await import('../src/http/server.js');
      const { url } = await startServer(await cliConfig());
      note(`Silo API listening on ${url} (docs: ${url}/docs)`);
      // Keep running until a signal; close-with-grace exits the process.
      await new Promise<never>(() => undefined);
    });
}
