/**
 * Fault injection for tests, enabled only when `SILO_ENABLE_FAULTS=1` (read by
 * `src/config.ts`):
 * - `SILO_FAULT_KILL_AFTER=<operation>:<step>`: after that step completes, the process
 *   kills itself with SIGKILL, as a power cut or an OOM kill would, so `repair` can be
 *   tested against real leftovers;
 * - `SILO_FAULT_FAIL_AFTER=<operation>:<step>`: after that step completes, the operation
 *   throws, so the failure path (tenant `failed`, operation `failed`) can be tested.
 */
import type { Config } from '../config.js';

/** Call after each lifecycle step; a no-op unless a configured fault names this step. */
export function faultPoint(config: Pick<Config, 'faultKillAfter' | 'faultFailAfter'>, operation: string, step: string): void {
  const kill = config.faultKillAfter;
  if (kill && kill.operation === operation && kill.step === step) {
    process.stderr.write(`silo: fault injection: SIGKILL after ${operation}:${step}\n`);
    process.kill(process.pid, 'SIGKILL');
  }
  const fail = config.faultFailAfter;
  if (fail && fail.operation === operation && fail.step === step) {
    throw new Error(`injected failure after ${operation}:${step} (SILO_FAULT_FAIL_AFTER)`);
  }
}
