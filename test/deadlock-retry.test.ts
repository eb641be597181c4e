/**
 * InnoDB resolves a deadlock by rolling back one of the transactions (ER_LOCK_DEADLOCK,
 * 1213), and the MySQL manual asks applications to re-issue it ("Always be prepared to
 * re-issue a transaction if it fails due to deadlock", MySQL 8.0 Reference Manual
 * §17.7.5.3). A transaction through a tenant's Knex (`knex.transaction(callback)`) is
 * re-run when it is chosen as the victim, so two requests locking the same rows in
 * opposite orders both succeed instead of one answering 500; a deadlock that outlives the
 * retries answers 503 `TRANSACTION_CONFLICT` with Retry-After, never 500.
 */
import t from 'tap';
import { makeTenant, setupApp } from './fixtures/app.js';
import { toProblem } from '../src/http/problem.js';
import { DEADLOCK_ATTEMPTS } from '../src/lib/knex.js';

const { app, ctx } = await setupApp(t, { SILO_POOL_MAX_PER_TENANT: '4' });
const tenant = await makeTenant(ctx, 'deadlocks');
const lease = await app.tenantConnections.acquire(tenant);
t.teardown(() => lease.release());
const knex = lease.knex;
const [a, b] = await knex('companies')
  .insert([{ name: 'A' }, { name: 'B' }])
  .then(async () => knex('companies').orderBy('id').limit(2).pluck('id'));

/** Locks `first` then, once the other transaction holds its first row too, `second`: two of these in opposite orders deadlock. */
function lockBoth(first: number, second: number, bothHold: { n: number }, runs: { n: number }) {
  return knex.transaction(async (trx) => {
    runs.n++;
    await trx('companies').where({ id: first }).forUpdate().first();
    bothHold.n++;
    const until = Date.now() + 2_000;
    while (bothHold.n < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    await trx('companies')
      .where({ id: second })
      .update({ name: `locked after ${first}` });
  });
}

t.test('two transactions locking two rows in opposite orders both commit', async (t) => {
  const bothHold = { n: 0 };
  const runs = { n: 0 };
  const results = await Promise.allSettled([lockBoth(a, b, bothHold, runs), lockBoth(b, a, bothHold, runs)]);
  t.same(
    results.map((r) => (r.status === 'fulfilled' ? 'committed' : String((r.reason as { code?: string }).code ?? r.reason))),
    ['committed', 'committed'],
  );
  t.ok(runs.n >= 3, `the victim was run again (${runs.n} runs for 2 transactions)`);
});

t.test('a deadlock that outlives the retries is 503 TRANSACTION_CONFLICT with Retry-After', async (t) => {
  const deadlock = () =>
    Object.assign(new Error('Deadlock found when trying to get lock; try restarting transaction'), { errno: 1213, code: 'ER_LOCK_DEADLOCK' });
  let runs = 0;
  const always = knex.transaction(async (trx) => {
    runs++;
    await trx('companies').where({ id: a }).first();
    throw deadlock();
  });
  t.equal(
    await always.then(
      () => 'committed',
      (err: { errno?: number }) => err.errno,
    ),
    1213,
    'the last victim error is thrown',
  );
  t.equal(runs, DEADLOCK_ATTEMPTS, `run ${DEADLOCK_ATTEMPTS} times, then given up`);
  let other = 0;
  const failed = knex.transaction(async (trx) => {
    other++;
    await trx('companies').where({ id: a }).first();
    throw Object.assign(new Error('Duplicate entry'), { errno: 1062 });
  });
  t.equal(
    await failed.then(
      () => 'committed',
      (err: { errno?: number }) => err.errno,
    ),
    1062,
  );
  t.equal(other, 1, 'any other error is not retried');
  const { problem, headers } = toProblem(deadlock(), 'req-1');
  t.equal(problem.status, 503);
  t.equal(problem.code, 'TRANSACTION_CONFLICT');
  t.equal(headers['retry-after'], '1');
});
