/**
 * Each tenant's MySQL account reads and writes its own database only: it is denied on
 * another tenant's database, on the catalog, and on DDL in its own database.
 */
import t from 'tap';
import { parseMysqlUrl } from '../src/config.js';
import { createMysqlKnex } from '../src/lib/knex.js';
import { decryptSecret } from '../src/lib/secrets.js';
import { createTenant } from '../src/provisioning/tenants-service.js';
import { MYSQL_URL, setupSilo } from './fixtures/env.js';

const { ctx, config, names } = await setupSilo(t);
await createTenant(ctx, { slug: 'red', adminPassword: 'a long enough password' }, 'test');
await createTenant(ctx, { slug: 'blue', adminPassword: 'a long enough password' }, 'test');
const red = (await ctx.catalog.tenants.findBySlug('red'))!;
const blue = (await ctx.catalog.tenants.findBySlug('blue'))!;
const server = parseMysqlUrl(MYSQL_URL);
/** Matches a mysql2 error by its MySQL errno (1142 table access denied, 1044 database access denied). */
const denied = (errno: number) => ({ errno }) as unknown as Error;

function connectAs(tenant: typeof red, database = '') {
  const knex = createMysqlKnex({ ...server, user: tenant.dbUser, password: decryptSecret(tenant.dbPasswordEnc, config.secrets), database }, { min: 0, max: 1 });
  t.teardown(() => knex.destroy());
  return knex;
}

t.test('the stored password is encrypted, not the password', (t) => {
  t.match(red.dbPasswordEnc, /^v2\.[A-Za-z0-9_-]{8}\./, 'v2.<key id>.<iv>.<tag>.<ciphertext>');
  t.notOk(red.dbPasswordEnc.includes(decryptSecret(red.dbPasswordEnc, config.secrets)));
  t.end();
});

t.test('a tenant account reads and writes its own database', async (t) => {
  const k = connectAs(red, red.databaseName);
  await k('users').insert({ email: 'x@red.test', password_hash: 'h', role: 'staff', role_id: k('roles').select('id').where({ name: 'staff' }) });
  const rows = await k('users').select('email').orderBy('email');
  t.same(
    rows.map((r: any) => r.email),
    ['admin@red.localhost', 'x@red.test'],
  );
  await k('users').where({ email: 'x@red.test' }).update({ full_name: 'X Red' });
  t.equal(await k('users').where({ email: 'x@red.test' }).delete(), 1);
});

t.test('a tenant account is denied on another tenant database', async (t) => {
  const k = connectAs(red);
  await t.rejects(k.raw('SELECT * FROM ??.users', [blue.databaseName]), denied(1142), 'SELECT denied');
  await t.rejects(k.raw('INSERT INTO ??.users (email, password_hash, role) VALUES (?, ?, ?)', [blue.databaseName, 'evil@x', 'h', 'admin']), denied(1142));
  await t.rejects(connectAs(red, blue.databaseName).raw('SELECT 1'), denied(1044), 'cannot even select the database');
});

t.test('a tenant account is denied on the catalog', async (t) => {
  const k = connectAs(red);
  await t.rejects(k.raw('SELECT * FROM ??.tenants', [names.catalog]), denied(1142));
  await t.rejects(connectAs(red, names.catalog).raw('SELECT 1'), denied(1044));
});

t.test('a tenant account cannot run DDL or grant', async (t) => {
  const k = connectAs(red, red.databaseName);
  await t.rejects(k.raw('CREATE TABLE evil (id INT)'), denied(1142));
  await t.rejects(k.raw('DROP TABLE users'), denied(1142));
  await t.rejects(k.raw('CREATE DATABASE evil_db'), denied(1044));
  const [dbs] = await k.raw('SHOW DATABASES');
  const visible = (dbs as Array<Record<string, string>>).map((r) => Object.values(r)[0]);
  t.notOk(visible.includes(blue.databaseName), 'another tenant database is not even listed');
});
