/**
 * Fault injection for tests, enabled only when `SILO_ENABLE_FAULTS=1` (read by
 * `src/config.ts`):
 * - `SILO_FAULT_KILL_AFTER=<operation>:<step>`: after that step completes, the process
 *   kills itself with SIGKILL, as a power cut or an OOM kill would, so `repair` can be
 *   tested against real leftovers;
 * - `SILO_FAULT_FAIL_AFTER=<operation>:<step>`: after that step completes, the operation
 *   throws, so the failure path (tenant `failed`, operation `failed`) can be tested;
 * - `SILO_FAULT_KILL_AFTER_STATEMENT=<migration>:<n>`: SIGKILL right after the n-th
 *   statement that migration's `up` sends (0: once it is recorded as started, before its
 *   first statement), so a crash inside a migration can be tested after each statement.
 */
import type { Knex } from 'knex';
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

/**
 * Runs a migration's `up` (`fn`) under `SILO_FAULT_KILL_AFTER_STATEMENT`: when the fault
 * names this migration, every statement `knex` answers (its `query-response` event, which
 * fires before the caller sees the answer) is counted and the process SIGKILLs itself at
 * the configured count. A no-op wrapper otherwise.
 * @param knex the Knex the migration runs on (only that migration uses it meanwhile)
 * @param migration the migration's name, e.g. `0005-create-pipeline-stages`
 */
export async function withStatementFault<T>(spec: Config['faultKillAfterStatement'], knex: Knex, migration: string, fn: () => Promise<T>): Promise<T> {
  if (!spec || spec.migration !== migration) return fn();
  const kill = (n: number) => {
    if (n !== spec.statement) return;
    process.stderr.write(`silo: fault injection: SIGKILL after statement ${n} of ${migration}\n`);
    process.kill(process.pid, 'SIGKILL');
  };
  let count = 0;
  const onResponse = () => kill(++count);
  kill(0);
  knex.on('query-response', onResponse);
  try {
    return await fn();
  } finally {
    knex.off('query-response', onResponse);
  }
}
