/**
 * Sign-in answers in the same time whether the email is known or not (no user
 * enumeration by timing, OWASP Authentication Cheat Sheet, "Authentication and Error
 * Messages"): an unknown email, a known email with a wrong password and a deactivated
 * user each cost one argon2 verification, for tenant and platform logins alike. Samples
 * are interleaved and compared round by round (the median of the rounds' ratios), so the
 * load of a busy machine, which drifts over seconds, hits both sides of each ratio alike.
 * The bound (within a factor of 1.4) is far from what a skipped verification gives: an
 * argon2 verification is ~12 ms of a ~13 ms sign-in here, so a missing one is a ratio < 0.2.
 */
import t from 'tap';
import { rootKnex } from './fixtures/env.js';
import { makeTenant, PASSWORD, setupApp } from './fixtures/app.js';
import { addPlatformUser, addTenantUser } from '../src/provisioning/users-service.js';
import { passwordStats } from '../src/lib/passwords.js';

const { app, ctx } = await setupApp(t);
const tenant = await makeTenant(ctx, 'timing');
await addTenantUser(ctx, 'timing', { email: 'gone@timing.test', role: 'staff', password: PASSWORD });
await addPlatformUser(ctx, { email: 'ops@silo.test', role: 'operator', password: PASSWORD });
await addPlatformUser(ctx, { email: 'gone@silo.test', role: 'support', password: PASSWORD });
const root = rootKnex();
t.teardown(() => root.destroy());
await root(`${tenant.databaseName}.users`).where({ email: 'gone@timing.test' }).update({ active: false });
await ctx.catalog.knex('platform_users').where({ email: 'gone@silo.test' }).update({ active: false });

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

type Kind = 'platform' | 'tenant';
async function attempt(kind: Kind, email: string, password: string): Promise<{ ms: number; verified: number; status: number }> {
  const before = passwordStats.verifications;
  const started = performance.now();
  const res = await app.inject({
    method: 'POST',
    url: kind === 'tenant' ? '/api/v1/auth/login' : '/platform/v1/auth/login',
    headers: kind === 'tenant' ? { 'x-tenant': 'timing' } : {},
    payload: { email, password },
  });
  return { ms: performance.now() - started, verified: passwordStats.verifications - before, status: res.statusCode };
}

for (const kind of ['tenant', 'platform'] as const) {
  const known = kind === 'tenant' ? 'admin@timing.test' : 'ops@silo.test';
  const inactive = kind === 'tenant' ? 'gone@timing.test' : 'gone@silo.test';
  t.test(`${kind} login: unknown email, deactivated user and wrong password each verify one argon2 hash and take the same time`, async (t) => {
    const samples: Record<'unknown' | 'inactive' | 'wrong', number[]> = { unknown: [], inactive: [], wrong: [] };
    const SAMPLES = 21;
    for (let i = 0; i < SAMPLES; i++) {
      // Interleaved, so drifts of the machine's load hit every kind alike.
      for (const [name, email, password] of [
        ['unknown', `nobody-${i}@nowhere.test`, PASSWORD],
        ['wrong', known, `wrong password ${i}`],
        ['inactive', inactive, PASSWORD],
      ] as const) {
        const r = await attempt(kind, email, password);
        t.equal(r.status, 401, `${name} answers 401`);
        t.equal(r.verified, 1, `${name}: exactly one argon2 verification ran`);
        samples[name].push(r.ms);
      }
    }
    const wrong = median(samples.wrong);
    for (const name of ['unknown', 'inactive'] as const) {
      const ratio = median(samples[name].map((ms, i) => ms / samples.wrong[i]!));
      t.ok(
        ratio > 1 / 1.4 && ratio < 1.4,
        `${name}: median ${median(samples[name]).toFixed(1)} ms vs wrong password ${wrong.toFixed(1)} ms (median ratio of the rounds ${ratio.toFixed(2)}, within a factor of 1.4)`,
      );
    }
  });
}
