/**
 * A pre-signed URL is made only for keys under the tenant's own prefix
 * (`tenants/<id>/files/<uuid>`). An attachment row tampered in the tenant database to point
 * at another tenant's file, at a backup, at a history archive or at a path that climbs out
 * of the prefix gets no URL (404 `ATTACHMENT_NOT_FOUND`), is not deleted through the API
 * (the object it points at stays), and a company whose logo row was tampered shows no logo.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import type { Knex } from 'knex';
import { login, makeTenant, setupApp } from './fixtures/app.js';
import { rootKnex } from './fixtures/env.js';
import { isProblem } from './fixtures/problem.js';
import { setupS3 } from './fixtures/s3.js';
import { keys } from '../src/storage/s3.js';

const s3 = await setupS3(t);
const { app, ctx } = await setupApp(t, { ...s3.env });
const mine = await makeTenant(ctx, 'prefix-a');
const other = await makeTenant(ctx, 'prefix-b');
const tokens = { 'prefix-a': (await login(app, 'prefix-a')).accessToken, 'prefix-b': (await login(app, 'prefix-b')).accessToken };
const root: Knex = rootKnex();
t.teardown(() => root.destroy());

const call = (slug: 'prefix-a' | 'prefix-b', method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object, headers: Record<string, string> = {}) =>
  app.inject({ method, url, payload, headers: { 'x-tenant': slug, authorization: `Bearer ${tokens[slug]}`, ...headers } });

/** Uploads a small image to a company of `slug`; returns the attachment id, company id and the row's key. */
async function uploadLogo(slug: 'prefix-a' | 'prefix-b', db: string) {
  const co = (await call(slug, 'POST', '/api/v1/companies', { name: `Co ${randomBytes(3).toString('hex')}` })).json();
  const boundary = 'silo-prefix-test';
  const payload = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="logo.png"\r\nContent-Type: image/png\r\n\r\n`),
    randomBytes(64),
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const res = await app.inject({
    method: 'POST',
    url: `/api/v1/companies/${co.id}/attachments?logo=true`,
    payload,
    headers: { 'x-tenant': slug, authorization: `Bearer ${tokens[slug]}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
  });
  if (res.statusCode !== 201) throw new Error(`upload failed: ${res.statusCode} ${res.body}`);
  const id = res.json().id as number;
  const row = await root(`${db}.attachments`).where({ id }).first('storage_key');
  return { id, companyId: co.id as number, key: row.storage_key as string };
}

const victim = await uploadLogo('prefix-b', other.databaseName);
const own = await uploadLogo('prefix-a', mine.databaseName);

t.test('an untampered attachment of the tenant is signed', async (t) => {
  t.ok(own.key.startsWith(keys.filesPrefix(mine.id)), `the row's key ${own.key} is under the tenant's prefix`);
  const res = await call('prefix-a', 'GET', `/api/v1/attachments/${own.id}/url`);
  t.equal(res.statusCode, 200, res.body);
});

const FOREIGN = {
  "another tenant's file": () => victim.key,
  'a backup of the tenant itself': () => keys.backup(mine.id, 1, new Date()),
  'a history archive': () => keys.history(2024, 1, 'archive'),
  'a path climbing out of the prefix': () => `${keys.filesPrefix(mine.id)}../../${other.id}/files/${victim.key.split('/').at(-1)}`,
  'the bare prefix': () => keys.filesPrefix(mine.id),
  'another prefix that starts alike': () => `tenants/${mine.id}0/files/${victim.key.split('/').at(-1)}`,
};

for (const [what, key] of Object.entries(FOREIGN)) {
  t.test(`a row tampered to point at ${what}: no URL, no deletion, no logo`, async (t) => {
    await root(`${mine.databaseName}.attachments`).where({ id: own.id }).update({ storage_key: key() });
    t.teardown(() => root(`${mine.databaseName}.attachments`).where({ id: own.id }).update({ storage_key: own.key }));
    const res = await call('prefix-a', 'GET', `/api/v1/attachments/${own.id}/url`);
    const p = isProblem(t, res, 404, 'ATTACHMENT_NOT_FOUND');
    t.notMatch(JSON.stringify(p), /X-Amz-Signature|https?:\/\//, 'nothing signed in the answer');
    const co = (await call('prefix-a', 'GET', `/api/v1/companies/${own.companyId}`)).json();
    t.equal(co.logoUrl, null, 'the company shows no logo');
    const list = (await call('prefix-a', 'GET', '/api/v1/companies?pageSize=100')).json();
    t.ok(
      list.data.every((c: { logoUrl: string | null }) => c.logoUrl === null),
      'the list shows no logo',
    );
    isProblem(t, await call('prefix-a', 'DELETE', `/api/v1/attachments/${own.id}`), 404, 'ATTACHMENT_NOT_FOUND');
    t.ok(await ctx.storage!.head(victim.key), "the other tenant's object is still there");
    t.ok(await root(`${mine.databaseName}.attachments`).where({ id: own.id }).first('id'), 'the row is still there');
  });
}

t.test('the other tenant still gets its own file', async (t) => {
  t.equal((await call('prefix-b', 'GET', `/api/v1/attachments/${victim.id}/url`)).statusCode, 200);
});
