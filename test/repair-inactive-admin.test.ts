/**
 * Repair and a seeded admin that exists but is inactive (issue 13 item 7): "missing
 * admin" means seeding would create one (no active admin and no user with the tenant's
 * admin email). A deactivated admin is an operator's decision: repair warns, does not plan
 * `seed-admin` on every run, and creates no second admin.
 */
import t from 'tap';
import { repairTenant } from '../src/provisioning/repair-service.js';
import { makeTenant, setupApp } from './fixtures/app.js';

const { ctx } = await setupApp(t, { SILO_TENANT_CHANGE_POLL_MS: '0' });

t.test('an inactive seeded admin: repair reports ok with a warning, twice, and seeds nobody', async (t) => {
  const tenant = await makeTenant(ctx, 'sleepy');
  await ctx.admin.withTenantDatabase(tenant, (k) => k('users').where({ role: 'admin' }).update({ active: false }));
  for (const run of ['first', 'second']) {
    const report = await repairTenant(ctx, 'sleepy', 'test');
    t.match(report, { outcome: 'ok', actions: [] }, `the ${run} repair has nothing to do`);
    t.match(report.warnings, [/no active admin: user admin@sleepy\.test exists but is inactive/], 'and says the admin is inactive');
  }
  const users = await ctx.admin.withTenantDatabase(tenant, (k) => k('users').select('email', 'active'));
  t.same(
    users.map((u: { email: string }) => u.email),
    ['admin@sleepy.test'],
    'no second admin was made',
  );
});

t.test('an admin that is really gone is seeded again by repair', async (t) => {
  const tenant = await makeTenant(ctx, 'gone');
  await ctx.admin.withTenantDatabase(tenant, (k) => k('users').delete());
  const report = await repairTenant(ctx, 'gone', 'test');
  t.match(report, { outcome: 'repaired', admin: { adminCreated: true } }, 'repair seeds the first admin');
  t.match(await repairTenant(ctx, 'gone', 'test'), { outcome: 'ok', actions: [] }, 'and the next repair has nothing to do');
});
