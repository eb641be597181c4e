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
// stdout/stderr are synchronous for files and pipes on Linux, so nothing written is lost.
process.exit(code);
