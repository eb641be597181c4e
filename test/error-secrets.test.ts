/**
 * A failing statement never carries its bound values (passwords, hashes, personal data)
 * into error text: not into logs (at trace), operations, tenants' status reasons, CLI
 * output, nor API answers.
 *
 * CREATE USER and ALTER USER are made to fail for real: a disposable MariaDB with the
 * `simple_password_check` plugin and a policy no generated password meets (MariaDB KB
 * "Simple Password Check Plugin").
 */
import t, { type Test } from 'tap';
import { pino } from 'pino';
import { migrateCatalog } from '../src/catalog/db.js';
import { DEFAULT_SERVER_NAME } from '../src/catalog/servers.js';
import { loadConfig, parseMysqlUrl } from '../src/config.js';
import { createContext } from '../src/context.js';
import { buildApp } from '../src/http/app.js';
import { createMysqlKnex } from '../src/lib/knex.js';
import { decryptSecret } from '../src/lib/secrets.js';
import { loggerOptions } from '../src/lib/logger.js';
import { addPlatformUser } from '../src/provisioning/users-service.js';
import { PASSWORD, TEST_JWT_SECRET } from './fixtures/app.js';
import { startDisposableMariaDB } from './fixtures/disposable-mariadb.js';
import { dropEverything, runCli, testEnv, uniqueNames } from './fixtures/env.js';

const server = await startDisposableMariaDB(t);
const names = uniqueNames();
const env = testEnv(names, { SILO_JWT_SECRET: TEST_JWT_SECRET, LOG_LEVEL: 'trace' }, server.url);
const config = loadConfig(env);
await migrateCatalog(config);
const lines: string[] = [];
const log = pino({ ...loggerOptions('trace', false) }, { write: (s: string) => void lines.push(s) });
const ctx = createContext(config, log);
await ctx.catalog.servers.upsert(DEFAULT_SERVER_NAME, config.tenantDb);
const app = await buildApp({ ctx, logger: log });
await app.ready();
t.teardown(async () => {
  await app.close();
  await ctx.close();
  await dropEverything(names, server.url);
});
const root = createMysqlKnex(parseMysqlUrl(server.url), { min: 0, max: 1 });
t.teardown(() => root.destroy());
await addPlatformUser(ctx, { email: 'op@silo.test', role: 'operator', password: PASSWORD });
await addPlatformUser(ctx, { email: 'support@silo.test', role: 'support', password: PASSWORD });
const token = async (email: string) =>
  (await app.inject({ method: 'POST', url: '/platform/v1/auth/login', payload: { email, password: PASSWORD } })).json<{ accessToken: string }>().accessToken;
const operator = await token('op@silo.test');
const support = await token('support@silo.test');
const platform = (bearer: string, method: 'GET' | 'POST', url: string, payload?: object) =>
  app.inject({ method, url: `/platform/v1${url}`, headers: { authorization: `Bearer ${bearer}` }, ...(payload ? { payload } : {}) });

/** A password policy no 32-character generated password meets. */
async function strictPolicy(on: boolean): Promise<void> {
  await root.raw('SET GLOBAL simple_password_check_minimal_length = ?', [on ? 200 : 0]);
}
await root.raw("INSTALL SONAME 'simple_password_check'");
for (const v of ['digits', 'letters_same_case', 'other_characters']) await root.raw(`SET GLOBAL simple_password_check_${v} = 0`);

/** Everything a secret must not reach, as one string per place. */
async function sinks(extra: string[]): Promise<Record<string, string>> {
  const ops = await ctx.catalog.knex('operations').select('*');
  const tenants = await ctx.catalog.knex('tenants').select('slug', 'status_reason');
  const answers: string[] = [];
  for (const bearer of [operator, support]) {
    answers.push((await platform(bearer, 'GET', '/operations?limit=100')).body);
    for (const t of tenants) answers.push((await platform(bearer, 'GET', `/tenants/${String(t.slug)}`)).body);
  }
  return {
    logs: lines.join(''),
    operations: JSON.stringify(ops),
    tenants: JSON.stringify(tenants),
    answers: answers.join('\n'),
    ...Object.fromEntries(extra.map((e, i) => [`output${i}`, e])),
  };
}

