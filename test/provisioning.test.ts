/**
 * The tenant lifecycle through the real `silo` CLI against MariaDB:
 * create -> list/show -> migrate -> status -> rollback -> repair -> suspend/resume ->
 * recreate -> delete, checking MySQL itself at each stage.
 */
import t from 'tap';
import { rootKnex, runCli, runCliJson, setupSilo } from './fixtures/env.js';
import { fullTenantTables, latestTenantMigration, mysqlState, prefixedObjects } from './fixtures/mysql-state.js';

const { env, names, ctx } = await setupSilo(t);
const TABLES = await fullTenantTables();
const LATEST = await latestTenantMigration();
const root = rootKnex();
t.teardown(() => root.destroy());
/** Columns of every table of a database (a migration that drops a table or a column lowers it). */
/** A tenant's database (and account) name: opaque since issue 15, so read from the catalog. */
const dbOf = async (slug: string) => (await ctx.catalog.tenants.findBySlug(slug))!.databaseName;
/** Columns (with types) and indexes of a database: what any schema migration changes. */
const schemaShape = async (database: string) =>
  JSON.stringify([
    await root('information_schema.COLUMNS')
      .where({ TABLE_SCHEMA: database })
      .orderBy(['TABLE_NAME', 'COLUMN_NAME'])
      .select('TABLE_NAME', 'COLUMN_NAME', 'COLUMN_TYPE'),
    await root('information_schema.STATISTICS')
      .where({ TABLE_SCHEMA: database })
      .orderBy(['TABLE_NAME', 'INDEX_NAME', 'SEQ_IN_INDEX'])
      .select('TABLE_NAME', 'INDEX_NAME', 'COLUMN_NAME'),
  ]);

t.test('create provisions database, DML-only user, migrations and the first admin', async (t) => {
  const { result, json } = await runCliJson<any>(['tenants', 'create', 'acme', '--name', 'Acme Inc', '--admin-email', 'Boss@Acme.test'], env);
  t.equal(result.code, 0, result.stderr);
  t.equal(json.tenant.status, 'active');
  // Issue 15: the database and account names do not depend on the slug (so it can change).
  t.match(json.tenant.databaseName, new RegExp(`^${names.prefix}[a-z2-7]{10}$`), 'an opaque database name');
  t.notMatch(json.tenant.databaseName, /acme/);
  t.equal(json.tenant.name, 'Acme Inc');
  t.equal(json.admin.email, 'boss@acme.test', 'email is normalised');
  t.match(json.admin.password, /^[A-Za-z0-9_-]{24}$/, 'generated admin password is printed once');
  t.notOk('dbPasswordEnc' in json.tenant, 'encrypted password never printed');
  const state = await mysqlState(await dbOf('acme'), await dbOf('acme'));
  t.ok(state.database, 'database exists');
  t.ok(state.user, 'user exists');
  t.same(state.privileges, ['DELETE', 'INSERT', 'SELECT', 'UPDATE'], 'DML only on its database');
  t.same(state.tables, TABLES);
  const human = await runCli(['tenants', 'create', 'acme'], env);
  t.equal(human.code, 1, 'duplicate slug fails');
  t.match(human.stderr, /already exists.*TENANT_EXISTS/);
});

t.test('list and show', async (t) => {
  await runCliJson(['tenants', 'create', 'globex', '--admin-password', 'correct horse battery'], env);
  const { json: list } = await runCliJson<any[]>(['tenants', 'list'], env);
  t.same(
    list.map((x) => x.slug),
    ['acme', 'globex'],
  );
  const { json: active } = await runCliJson<any[]>(['tenants', 'list', '--status', 'suspended'], env);
  t.same(active, []);
  const bad = await runCli(['tenants', 'list', '--status', 'bogus'], env);
  t.equal(bad.code, 2, 'bad status is a usage error');
  const { json: show } = await runCliJson<any>(['tenants', 'show', 'acme'], env);
  t.equal(show.slug, 'acme');
  t.equal(show.recentOperations[0].kind, 'create');
  t.equal(show.recentOperations[0].status, 'succeeded');
  t.equal(show.recentOperations[0].step, 'activate');
  const human = await runCli(['tenants', 'show', 'acme'], env);
  t.match(human.stdout, /schema version/);
  const missing = await runCli(['tenants', 'show', 'nosuch'], env);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /not found.*TENANT_NOT_FOUND/);
});

