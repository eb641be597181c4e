/**
 * `npm run bench -- <name> [options]`: runs one benchmark; a human table on stderr and
 * exactly one JSON object on stdout. Names: history (more arrive with the benchmarks issue).
 */
const BENCHES: Record<string, () => Promise<{ run(argv: string[]): Promise<unknown> }>> = {
  history: () => import('./history.js'),
};

const [name, ...argv] = process.argv.slice(2);
if (!name || !BENCHES[name]) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(BENCHES).join('|')}> [--option value ...]\n`);
  process.exit(2);
}
try {
  const result = await (await BENCHES[name]!()).run(argv);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} catch (err) {
  process.stderr.write(`bench ${name} failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
}
