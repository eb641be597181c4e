/**
 * Load generator process for the benchmarks: autocannon (programmatic) against one URL,
 * each request with headers picked at random from a list (one tenant's `X-Tenant` and
 * token per entry), so that many tenants can be spread over one run. Reads its settings
 * from the JSON file named by its only argument: `{ url, connections, durationS, headerSets, weights? }`
 * (`weights`: one per header set, relative; a set is then picked with that probability, e.g. a Zipf law).
 * Prints autocannon's result as one JSON object on stdout.
 */
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

const cfg = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as {
  url: string;
  connections: number;
  durationS: number;
  headerSets: Array<Record<string, string>>;
  weights?: number[];
};
const sets = cfg.headerSets;
// Cumulative weights, searched by bisection: a weighted pick in O(log n) per request.
const cumulative: number[] = [];
for (const w of cfg.weights ?? []) cumulative.push((cumulative.at(-1) ?? 0) + w);
const total = cumulative.at(-1) ?? 0;
function pick(): Record<string, string> {
  if (total === 0) return sets[Math.floor(Math.random() * sets.length)]!;
  const r = Math.random() * total;
  let lo = 0;
  let hi = cumulative.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cumulative[mid]! > r) hi = mid;
    else lo = mid + 1;
  }
  return sets[lo]!;
}
const result = await autocannon({
  url: cfg.url,
  connections: cfg.connections,
  duration: cfg.durationS,
  requests: [{ setupRequest: (req: Record<string, unknown>) => ({ ...req, headers: { ...(req.headers as object), ...pick() } }) }],
});
process.stdout.write(`${JSON.stringify(result)}\n`);