t.test('migrate when up to date costs one check; rollback, status and migrate again', async (t) => {
  const { result, json } = await runCliJson<any>(['tenants', 'migrate', '--all'], env);
  t.equal(result.code, 0);
  t.same(json.summary, { total: 2, migrated: 0, 'up-to-date': 2, 'would-migrate': 0, skipped: 0, failed: 0 });

  const shapeBefore = await schemaShape(await dbOf('acme'));
  const { json: rb } = await runCliJson<any>(['tenants', 'rollback', 'acme'], env);
  t.same(rb.reverted, [LATEST]);
  t.not(rb.schemaVersion, LATEST);
  const before = rb.schemaVersion;
  t.not(await schemaShape(await dbOf('acme')), shapeBefore, "the latest migration's change is undone");

  const { json: st } = await runCliJson<any[]>(['tenants', 'status', 'acme'], env);
  t.same(st[0].pending, [LATEST]);
  t.same(st[0].drift, { missing: [], extra: [] });

  const { json: dry } = await runCliJson<any>(['tenants', 'migrate', 'acme', '--dry-run'], env);
  t.equal(dry.tenants[0].outcome, 'would-migrate');
  t.same(dry.tenants[0].pending, [LATEST]);
  t.equal((await ctx.catalog.tenants.findBySlug('acme'))!.schemaVersion, before, 'dry run changed nothing');

  const { json: mig } = await runCliJson<any>(['tenants', 'migrate', '--all', '--concurrency', '2'], env);
  t.equal(mig.summary.migrated, 1);
  t.equal(mig.summary['up-to-date'], 1);
  t.equal((await ctx.catalog.tenants.findBySlug('acme'))!.schemaVersion, LATEST);
  t.equal((await ctx.catalog.tenants.findBySlug('acme'))!.status, 'active', 'back from maintenance');
  t.equal(await schemaShape(await dbOf('acme')), shapeBefore, 'migrated again: the schema it had');

  const badConc = await runCli(['tenants', 'migrate', '--all', '--concurrency', '0'], env);
  t.equal(badConc.code, 2);
  const none = await runCli(['tenants', 'migrate'], env);
  t.equal(none.code, 2, 'no tenant named is a usage error');
});

t.test('status reports drift', async (t) => {
  await ctx.admin.withTenantDatabase((await ctx.catalog.tenants.findBySlug('globex'))!, (k) => k.raw('CREATE TABLE stray (id INT)'));
  const { json } = await runCliJson<any[]>(['tenants', 'status', 'globex'], env);
  t.same(json[0].drift, { missing: [], extra: ['stray'] });
});

t.test('repair re-creates a dropped user, grant and database', async (t) => {
  const acme = (await ctx.catalog.tenants.findBySlug('acme'))!;
  const { sql } = await ctx.admin.server(acme.databaseServerId);
  await sql.dropUser({ user: acme.dbUser, host: '%' });
  const { json: dry } = await runCliJson<any>(['tenants', 'repair', 'acme', '--dry-run'], env);
  t.same(dry.tenants[0].actions, ['create-user', 'grant']);
  t.ok((await mysqlState(acme.databaseName, acme.dbUser)).user === false, 'dry run changed nothing');
  const { result, json } = await runCliJson<any>(['tenants', 'repair', 'acme'], env);
  t.equal(result.code, 0, result.stderr);
  t.equal(json.tenants[0].outcome, 'repaired');
  const state = await mysqlState(acme.databaseName, acme.dbUser);
  t.ok(state.user);
  t.same(state.privileges, ['DELETE', 'INSERT', 'SELECT', 'UPDATE']);

  await sql.dropDatabase(acme.databaseName);
  const { json: again } = await runCliJson<any>(['tenants', 'repair', 'acme'], env);
  t.same(again.tenants[0].actions, ['create-database', 'grant', 'apply-migrations', 'seed-admin']);
  t.ok(again.tenants[0].admin.generatedPassword, 'a new admin is made and its password shown once');
  t.same((await mysqlState(acme.databaseName, acme.dbUser)).tables, TABLES);

  const { json: ok } = await runCliJson<any>(['tenants', 'repair', 'acme'], env);
  t.equal(ok.tenants[0].outcome, 'ok', 'a healthy tenant needs nothing');
});

