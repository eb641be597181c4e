/**
 * `npm run bench -- <name> [options]`: runs one benchmark; a human table on stderr and
 * exactly one JSON object on stdout. Names:
 * - routing: baseline vs Silo with 1 and N tenants vs a naive Knex-per-tenant map.
 * - history: request history recording on vs off (requests/s ratio).
 * - provision: tenants created through the service vs the same DDL as plain SQL.
 * - migrate: `tenants migrate --all` across many tenants, up to date and with one new migration.
 * - history-stats: 24 h request-history statistics over 10,000,000 rows written through the recorder (rollups), and the dashboard's first paint.
 * - cli: wall time of `silo --help`, `silo tenants list` and `silo tenants create`, each a fresh process.
 * - tax: the per-request tax with one tenant, baseline and silo-1 alternately (req/s ratio and server CPU per request).
 * - signup: server time of a self-service signup, with a pending tenant to claim and without one.
 * - memory: RSS of `silo serve` idle, serving one tenant, after 300 tenants' sign-ins and after 10,000 tenants served; API CPU per request.
 */
const BENCHES: Record<string, () => Promise<{ run(argv: string[]): Promise<unknown> }>> = {
  routing: () => import('./routing.js'),
  history: () => import('./history.js'),
  provision: () => import('./provision.js'),
  migrate: () => import('./migrate.js'),
  memory: () => import('./memory.js'),
  tax: () => import('./tax.js'),
  cli: () => import('./cli.js'),
  'history-stats': () => import('./history-stats.js'),
  signup: () => import('./signup.js'),
};

const [name, ...argv] = process.argv.slice(2);
if (!name || !BENCHES[name]) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(BENCHES).join('|')}> [--option value ...]\n`);
  process.exit(2);
}
try {
  const result = await (await BENCHES[name]()).run(argv);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} catch (err) {
  process.stderr.write(`bench ${name} failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
}
