/**
 * A tenant's MySQL account reaches its own database and nothing else, even when other
 * database names differ from it only where it has a `_` (a wildcard in database-level
 * GRANTs, MySQL 8.4 §15.7.1.6), including the `_` of the prefix. Repair removes every
 * grant an older installation (or a hand-made change) left that reaches further, and
 * every privilege beyond DML, and converges the account's MAX_USER_CONNECTIONS.
 *
 * The wildcard matcher here is the test's own oracle, written from the manual, not the
 * product's.
 */
import t, { type Test } from 'tap';
import type { Knex } from 'knex';
import { parseMysqlUrl } from '../src/config.js';
import type { Tenant } from '../src/catalog/index.js';
import { createMysqlKnex } from '../src/lib/knex.js';
import { decryptSecret } from '../src/lib/secrets.js';
import { repairTenants } from '../src/provisioning/repair-service.js';
import { createTenant } from '../src/provisioning/tenants-service.js';
import { MYSQL_URL, rootKnex, setupSilo } from './fixtures/env.js';

const { ctx, config, names } = await setupSilo(t, { SILO_TENANT_DB_MAX_USER_CONNECTIONS: '4' });
const root = rootKnex();
t.teardown(() => root.destroy());
const server = parseMysqlUrl(MYSQL_URL);
const host = config.tenantDbUserHost;
const DML = ['DELETE', 'INSERT', 'SELECT', 'UPDATE'];

for (const slug of ['acme-co', 'acmexco', 'acme1co']) await createTenant(ctx, { slug, adminPassword: 'a long enough password' }, 'test');
const tenants = await Promise.all(['acme-co', 'acmexco', 'acme1co'].map(async (s) => (await ctx.catalog.tenants.findBySlug(s))!));
const [acmeCo] = tenants as [Tenant, Tenant, Tenant];
// A database that differs from acme-co's only where the prefix has its `_`.
const prefixNeighbour = `${names.prefix.slice(0, -1)}xacme_co`;
await root.raw('CREATE DATABASE ??', [prefixNeighbour]);
for (const db of [...tenants.map((x) => x.databaseName), prefixNeighbour]) {
  await root.raw('CREATE TABLE IF NOT EXISTS ??.probe (id INT PRIMARY KEY, v INT)', [db]);
  await root.raw('INSERT IGNORE INTO ??.probe VALUES (1, 1)', [db]);
}
t.teardown(() => root.raw('DROP DATABASE IF EXISTS ??', [prefixNeighbour]));

/** MySQL's database-name matching in grant tables: `\x` is a literal x, `_` one character, `%` any run. */
function grantMatches(pattern: string, name: string): boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\' && i + 1 < pattern.length) re += pattern[++i]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else if (c === '_') re += '.';
    else if (c === '%') re += '.*';
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 'i').test(name);
}

function connectAs(tenant: Tenant): Knex {
  const password = decryptSecret(tenant.dbPasswordEnc, config.secrets);
  const knex = createMysqlKnex({ ...server, user: tenant.dbUser, password, database: '' }, { min: 0, max: 1 });
  t.teardown(() => knex.destroy());
  return knex;
}

/** Every statement of DML on `db` is refused for this connection (1142 table access denied). */
async function assertNoDml(t: Test, k: Knex, db: string, who: string): Promise<void> {
  const statements: Array<[string, string[]]> = [
    ['SELECT * FROM ??.probe', [db]],
    ['INSERT INTO ??.probe VALUES (2, 2)', [db]],
    ['UPDATE ??.probe SET v = 9', [db]],
    ['DELETE FROM ??.probe', [db]],
  ];
  for (const [sql, b] of statements) {
    await t.rejects(k.raw(sql, b), { errno: 1142 } as unknown as Error, `${who}: ${sql.split(' ')[0]} on ${db} is denied`);
  }
}

/** Schema-level grant rows of an account: `pattern:PRIVILEGE`. */
async function schemaGrants(user: string): Promise<Array<{ pattern: string; privilege: string }>> {
  const rows: Array<{ TABLE_SCHEMA: string; PRIVILEGE_TYPE: string }> = await root('information_schema.SCHEMA_PRIVILEGES')
    .where({ GRANTEE: `'${user}'@'${host}'` })
    .select('TABLE_SCHEMA', 'PRIVILEGE_TYPE');
  return rows.map((r) => ({ pattern: r.TABLE_SCHEMA, privilege: r.PRIVILEGE_TYPE }));
}

async function allDatabases(): Promise<string[]> {
  const rows: Array<{ SCHEMA_NAME: string }> = await root('information_schema.SCHEMATA').select('SCHEMA_NAME');
  return rows.map((r) => r.SCHEMA_NAME);
}

/** The account holds exactly DML on a pattern that matches its own database and no other, no global or table grant, and the limit. */
async function assertExactGrant(t: Test, tenant: Tenant, limit: number): Promise<void> {
  const dbs = await allDatabases();
  const grants = await schemaGrants(tenant.dbUser);
  t.same([...new Set(grants.map((g) => g.privilege))].sort(), DML, `${tenant.slug}: DML only`);
  for (const pattern of new Set(grants.map((g) => g.pattern))) {
    t.same(
      dbs.filter((d) => grantMatches(pattern, d)),
      [tenant.databaseName],
      `${tenant.slug}: grant pattern ${pattern} matches exactly its own database`,
    );
  }
  const global: Array<{ PRIVILEGE_TYPE: string }> = await root('information_schema.USER_PRIVILEGES')
    .where({ GRANTEE: `'${tenant.dbUser}'@'${host}'` })
    .select('PRIVILEGE_TYPE');
  t.same(
    global.map((g) => g.PRIVILEGE_TYPE),
    ['USAGE'],
    `${tenant.slug}: no global privilege`,
  );
  const table = await root('information_schema.TABLE_PRIVILEGES').where({ GRANTEE: `'${tenant.dbUser}'@'${host}'` });
  const column = await root('information_schema.COLUMN_PRIVILEGES').where({ GRANTEE: `'${tenant.dbUser}'@'${host}'` });
  t.same([...table, ...column], [], `${tenant.slug}: no table or column grant`);
  const user = await root('mysql.user').where({ User: tenant.dbUser, Host: host }).first('max_user_connections');
  t.equal(Number((user as { max_user_connections: number }).max_user_connections), limit, `${tenant.slug}: MAX_USER_CONNECTIONS ${limit}`);
}