/** The decrypted DB passwords of every tenant in the catalog. */
async function tenantPasswords(): Promise<string[]> {
  const rows: Array<{ db_password_enc: string }> = await ctx.catalog.knex('tenants').select('db_password_enc');
  return rows.map((r) => decryptSecret(r.db_password_enc, config.secrets));
}

function assertAbsent(t: Test, places: Record<string, string>, secrets: string[]): void {
  for (const [place, text] of Object.entries(places)) {
    for (const secret of secrets) t.notOk(text.includes(secret), `no password in ${place}`);
  }
}

t.test('CREATE USER refused by the server: the password is in no sink', async (t) => {
  await strictPolicy(true);
  const api = await platform(operator, 'POST', '/tenants', { slug: 'acme' });
  t.ok(api.statusCode >= 400, `the API create fails (${api.statusCode})`);
  const cli = await runCli(['tenants', 'create', 'globex'], env);
  t.equal(cli.code, 1, 'the CLI create fails');
  t.match(`${cli.stdout}${cli.stderr}`, /CREATE USER|1819|password/i, 'and says why');
  const secrets = await tenantPasswords();
  t.equal(secrets.length, 2, 'two tenants failed at the user step');
  assertAbsent(t, await sinks([api.body, cli.stdout, cli.stderr]), secrets);
});

t.test('ALTER USER refused by the server (account already there): the password is in no sink', async (t) => {
  await strictPolicy(false);
  const acme = (await ctx.catalog.tenants.findBySlug('acme'))!;
  await root.raw('CREATE USER IF NOT EXISTS ?@? IDENTIFIED BY ?', [acme.dbUser, config.tenantDbUserHost, 'set-before-the-policy-1A!']);
  await strictPolicy(true);
  const api = await platform(operator, 'POST', '/tenants/acme/repair');
  const cli = await runCli(['tenants', 'repair', 'acme', 'globex'], env);
  t.equal(cli.code, 1, 'the repair fails');
  const ops = await ctx.catalog.operations.list({ limit: 100 });
  t.ok(
    ops.some((o) => o.kind === 'repair' && o.status === 'failed'),
    'the failed repair is journaled',
  );
  assertAbsent(t, await sinks([api.body, cli.stdout, cli.stderr]), await tenantPasswords());
  await strictPolicy(false);
});

t.test('a failing INSERT carries neither its values nor its SQL with values', async (t) => {
  const k = createMysqlKnex({ ...parseMysqlUrl(server.url), database: names.catalog }, { min: 0, max: 1 });
  t.teardown(() => k.destroy());
  const hash = '$argon2id$v=19$m=19456,t=2,p=1$SECRETSALTSECRETSALT$SECRETHASHVALUE';
  await k('platform_users').insert({ email: 'dup@silo.test', password_hash: hash, role: 'support' });
  const err = (await k('platform_users')
    .insert({ email: 'dup@silo.test', password_hash: hash, role: 'support' })
    .catch((e: unknown) => e)) as Error & Record<string, unknown>;
  t.equal(err.errno, 1062, 'a duplicate entry');
  const text = JSON.stringify({ ...err, message: err.message });
  t.notOk(text.includes('SECRETHASHVALUE'), 'no password hash in the error');
  t.notOk(text.includes('dup@silo.test'), 'no personal data in the error');
  t.match(err.message, /Duplicate entry/, 'the server message stays readable');
  t.match(err.message, /platform_users_email/i, 'with the key it names');
});

t.test('server messages keep object names and lose values', async (t) => {
  const { redactServerMessage } = await import('../src/lib/error-text.js');
  t.equal(redactServerMessage("Duplicate entry 'jane@x.test' for key 'contacts_email_uq'"), "Duplicate entry '…' for key 'contacts_email_uq'");
  t.equal(
    redactServerMessage("You have an error in your SQL syntax; check the manual near 'IDENTIFIED BY 'hunter2' BLAH' at line 1"),
    "You have an error in your SQL syntax; check the manual near '…' at line 1",
    'a syntax error quoting the statement, quotes inside included',
  );
  t.equal(redactServerMessage("Incorrect integer value: 'abc' for column `x`.`y`"), "Incorrect integer value: '…' for column `x`.`y`");
  t.equal(redactServerMessage("Operation ALTER USER failed for 'tenant_a'@'%'"), "Operation ALTER USER failed for 'tenant_a'@'%'");
  t.equal(redactServerMessage("Unknown database 'tenant_a'"), "Unknown database 'tenant_a'");
});
