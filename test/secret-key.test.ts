/**
 * The development key is used only when asked for (issue 12, item 6): without
 * `SILO_SECRET_KEY`, and unless `NODE_ENV=development` is set explicitly, every command that
 * encrypts or decrypts a stored secret refuses with one line naming `SILO_SECRET_KEY` and
 * `silo init` (exit 2) and changes nothing, while commands that need no key keep working.
 * `silo init` writes a `.env` (0600) with fresh `SILO_SECRET_KEY` and `SILO_JWT_SECRET`,
 * never overwriting a value that is already there.
 *
 * Every CLI run here happens in an empty temporary directory, so that no `.env` of the
 * checkout is read.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parse as parseDotenv } from 'dotenv';
import { ConfigError, DEV_SECRET_KEY, loadConfig } from '../src/config.js';
import { decryptSecret } from '../src/lib/secrets.js';
import { rootKnex, runCli, setupSilo, type CliResult } from './fixtures/env.js';

const { env, ctx, names } = await setupSilo(t);
const root = rootKnex();
t.teardown(() => root.destroy());

const dirs: string[] = [];
t.teardown(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'silo-key-'));
  dirs.push(d);
  return d;
}

/** Runs the built CLI in `cwd` (default: a fresh temporary folder) with exactly `vars` (plus PATH and HOME). */
const cli = (args: string[], vars: Record<string, string | undefined>, cwd = tempDir()): Promise<CliResult> => runCli(args, vars, '', { cwd });

/** The test environment without any secret key, and NODE_ENV as given (undefined: unset). */
function keyless(nodeEnv: string | undefined): Record<string, string | undefined> {
  return { ...env, SILO_SECRET_KEY: undefined, SILO_SECRET_KEY_PREVIOUS: undefined, NODE_ENV: nodeEnv };
}

async function traces(slug: string) {
  const rows = await ctx.catalog.knex('tenants').where({ slug }).select('id');
  const dbs: Array<{ SCHEMA_NAME: string }> = await root('information_schema.SCHEMATA').select('SCHEMA_NAME');
  const users: Array<{ User: string }> = await root('mysql.user').select('User');
  return {
    catalogRows: rows.length,
    databases: dbs.filter((d) => d.SCHEMA_NAME.startsWith(names.prefix)).length,
    users: users.filter((u) => u.User.startsWith(names.prefix)).length,
  };
}

for (const nodeEnv of [undefined, 'production', 'test']) {
  t.test(
    `NODE_ENV=${nodeEnv ?? '(unset)'} without SILO_SECRET_KEY: tenants create exits 2 with one line naming SILO_SECRET_KEY and silo init, and creates nothing`,
    async (t) => {
      const slug = `nokey-${nodeEnv ?? 'unset'}`;
      const before = await traces(slug);
      const r = await cli(['tenants', 'create', slug], keyless(nodeEnv));
      t.equal(r.code, 2, `exit code 2 (stderr: ${r.stderr})`);
      const lines = r.stderr.trim().split('\n');
      t.equal(lines.length, 1, 'one line on stderr');
      t.match(lines[0], /SILO_SECRET_KEY/);
      t.match(lines[0], /silo init/);
      t.equal(r.stdout, '', 'nothing on stdout');
      t.same(await traces(slug), { ...before, catalogRows: 0 }, 'no catalog row, no database, no account');

      const j = await cli(['tenants', 'create', slug, '--json'], keyless(nodeEnv));
      t.equal(j.code, 2);
      const parsed = JSON.parse(j.stdout) as { error: { code: string; message: string } };
      t.equal(parsed.error.code, 'INVALID_CONFIGURATION');
      t.match(parsed.error.message, /SILO_SECRET_KEY.*silo init/);
    },
  );
}

