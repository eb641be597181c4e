#!/usr/bin/env node
// Entry of the `silo` CLI: runs the compiled program (built by `npm run build`, which `npm ci` runs via `prepare`).
let cli;
try {
  cli = await import('../dist/cli/index.js');
} catch (err) {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist')) {
    process.stderr.write('silo: not built yet; run `npm run build` (npm ci does it for you)\n');
    process.exit(1);
  }
  throw err;
}
const code = await cli.main(process.argv);
// Writes to a pipe are asynchronous on Linux (Node's process I/O notes): exiting now would cut
// stdout at the pipe's buffer (64 KiB). An empty write's callback runs once all before it are out.
const flushed = (stream) => new Promise((resolve) => stream.write('', () => resolve()));
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
process.exit(code);
