/**
 * What the CLI prints reaches a pipe whole, however long (`silo tenants list --json | jq`
 * over a large fleet): Node writes to pipes asynchronously on Linux, so an exit right after
 * the last write would cut stdout at the pipe's buffer (64 KiB). 600 catalog-only tenants
 * make a `tenants list --json` of ~250 KB.
 */
import t from 'tap';
import { encryptSecret } from '../src/lib/secrets.js';
import { runCliJson, setupSilo } from './fixtures/env.js';

const { ctx, env, config } = await setupSilo(t);
const server = await ctx.catalog.knex<{ id: number }>('database_servers').first('id');
const COUNT = 600;
const password = encryptSecret('not a real password, never used', config.secrets);
await ctx.catalog.knex('tenants').insert(
  Array.from({ length: COUNT }, (_, i) => {
    const slug = `piped-${String(i).padStart(4, '0')}`;
    return {
      slug,
      name: `Tenant with a long enough name to make the answer big ${i}`,
      plan: 'standard',
      status: 'active',
      schema_version: 'none',
      database_server_id: server!.id,
      database_name: `${config.tenantDbPrefix}${slug.replace('-', '_')}`,
      db_user: `${config.tenantDbPrefix}${slug.replace('-', '_')}`,
      db_password_enc: password,
      admin_email: `admin@${slug}.test`,
    };
  }),
);

t.test(`tenants list --json with ${COUNT} tenants reaches a pipe whole`, async (t) => {
  const { result, json } = await runCliJson<unknown[] | { data: unknown[] }>(['tenants', 'list'], env);
  t.equal(result.code, 0, result.stderr);
  t.ok(result.stdout.length > 128 * 1024, `the answer is larger than the pipe buffer (${result.stdout.length} bytes)`);
  const list = Array.isArray(json) ? json : json.data;
  t.equal(list.length, COUNT, 'every tenant is in the answer');
});