t.test('commands that need no key work without one (NODE_ENV=production)', async (t) => {
  const help = await cli(['--help'], keyless('production'));
  t.equal(help.code, 0, help.stderr);
  t.match(help.stdout, /Usage: silo/);
  const status = await cli(['catalog', 'status', '--json'], keyless('production'));
  t.equal(status.code, 0, status.stderr);
  t.equal((JSON.parse(status.stdout) as { database: string }).database, names.catalog);
  const list = await cli(['tenants', 'list', '--json'], keyless('production'));
  t.equal(list.code, 0, list.stderr);
  const stats = await cli(['history', 'stats', '--json'], keyless('production'));
  t.equal(stats.code, 0, stats.stderr);
});

t.test('the configuration refuses lazily: loading works, encrypting and decrypting throw a ConfigError', (t) => {
  for (const nodeEnv of [undefined, 'production', 'test']) {
    const config = loadConfig({ ...(nodeEnv ? { NODE_ENV: nodeEnv } : {}) });
    t.throws(() => config.secrets.encrypt('x'), ConfigError);
    t.throws(() => config.secrets.decrypt('v1.a.b.c'), /SILO_SECRET_KEY.*silo init/);
    t.equal(config.secrets.available, false);
  }
  const dev = loadConfig({ NODE_ENV: 'development' });
  t.equal(dev.secrets.available, true);
  t.equal(dev.secrets.isDevelopmentKey, true);
  t.equal(decryptSecret(dev.secrets.encrypt('hello'), Buffer.from(DEV_SECRET_KEY, 'base64')), 'hello');
  t.end();
});

t.test('NODE_ENV=development without a key uses the development key', async (t) => {
  const vars = keyless('development');
  const migrate = await cli(['catalog', 'migrate', '--json'], vars);
  t.equal(migrate.code, 0, migrate.stderr);
  const r = await cli(['tenants', 'create', 'devkey-a', '--json'], vars);
  t.equal(r.code, 0, r.stderr);
  const row = await ctx.catalog.knex('tenants').where({ slug: 'devkey-a' }).first('db_password_enc');
  t.ok(
    decryptSecret((row as { db_password_enc: string }).db_password_enc, Buffer.from(DEV_SECRET_KEY, 'base64')),
    'the stored password opens with the development key',
  );
  // Put the default server back under the test's own key for the other tests.
  await ctx.catalog.servers.upsert('default', ctx.config.tenantDb);
});

t.test('silo init writes a .env (0600) with fresh keys; a second run changes nothing', async (t) => {
  const dir = tempDir();
  const first = await cli(['init'], {}, dir);
  t.equal(first.code, 0, first.stderr);
  const path = join(dir, '.env');
  t.equal(statSync(path).mode & 0o777, 0o600, 'mode 0600');
  const text = readFileSync(path, 'utf8');
  const vars = parseDotenv(text);
  t.equal(Buffer.from(vars.SILO_SECRET_KEY!, 'base64').length, 32, 'SILO_SECRET_KEY is 32 bytes, base64');
  t.ok(vars.SILO_JWT_SECRET!.length >= 32, 'SILO_JWT_SECRET has at least 32 bytes');
  const config = loadConfig({ SILO_SECRET_KEY: vars.SILO_SECRET_KEY, SILO_JWT_SECRET: vars.SILO_JWT_SECRET });
  t.equal(config.secrets.available, true);
  for (const out of [first.stdout, first.stderr]) {
    t.notOk(out.includes(vars.SILO_SECRET_KEY!), 'the key is not printed');
    t.notOk(out.includes(vars.SILO_JWT_SECRET!), 'the JWT secret is not printed');
  }
  t.match(first.stderr, /SILO_SECRET_KEY/);

  const second = await cli(['init', '--json'], {}, dir);
  t.equal(second.code, 0, second.stderr);
  t.equal(readFileSync(path, 'utf8'), text, 'the file is unchanged');
  const report = JSON.parse(second.stdout) as { written: string[]; kept: string[] };
  t.same(report.written, []);
  t.same(report.kept.sort(), ['SILO_JWT_SECRET', 'SILO_SECRET_KEY']);

  // Another random key each time.
  const other = tempDir();
  await cli(['init'], {}, other);
  t.not(parseDotenv(readFileSync(join(other, '.env'), 'utf8')).SILO_SECRET_KEY, vars.SILO_SECRET_KEY);
});