t.test('suspend and resume', async (t) => {
  const { json } = await runCliJson<any>(['tenants', 'suspend', 'acme'], env);
  t.equal(json.status, 'suspended');
  t.ok(json.suspendedAt);
  const resume = await runCliJson<any>(['tenants', 'resume', 'acme'], env);
  t.equal(resume.json.status, 'active');
  t.equal(resume.json.suspendedAt, null);
});

t.test('domains add and remove', async (t) => {
  const { json } = await runCliJson<any>(['tenants', 'domains', 'add', 'acme', 'CRM.Acme.com'], env);
  t.same(json.domains, ['crm.acme.com']);
  const taken = await runCli(['tenants', 'domains', 'add', 'globex', 'crm.acme.com'], env);
  t.equal(taken.code, 1);
  t.match(taken.stderr, /DOMAIN_TAKEN/);
  const bad = await runCli(['tenants', 'domains', 'add', 'acme', 'not a domain'], env);
  t.equal(bad.code, 2);
  const rm = await runCliJson<any>(['tenants', 'domains', 'remove', 'acme', 'crm.acme.com'], env);
  t.same(rm.json.domains, []);
});

t.test('users add and platform-users add', async (t) => {
  const { result, json } = await runCliJson<any>(['users', 'add', 'acme', 'jane@acme.test', '--role', 'manager'], env);
  t.equal(result.code, 0, result.stderr);
  t.equal(json.role, 'manager');
  t.ok(json.generatedPassword);
  const dup = await runCli(['users', 'add', 'acme', 'jane@acme.test', '--role', 'staff'], env);
  t.equal(dup.code, 1);
  t.match(dup.stderr, /USER_EXISTS/);
  const badRole = await runCli(['users', 'add', 'acme', 'x@acme.test', '--role', 'god'], env);
  t.equal(badRole.code, 2);
  const weak = await runCli(['users', 'add', 'acme', 'y@acme.test', '--role', 'staff', '--password', 'short'], env);
  t.equal(weak.code, 2);
  t.match(weak.stderr, /at least|12/);
  const p = await runCliJson<any>(['platform-users', 'add', 'ops@silo.test', '--role', 'operator', '--password', 'a long enough password'], env);
  t.equal(p.json.role, 'operator');
  t.notOk(p.json.generatedPassword);
  t.notOk(p.result.stdout.includes('a long enough password'), 'a chosen password is never echoed');
});

t.test('recreate asks for the slug, then wipes data and provisions afresh', async (t) => {
  const refused = await runCli(['tenants', 'recreate', 'acme'], env, 'acme\n');
  t.equal(refused.code, 2, 'no terminal: stdin is never read as an answer');
  t.match(refused.stderr, /--yes or --confirm acme/);
  const acme = (await ctx.catalog.tenants.findBySlug('acme'))!;
  const noS3 = await runCli(['tenants', 'recreate', 'acme', '--yes'], env);
  t.equal(noS3.code, 1, 'without S3 the pre-recreate backup cannot be taken: refused');
  t.match(noS3.stderr, /STORAGE_NOT_CONFIGURED/);
  t.match(noS3.stderr, /--no-backup/);
  const noBackupUnconfirmed = await runCli(['tenants', 'recreate', 'acme', '--yes', '--no-backup'], env, 'acme\n');
  t.equal(noBackupUnconfirmed.code, 2, '--yes is not enough with --no-backup');
  t.match(noBackupUnconfirmed.stderr, /add --confirm acme/);
  t.ok(Number((await ctx.admin.withTenantDatabase(acme, (k) => k('users').count({ n: '*' }).first()))?.n) > 1, 'nothing dropped so far');
  const { json } = await runCliJson<any>(['tenants', 'recreate', 'acme', '--yes', '--no-backup', '--confirm', 'acme'], env);
  t.equal(json.tenant.status, 'active');
  t.ok(json.admin.password);
  const users = await ctx.admin.withTenantDatabase(acme, (k) => k('users').select('email'));
  t.same(
    users.map((u: any) => u.email),
    ['boss@acme.test'],
    'only the new admin remains',
  );
  const typed = await runCli(['tenants', 'recreate', 'globex', '--no-backup', '--confirm', 'globex'], env);
  t.equal(typed.code, 0, typed.stderr);
});

