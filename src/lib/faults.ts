/**
 * Crash injection for tests. Enabled only when `SILO_ENABLE_FAULTS=1` and
 * `SILO_FAULT_KILL_AFTER=<operation>:<step>` (both read by `src/config.ts`): after that
 * step of that operation completes, the process kills itself with SIGKILL, exactly as
 * a power cut or an OOM kill would, so `repair` can be tested against real leftovers.
 */
import type { Config } from '../config.js';

/** Call after each lifecycle step; a no-op unless the configured fault names this step. */
export function faultPoint(config: Pick<Config, 'faultKillAfter'>, operation: string, step: string): void {
  const f = config.faultKillAfter;
  if (f && f.operation === operation && f.step === step) {
    process.stderr.write(`silo: fault injection: SIGKILL after ${operation}:${step}\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}