t.test('silo init on an existing .env keeps every byte and adds only the missing keys', async (t) => {
  const dir = tempDir();
  const existing = '# my settings\nPORT=4000\nSILO_JWT_SECRET="an-existing-jwt-secret-of-more-than-32-bytes"\nLOG_LEVEL=debug'; // no final newline
  writeFileSync(join(dir, '.env'), existing, { mode: 0o644 });
  const r = await cli(['init', '--json'], {}, dir);
  t.equal(r.code, 0, r.stderr);
  const text = readFileSync(join(dir, '.env'), 'utf8');
  t.ok(text.startsWith(existing), 'the existing content is kept byte for byte');
  const vars = parseDotenv(text);
  t.equal(vars.SILO_JWT_SECRET, 'an-existing-jwt-secret-of-more-than-32-bytes');
  t.equal(vars.PORT, '4000');
  t.equal(vars.LOG_LEVEL, 'debug');
  t.equal(Buffer.from(vars.SILO_SECRET_KEY!, 'base64').length, 32);
  t.same((JSON.parse(r.stdout) as { written: string[] }).written, ['SILO_SECRET_KEY']);
  t.equal(statSync(join(dir, '.env')).mode & 0o777, 0o600, 'the file is made private');
});

t.test('silo init does not write a key that the environment already sets', async (t) => {
  const dir = tempDir();
  const key = Buffer.alloc(32, 7).toString('base64');
  const r = await cli(['init', '--json'], { SILO_SECRET_KEY: key }, dir);
  t.equal(r.code, 0, r.stderr);
  const vars = parseDotenv(readFileSync(join(dir, '.env'), 'utf8'));
  t.equal(vars.SILO_SECRET_KEY, undefined, 'no other key is written next to the one in the environment');
  t.ok(vars.SILO_JWT_SECRET);
  const report = JSON.parse(r.stdout) as { written: string[]; fromEnvironment: string[] };
  t.same(report.written, ['SILO_JWT_SECRET']);
  t.same(report.fromEnvironment, ['SILO_SECRET_KEY']);
  t.notOk(r.stdout.includes(key) || r.stderr.includes(key));
});

t.test('values of the v1 format (no key id) are still read, with the current or the previous key; v2 names its key', async (t) => {
  const { createCipheriv, randomBytes } = await import('node:crypto');
  const { createKeyring, keyId } = await import('../src/lib/secrets.js');
  const v1 = (plain: string, key: Buffer) => {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key, iv);
    const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return ['v1', iv.toString('base64url'), c.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
  };
  const a = randomBytes(32);
  const b = randomBytes(32);
  const ring = createKeyring({ current: b, previous: a });
  t.equal(ring.decrypt(v1('old', a)), 'old', 'v1 under the previous key');
  t.equal(ring.decrypt(v1('new', b)), 'new', 'v1 under the current key');
  t.notOk(ring.isCurrent(v1('new', b)), 'a v1 value is always rotated (it names no key)');
  const v2 = ring.encrypt('x');
  t.equal(v2.split('.')[1], keyId(b));
  t.ok(ring.isCurrent(v2));
  t.throws(() => createKeyring({ current: a }).decrypt(v2), /neither SILO_SECRET_KEY nor SILO_SECRET_KEY_PREVIOUS/);
  const parts = v2.split('.');
  parts[1] = keyId(a);
  t.throws(() => createKeyring({ current: a }).decrypt(parts.join('.')), { code: 'SECRET_UNREADABLE' }, 'a value whose key id was changed is refused');
  t.throws(
    () => loadConfig({ SILO_SECRET_KEY: DEV_SECRET_KEY, NODE_ENV: 'production' }).secrets.encrypt('x'),
    /development key published/,
    'the published key counts as no key outside development',
  );
});