t.test('each tenant account is denied DML on every other tenant database, the prefix neighbour and the catalog', async (t) => {
  for (const me of tenants) {
    const k = connectAs(me);
    const [rows] = (await k.raw('SELECT COUNT(*) AS n FROM ??.probe', [me.databaseName])) as unknown as [Array<{ n: number }>];
    t.equal(Number(rows[0]!.n) >= 1, true, `${me.slug} reads its own database`);
    for (const other of [...tenants.filter((x) => x !== me).map((x) => x.databaseName), prefixNeighbour]) await assertNoDml(t, k, other, me.slug);
    await t.rejects(k.raw('SELECT * FROM ??.tenants', [names.catalog]), { errno: 1142 } as unknown as Error, `${me.slug}: catalog denied`);
  }
});

t.test('every grant row of every tenant account matches exactly its own database; the connection limit is set', async (t) => {
  for (const me of tenants) await assertExactGrant(t, me, 4);
});

t.test('a tenant account cannot open more than MAX_USER_CONNECTIONS connections', async (t) => {
  const password = decryptSecret(acmeCo.dbPasswordEnc, config.secrets);
  const k = createMysqlKnex({ ...server, user: acmeCo.dbUser, password, database: acmeCo.databaseName }, { min: 0, max: 6, acquireTimeoutMillis: 3_000 });
  t.teardown(() => k.destroy());
  const results = await Promise.allSettled(
    Array.from({ length: 6 }, () =>
      k.transaction(async (trx) => {
        await trx.raw('SELECT SLEEP(0.5)');
      }),
    ),
  );
  const refused = results.filter((r) => r.status === 'rejected').map((r) => r.reason as { errno?: number });
  t.ok(refused.length >= 2, `at most 4 sessions at once (${refused.length} of 6 refused)`);
  // 1226 ER_USER_LIMIT_REACHED (the account's own limit); 1203 is the server-wide max_user_connections.
  t.ok(
    refused.every((e) => e.errno === 1226 || e.errno === 1203),
    `refused with ER_USER_LIMIT_REACHED: ${refused.map((e) => e.errno ?? JSON.stringify(e)).join(', ')}`,
  );
});

t.test('repair removes what an older installation or a hand-made change granted, and converges the limit', async (t) => {
  const user = acmeCo.dbUser;
  const db = acmeCo.databaseName;
  const other = tenants[1]!.databaseName;
  // What the code before the fix did (an unescaped pattern), and worse.
  await root.raw('GRANT SELECT, INSERT, UPDATE, DELETE ON ??.* TO ?@?', [db, user, host]);
  await root.raw(`GRANT SELECT ON \`${names.prefix.replaceAll('_', '\\_')}%\`.* TO ?@?`, [user, host]);
  await root.raw('GRANT CREATE, DROP, ALTER ON ??.* TO ?@? WITH GRANT OPTION', [db.replaceAll('_', '\\_'), user, host]);
  await root.raw('GRANT PROCESS ON *.* TO ?@?', [user, host]);
  await root.raw('GRANT SELECT ON ??.?? TO ?@?', [other, 'probe', user, host]);
  await root.raw('GRANT UPDATE (v) ON ??.?? TO ?@?', [prefixNeighbour, 'probe', user, host]);
  await root.raw('ALTER USER ?@? WITH MAX_USER_CONNECTIONS 0', [user, host]);
  const k = connectAs(acmeCo);
  const [seen] = (await k.raw('SELECT COUNT(*) AS n FROM ??.probe', [other])) as unknown as [Array<{ n: number }>];
  t.equal(Number(seen[0]!.n), 1, 'before repair the neighbour is readable (the hole is real)');
  await k.destroy();

  const dry = await repairTenants(ctx, 'test', { slugs: ['acme-co'], dryRun: true });
  t.equal(dry.tenants[0]!.outcome, 'would-repair', 'a dry run sees the extra grants');
  t.ok(dry.tenants[0]!.actions.includes('revoke-extra-privileges'), `planned: ${dry.tenants[0]!.actions.join(', ')}`);

  const report = await repairTenants(ctx, 'test', { all: true });
  const fixed = report.tenants.find((r) => r.slug === 'acme-co')!;
  t.equal(fixed.outcome, 'repaired', fixed.error ?? '');
  for (const me of tenants) await assertExactGrant(t, me, 4);
  const k2 = connectAs(acmeCo);
  await assertNoDml(t, k2, other, 'acme-co after repair');
  await assertNoDml(t, k2, prefixNeighbour, 'acme-co after repair');
  const [own] = (await k2.raw('SELECT COUNT(*) AS n FROM ??.probe', [db])) as unknown as [Array<{ n: number }>];
  t.ok(Number(own[0]!.n) >= 1, 'its own database still works');
  const again = await repairTenants(ctx, 'test', { all: true });
  t.same(
    again.tenants.map((r) => r.outcome),
    ['ok', 'ok', 'ok'],
    'a second repair has nothing to do',
  );
});
