/**
 * Load generator process for the benchmarks: autocannon (programmatic) against one URL,
 * each request with headers picked at random from a list (one tenant's `X-Tenant` and
 * token per entry), so that many tenants can be spread over one run. Reads its settings
 * from the JSON file named by its only argument: `{ url, connections, durationS, headerSets }`.
 * Prints autocannon's result as one JSON object on stdout.
 */
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

const cfg = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as {
  url: string;
  connections: number;
  durationS: number;
  headerSets: Array<Record<string, string>>;
};
const sets = cfg.headerSets;
const result = await autocannon({
  url: cfg.url,
  connections: cfg.connections,
  duration: cfg.durationS,
  requests: [
    { setupRequest: (req: Record<string, unknown>) => ({ ...req, headers: { ...(req.headers as object), ...sets[Math.floor(Math.random() * sets.length)] } }) },
  ],
});
process.stdout.write(`${JSON.stringify(result)}\n`);