t.test('delete drops database and user; the slug stays reserved', async (t) => {
  const refused = await runCli(['tenants', 'delete', 'globex'], env, '');
  t.equal(refused.code, 2, 'no terminal and no --yes or --confirm: refused');
  t.ok((await mysqlState(await dbOf('globex'), await dbOf('globex'))).database, 'nothing dropped');
  const noS3 = await runCli(['tenants', 'delete', 'globex', '--yes'], env);
  t.equal(noS3.code, 1);
  t.match(noS3.stderr, /STORAGE_NOT_CONFIGURED/);
  t.ok((await mysqlState(await dbOf('globex'), await dbOf('globex'))).database, 'nothing dropped without a backup');
  const { result, json } = await runCliJson<any>(['tenants', 'delete', 'globex', '--no-backup', '--confirm', 'globex'], env);
  t.equal(result.code, 0, result.stderr);
  t.equal(json.tenant.status, 'deleted');
  const state = await mysqlState(await dbOf('globex'), await dbOf('globex'));
  t.notOk(state.database);
  t.notOk(state.user);
  const again = await runCli(['tenants', 'create', 'globex'], env);
  t.equal(again.code, 1);
  t.match(again.stderr, /TENANT_EXISTS/);
  const shown = await runCliJson<any>(['tenants', 'show', 'globex'], env);
  t.equal(shown.json.status, 'deleted');
  const { json: ops } = await runCliJson<any[]>(['operations', 'list', '--tenant', 'globex'], env);
  t.same(
    ops.map((o) => `${o.kind}:${o.status}`),
    ['delete:succeeded', 'recreate:succeeded', 'domain-add:failed', 'create:succeeded'],
    'the refused domain is journaled too',
  );
  t.match(ops[2].error, /already in use/);
});

t.test('repair --all finds orphans and prunes them only when asked', async (t) => {
  const { sql } = await ctx.admin.server(1);
  await sql.createDatabase(`${names.prefix}stray`);
  await sql.ensureUser({ user: `${names.prefix}stray`, host: '%' }, 'x-password-x', 5);
  const { json } = await runCliJson<any>(['tenants', 'repair', '--all'], env);
  t.same(json.orphans.databases, [`${names.prefix}stray`]);
  t.same(
    json.orphans.users.map((u: any) => u.user),
    [`${names.prefix}stray`],
  );
  t.same((await prefixedObjects(names.prefix)).databases, [await dbOf('acme'), `${names.prefix}stray`].sort(), 'nothing pruned');
  const { json: pruned } = await runCliJson<any>(['tenants', 'repair', '--all', '--prune-orphans'], env);
  t.equal(pruned.orphans.pruned, true);
  t.same(await prefixedObjects(names.prefix), { databases: [await dbOf('acme')], users: [await dbOf('acme')] });
  const bad = await runCli(['tenants', 'repair', 'acme', '--prune-orphans'], env);
  t.equal(bad.code, 2, '--prune-orphans without --all is a usage error');
});

t.test('every command has --help', async (t) => {
  for (const args of [[], ['tenants'], ['tenants', 'create'], ['tenants', 'migrate'], ['catalog', 'migrate'], ['users', 'add'], ['operations', 'list']]) {
    const r = await runCli([...args, '--help'], env);
    t.equal(r.code, 0, `silo ${args.join(' ')} --help`);
    t.match(r.stdout, /Usage: silo/);
  }
  const unknown = await runCli(['tenants', 'frobnicate'], env);
  t.equal(unknown.code, 2, 'unknown command is a usage error');
});
