/**
 * 503 answers carry no S3 or mysqldump error text: a failing object store (here a bucket
 * that does not exist) and a failing dump tool (a stand-in that prints an access-denied
 * line naming an account and a host) answer problem+json with the code and a generic
 * detail; the real text goes to the log.
 */
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t from 'tap';
import { buildApp } from '../src/http/app.js';
import { login, makeTenant, platformLogin, setupApp } from './fixtures/app.js';
import { isProblem } from './fixtures/problem.js';
import { setupS3 } from './fixtures/s3.js';

const DUMP_SECRET = "Access denied for user 'tx_secret_dump_user'@'10.9.8.7' (using password: YES)";
const dir = await mkdtemp(join(tmpdir(), 'silo-503-'));
const tool = join(dir, 'failing-dump');
await writeFile(tool, `#!/bin/sh\necho "mysqldump: Got error: 1045: ${DUMP_SECRET.replace(/'/g, "'\\''")} when trying to connect" >&2\nexit 2\n`);
await chmod(tool, 0o755);

const s3 = await setupS3(t);

/** An app over its own catalog whose log lines are kept in `logged`, with one tenant and its admin token. */
async function setup(extra: Record<string, string>) {
  const { ctx } = await setupApp(t, { ...s3.env, ...extra });
  const out = { logged: '' };
  const logger = pino({ level: 'debug' }, new Writable({ write: (chunk, _enc, cb) => ((out.logged += String(chunk)), cb()) }));
  const app = await buildApp({ ctx, logger });
  await app.ready();
  t.teardown(() => app.close());
  await makeTenant(ctx, 'five-oh-three');
  return { ctx, app, out, token: (await login(app, 'five-oh-three')).accessToken };
}
const noBucket = await setup({ SILO_S3_BUCKET: 'no-such-bucket-503' });
const badDump = await setup({ SILO_MYSQLDUMP_PATH: tool, SILO_MYSQL_CLIENT_PATH: tool });

const INTERNALS = [
  /no-such-bucket/i,
  /bucket/i,
  /tenants\/\d+\//,
  /S3 /,
  /mysqldump|mariadb-dump/i,
  /tx_secret_dump_user/,
  /10\.9\.8\.7/,
  /Access denied/i,
  /exited with/,
];

t.test('an S3 failure during an upload answers 503 STORAGE_UNAVAILABLE with a generic detail; the log has the S3 text', async (t) => {
  const { app, token, out } = noBucket;
  const co = (
    await app.inject({
      method: 'POST',
      url: '/api/v1/companies',
      headers: { 'x-tenant': 'five-oh-three', authorization: `Bearer ${token}` },
      payload: { name: 'Co' },
    })
  ).json();
  const boundary = 'b503';
  const res = await app.inject({
    method: 'POST',
    url: `/api/v1/companies/${co.id}/attachments`,
    headers: { 'x-tenant': 'five-oh-three', authorization: `Bearer ${token}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
    payload: `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--${boundary}--\r\n`,
  });
  const p = isProblem(t, res, 503, 'STORAGE_UNAVAILABLE');
  for (const re of INTERNALS) t.notMatch(p.detail, re, `the detail (${p.detail}) does not match ${re}`);
  t.ok(res.headers['retry-after'], 'Retry-After is set');
  t.match(out.logged, /bucket does not exist/i, 'the log has the S3 error text');
});

t.test('a dump tool failure before a delete answers 503 BACKUP_FAILED with a generic detail; the log has the tool text', async (t) => {
  const { app, ctx, out } = badDump;
  const op = await platformLogin(app, ctx, 'operator');
  const res = await app.inject({
    method: 'DELETE',
    url: '/platform/v1/tenants/five-oh-three?confirm=five-oh-three',
    headers: { authorization: `Bearer ${op}` },
  });
  const p = isProblem(t, res, 503, 'BACKUP_FAILED');
  for (const re of INTERNALS) t.notMatch(p.detail, re, `the detail (${p.detail}) does not match ${re}`);
  t.match(out.logged, /tx_secret_dump_user/, 'the log has the dump tool text');
  t.equal((await ctx.catalog.tenants.findBySlug('five-oh-three'))?.status, 'active', 'nothing was deleted');
});
