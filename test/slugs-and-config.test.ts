/**
 * Bad input is refused before anything is written: slugs, emails, passwords, and the
 * configuration (one line naming the variable).
 */
import t from 'tap';
import { loadConfig } from '../src/config.js';
import { assertValidSlug, tenantDatabaseName, tenantUserName } from '../src/lib/identifiers.js';
import { runCli, setupSilo } from './fixtures/env.js';
import { prefixedObjects } from './fixtures/mysql-state.js';

const { env, names, ctx } = await setupSilo(t);

const BAD_SLUGS = [
  'A',
  'ab',
  'acme;drop',
  '../x',
  'a'.repeat(64),
  'admin',
  'ünïcode',
  'Acme',
  'acme-',
  '-acme',
  '1acme',
  'ac me',
  "ac'me",
  'ac`me',
  'acme\n',
  '',
];

t.test('bad slugs are refused with a clear message and create nothing', async (t) => {
  for (const slug of BAD_SLUGS) {
    const r = await runCli(['tenants', 'create', slug], env);
    t.equal(r.code, 2, `${JSON.stringify(slug)} exits 2`);
    t.match(r.stderr, /invalid tenant slug|missing required argument|unknown option/, `${JSON.stringify(slug)} message`);
  }
  t.same(await ctx.catalog.tenants.list(), [], 'no catalog row');
  t.same(await ctx.catalog.operations.list(), [], 'no operation row');
  t.same(await prefixedObjects(names.prefix), { databases: [], users: [] }, 'no database, no user');
});

t.test('bad admin email or password creates nothing', async (t) => {
  const email = await runCli(['tenants', 'create', 'okslug', '--admin-email', 'not-an-email'], env);
  t.equal(email.code, 2);
  t.match(email.stderr, /adminEmail: must be an email address/);
  const pw = await runCli(['tenants', 'create', 'okslug', '--admin-password', 'short'], env);
  t.equal(pw.code, 2);
  t.match(pw.stderr, /password must be 12/);
  const plan = await runCli(['tenants', 'create', 'okslug', '--plan', 'Gold Plan!'], env);
  t.equal(plan.code, 2);
  t.same(await ctx.catalog.tenants.list(), []);
});

t.test('slug rules and name derivation', (t) => {
  for (const good of ['abc', 'acme', 'acme-corp', 'a1b', 'x'.repeat(32)]) t.doesNotThrow(() => assertValidSlug(good), good);
  t.throws(() => assertValidSlug('x'.repeat(33)));
  t.equal(tenantDatabaseName('tenant_', 'acme-corp'), 'tenant_acme_corp');
  const long = tenantUserName('tenant_', 'a'.repeat(32));
  t.ok(long.length <= 32, 'user names fit MySQL 32-character limit');
  t.not(tenantUserName('tenant_', `${'a'.repeat(31)}b`), tenantUserName('tenant_', `${'a'.repeat(31)}c`), 'distinct slugs -> distinct users');
  t.end();
});

t.test('configuration errors name the variable in one line', async (t) => {
  t.throws(() => loadConfig({ SILO_SECRET_KEY: 'c2hvcnQ=' }), /^invalid configuration: SILO_SECRET_KEY: must be 32 bytes/);
  t.throws(() => loadConfig({ SILO_CATALOG_URL: 'http://x' }), /SILO_CATALOG_URL/);
  t.throws(() => loadConfig({ SILO_CATALOG_URL: 'mysql://root@127.0.0.1:3306' }), /SILO_CATALOG_URL: must name the catalog database/);
  t.throws(() => loadConfig({ SILO_TENANT_DB_PREFIX: 'Bad-Prefix' }), /SILO_TENANT_DB_PREFIX/);
  t.throws(() => loadConfig({ NODE_ENV: 'production' }).secrets.encrypt('x'), /^invalid configuration: SILO_SECRET_KEY: not set; run `silo init`/);
  t.throws(() => loadConfig({ SILO_MIGRATION_LOCK_TIMEOUT_S: 'soon' }), /SILO_MIGRATION_LOCK_TIMEOUT_S/);
  const c = loadConfig({});
  t.equal(c.catalog.database, 'silo_catalog');
  t.equal(c.tenantDbPrefix, 'tenant_');
  t.equal(c.faultKillAfter, undefined, 'faults are off unless enabled');
  t.equal(loadConfig({ SILO_FAULT_KILL_AFTER: 'create:database' }).faultKillAfter, undefined, 'ignored without SILO_ENABLE_FAULTS=1');
  const r = await runCli(['tenants', 'list'], { ...env, SILO_SECRET_KEY: 'nope' });
  t.equal(r.code, 2);
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  t.match(r.stderr, /SILO_SECRET_KEY/);
});
