/**
 * Attachments in S3 (s3rver): upload, list, get, pre-signed URL and delete for companies,
 * contacts and deals; the URL returns the exact bytes under the original name and
 * expires; limits (413, 415) and bad forms leave neither an object nor a row; roles;
 * company logos; another tenant's ids are 404; without S3 the routes answer 503.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { isAllowedContentType } from '../src/crm/attachments.js';
import { addTenantUser } from '../src/provisioning/users-service.js';
import { login, makeTenant, PASSWORD, setupApp } from './fixtures/app.js';
import { isProblem } from './fixtures/problem.js';
import { setupS3 } from './fixtures/s3.js';

const MAX = 1024;
const s3 = await setupS3(t);
const { app, ctx } = await setupApp(t, { ...s3.env, SILO_UPLOAD_MAX_BYTES: String(MAX) });
const tenant = await makeTenant(ctx, 'files');
const managerUser = await addTenantUser(ctx, 'files', { email: 'm@files.test', role: 'manager', password: PASSWORD });
const staffUser = await addTenantUser(ctx, 'files', { email: 's@files.test', role: 'staff', password: PASSWORD });
const admin = (await login(app, 'files')).accessToken;
const manager = (await login(app, 'files', 'm@files.test')).accessToken;
const staff = (await login(app, 'files', 's@files.test')).accessToken;

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';
type Opts = { token?: string; payload?: unknown; headers?: Record<string, string>; slug?: string; on?: typeof app };
const call = (method: Method, url: string, o: Opts = {}) =>
  (o.on ?? app).inject({
    method,
    url,
    payload: o.payload as object,
    headers: { 'x-tenant': o.slug ?? 'files', authorization: `Bearer ${o.token ?? admin}`, ...o.headers },
  });

/** One part of a multipart form: a field (`value`) or a file (`fileName`, `type`, `data`). */
interface Part {
  name: string;
  value?: string;
  fileName?: string;
  type?: string;
  data?: Buffer;
}

/** A multipart/form-data body built by hand (RFC 7578), with its Content-Type header. */
function form(parts: Part[]): { payload: Buffer; headers: Record<string, string> } {
  const boundary = `----silo-test-${randomBytes(8).toString('hex')}`;
  const chunks: Buffer[] = [];
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"`;
    if (p.fileName !== undefined) head += `; filename="${p.fileName}"`;
    head += '\r\n';
    if (p.type) head += `Content-Type: ${p.type}\r\n`;
    chunks.push(Buffer.from(`${head}\r\n`, 'utf8'), p.data ?? Buffer.from(p.value ?? '', 'utf8'), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { payload: Buffer.concat(chunks), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

/** Uploads one file. */
function upload(url: string, file: { data: Buffer; fileName?: string; type?: string }, o: Opts & { fields?: Part[]; fieldsAfter?: Part[] } = {}) {
  const body = form([
    ...(o.fields ?? []),
    { name: 'file', fileName: file.fileName ?? 'file.txt', type: file.type ?? 'text/plain', data: file.data },
    ...(o.fieldsAfter ?? []),
  ]);
  return call('POST', url, { ...o, payload: body.payload, headers: { ...body.headers, ...o.headers } });
}

/** Keys of the objects s3rver holds in the bucket folder. */
async function objects(): Promise<string[]> {
  const root = join(s3.directory, s3.bucket);
  const files = await readdir(root, { recursive: true }).catch((): string[] => []);
  return files
    .filter((f) => f.endsWith('._S3rver_object'))
    .map((f) => f.slice(0, -'._S3rver_object'.length).split('\\').join('/'))
    .sort();
}

const rows = async () => Number((await ctx.admin.withTenantDatabase(tenant, (k) => k('attachments').count({ n: '*' }).first()))?.n);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const stageList = (await call('GET', '/api/v1/pipeline-stages')).json().data as Array<{ id: number; name: string }>;
const acme = (await call('POST', '/api/v1/companies', { payload: { name: 'Acme' } })).json();
const ada = (await call('POST', '/api/v1/contacts', { payload: { companyId: acme.id, fullName: 'Ada' } })).json();
const deal = (await call('POST', '/api/v1/deals', { payload: { title: 'Big one', amount: '100', currency: 'EUR', stageId: stageList[0]!.id } })).json();
const parents = [
  { entity: 'company', path: `/api/v1/companies/${acme.id}`, id: acme.id as number },
  { entity: 'contact', path: `/api/v1/contacts/${ada.id}`, id: ada.id as number },
  { entity: 'deal', path: `/api/v1/deals/${deal.id}`, id: deal.id as number },
] as const;

t.test('upload, list, get, pre-signed URL and delete work for a company, a contact and a deal', async (t) => {
  for (const p of parents) {
    const before = await objects();
    const first = randomBytes(300);
    const up = await upload(`${p.path}/attachments`, { data: first, fileName: `${p.entity}-notes.txt`, type: 'text/plain' }, { token: staff });
    t.equal(up.statusCode, 201, up.body);
    const a = up.json();
    t.match(a, {
      entityType: p.entity,
      entityId: p.id,
      fileName: `${p.entity}-notes.txt`,
      contentType: 'text/plain',
      sizeBytes: 300,
      sha256: sha256(first),
      isLogo: false,
      uploadedBy: staffUser.id,
    });
    t.notOk('storageKey' in a, 'the storage key stays on the server');
    const added = (await objects()).filter((k) => !before.includes(k));
    t.equal(added.length, 1, 'one object stored');
    t.match(added[0], new RegExp(`^tenants/${tenant.id}/files/[0-9a-f-]{36}$`), 'under this tenant, named by the server');

    const second = Buffer.from('%PDF-1.4 second file');
    const up2 = await upload(`${p.path}/attachments`, { data: second, fileName: 'b.pdf', type: 'application/pdf' });
    t.equal(up2.statusCode, 201, up2.body);
    const list = await call('GET', `${p.path}/attachments`, { token: staff });
    t.equal(list.statusCode, 200, list.body);
    t.same(
      list.json().data.map((x: any) => x.id),
      [up2.json().id, a.id],
      'newest first',
    );
    t.equal(list.json().total, 2);

    const got = await call('GET', `/api/v1/attachments/${a.id}`, { token: staff });
    t.equal(got.statusCode, 200);
    t.same(got.json(), a);

    const url = await call('GET', `/api/v1/attachments/${a.id}/url`, { token: staff });
    t.equal(url.statusCode, 200, url.body);
    const { url: href, expiresAt } = url.json();
    const ttl = (Date.parse(expiresAt) - Date.now()) / 1000;
    t.ok(ttl > 290 && ttl <= 300, `valid about 5 minutes (${ttl} s)`);
    const download = await fetch(href);
    t.equal(download.status, 200);
    t.same(Buffer.from(await download.arrayBuffer()), first, 'the exact bytes');
    t.match(download.headers.get('content-disposition'), `filename="${p.entity}-notes.txt"`);
    t.equal(download.headers.get('content-type'), 'text/plain');

    t.equal((await call('DELETE', `/api/v1/attachments/${a.id}`, { token: staff })).statusCode, 403, 'staff cannot delete');
    const del = await call('DELETE', `/api/v1/attachments/${a.id}`, { token: manager });
    t.equal(del.statusCode, 204, del.body);
    isProblem(t, await call('GET', `/api/v1/attachments/${a.id}`), 404, 'ATTACHMENT_NOT_FOUND');
    t.notOk((await objects()).includes(added[0]!), 'the object is gone');
    t.equal((await fetch(href)).status, 404, 'the old URL finds nothing');
    t.same(
      (await call('GET', `${p.path}/attachments`)).json().data.map((x: any) => x.id),
      [up2.json().id],
    );

    const acts = await ctx.admin.withTenantDatabase(tenant, (k) =>
      k('activity_log').where({ entity: p.entity, entity_id: p.id, action: 'update' }).orderBy('id').select('user_id', 'changes'),
    );
    const changes = acts.map((r: any) => (typeof r.changes === 'string' ? JSON.parse(r.changes) : r.changes));
    t.match(
      changes,
      [
        { attachment: { old: null, new: { id: a.id, fileName: `${p.entity}-notes.txt` } } },
        { attachment: { old: null, new: { id: up2.json().id } } },
        { attachment: { old: { id: a.id }, new: null } },
      ],
      'uploads and removals are in the activity log',
    );
    t.equal(Number(acts[0].user_id), staffUser.id, 'by the uploader');
    t.equal(Number(acts[2].user_id), managerUser.id, 'by the remover');
  }
});

t.test('a binary file with a UTF-8 name comes back byte for byte under that name', async (t) => {
  const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), randomBytes(1000)]);
  const name = 'Résumé – “final” 😀.png';
  const up = await upload(`/api/v1/contacts/${ada.id}/attachments`, { data: png, fileName: name, type: 'image/png' });
  t.equal(up.statusCode, 201, up.body);
  t.equal(up.json().fileName, name, 'stored as given');
  t.equal(up.json().sha256, sha256(png));
  const res = await fetch((await call('GET', `/api/v1/attachments/${up.json().id}/url`)).json().url);
  t.same(Buffer.from(await res.arrayBuffer()), png);
  t.match(res.headers.get('content-disposition'), `filename*=UTF-8''${encodeURIComponent(name)}`);
  t.equal(res.headers.get('content-type'), 'image/png');
});

t.test('too large: 413 FILE_TOO_LARGE up front (Content-Length) and while streaming; nothing stored', async (t) => {
  const before = await objects();
  const rowsBefore = await rows();
  const exact = await upload(`/api/v1/companies/${acme.id}/attachments`, { data: randomBytes(MAX) });
  t.equal(exact.statusCode, 201, 'exactly the limit is accepted');
  t.equal(exact.json().sizeBytes, MAX);
  const kept = (await objects()).filter((k) => !before.includes(k));

  const streamed = await upload(`/api/v1/companies/${acme.id}/attachments`, { data: randomBytes(MAX + 1) });
  isProblem(t, streamed, 413, 'FILE_TOO_LARGE');
  const big = await upload(`/api/v1/companies/${acme.id}/attachments`, { data: randomBytes(64 * 1024) });
  isProblem(t, big, 413, 'FILE_TOO_LARGE');
  const upFront = await upload('/api/v1/companies/999999/attachments', { data: randomBytes(64 * 1024) });
  isProblem(t, upFront, 413, 'FILE_TOO_LARGE');
  t.same(
    (await objects()).filter((k) => !before.includes(k)),
    kept,
    'no new object in the bucket',
  );
  t.equal(await rows(), rowsBefore + 1, 'no new row');
});

t.test('a type that is not allowed is 415 CONTENT_TYPE_NOT_ALLOWED before any byte reaches S3', async (t) => {
  const before = await objects();
  const rowsBefore = await rows();
  for (const type of ['application/x-msdownload', 'text/html', 'application/octet-stream']) {
    isProblem(t, await upload(`/api/v1/deals/${deal.id}/attachments`, { data: randomBytes(100), fileName: 'x.exe', type }), 415, 'CONTENT_TYPE_NOT_ALLOWED');
  }
  const json = await call('POST', `/api/v1/deals/${deal.id}/attachments`, { payload: { file: 'abc' } });
  isProblem(t, json, 415, 'UNSUPPORTED_MEDIA_TYPE');
  t.same(await objects(), before, 'no new object');
  t.equal(await rows(), rowsBefore, 'no new row');
  t.ok(isAllowedContentType('image/svg+xml', ['image/*']), 'type/* in the allow-list accepts the whole type');
  t.notOk(isAllowedContentType('text/plain', ['image/*']));
  t.notOk(isAllowedContentType('image/', ['image/*']));
});

t.test('bad forms and missing parents are refused and store nothing', async (t) => {
  const before = await objects();
  const rowsBefore = await rows();
  const url = `/api/v1/companies/${acme.id}/attachments`;
  const noFile = form([{ name: 'logo', value: 'false' }]);
  isProblem(t, await call('POST', url, noFile), 400, 'FILE_REQUIRED');
  const two = form([
    { name: 'file', fileName: 'a.txt', type: 'text/plain', data: Buffer.from('a') },
    { name: 'file', fileName: 'b.txt', type: 'text/plain', data: Buffer.from('b') },
  ]);
  isProblem(t, await call('POST', url, two), 400, 'TOO_MANY_FILES');
  isProblem(t, await upload(url, { data: Buffer.from('a') }, { fields: [{ name: 'comment', value: 'hi' }] }), 400, 'VALIDATION_FAILED');
  isProblem(t, await upload(url, { data: Buffer.from('a'), fileName: `${'n'.repeat(252)}.txt` }), 400, 'INVALID_FILE_NAME');
  const truncated = form([{ name: 'file', fileName: 'a.txt', type: 'text/plain', data: Buffer.from('abc') }]);
  isProblem(
    t,
    await call('POST', url, { payload: truncated.payload.subarray(0, truncated.payload.length - 20), headers: truncated.headers }),
    400,
    'UPLOAD_INCOMPLETE',
  );
  isProblem(t, await call('POST', url, { payload: truncated.payload, headers: { 'content-type': 'multipart/form-data' } }), 400, 'INVALID_MULTIPART');
  isProblem(t, await upload('/api/v1/companies/999999/attachments', { data: Buffer.from('a') }), 404, 'COMPANY_NOT_FOUND');
  isProblem(t, await upload('/api/v1/contacts/999999/attachments', { data: Buffer.from('a') }), 404, 'CONTACT_NOT_FOUND');
  isProblem(t, await upload('/api/v1/deals/999999/attachments', { data: Buffer.from('a') }), 404, 'DEAL_NOT_FOUND');
  isProblem(t, await call('GET', '/api/v1/deals/999999/attachments'), 404, 'DEAL_NOT_FOUND');
  const gone = (await call('POST', '/api/v1/companies', { payload: { name: 'Gone' } })).json();
  t.equal((await call('DELETE', `/api/v1/companies/${gone.id}`)).statusCode, 204);
  isProblem(t, await upload(`/api/v1/companies/${gone.id}/attachments`, { data: Buffer.from('a') }), 404, 'COMPANY_NOT_FOUND');
  t.same(await objects(), before, 'no new object');
  t.equal(await rows(), rowsBefore, 'no new row');
  const multipartElsewhere = form([{ name: 'name', value: 'Sneaky' }]);
  isProblem(t, await call('POST', '/api/v1/companies', multipartElsewhere), 415, 'UNSUPPORTED_MEDIA_TYPE');
});

t.test('logo=true makes an image the company logo (logoUrl); a second logo replaces it', async (t) => {
  const co = (await call('POST', '/api/v1/companies', { payload: { name: 'Logo Co' } })).json();
  t.equal(co.logoUrl, null, 'no logo yet');
  const logo1 = randomBytes(200);
  const l1 = await upload(`/api/v1/companies/${co.id}/attachments?logo=true`, { data: logo1, fileName: 'logo.png', type: 'image/png' }, { token: staff });
  t.equal(l1.statusCode, 201, l1.body);
  t.equal(l1.json().isLogo, true);
  const withLogo = (await call('GET', `/api/v1/companies/${co.id}`)).json();
  t.type(withLogo.logoUrl, 'string');
  t.same(Buffer.from(await (await fetch(withLogo.logoUrl)).arrayBuffer()), logo1, 'logoUrl serves the logo');
  const listed = (await call('GET', '/api/v1/companies?pageSize=100')).json().data;
  t.same(
    listed.filter((c: any) => c.logoUrl !== null).map((c: any) => c.id),
    [co.id],
    'the list carries logos too',
  );

  // The form field may come after the file.
  const logo2 = randomBytes(150);
  const l2 = await upload(
    `/api/v1/companies/${co.id}/attachments`,
    { data: logo2, fileName: 'logo2.jpg', type: 'image/jpeg' },
    { fieldsAfter: [{ name: 'logo', value: 'true' }] },
  );
  t.equal(l2.statusCode, 201, l2.body);
  t.equal(l2.json().isLogo, true);
  t.equal((await call('GET', `/api/v1/attachments/${l1.json().id}`)).json().isLogo, false, 'the previous logo is unflagged');
  const patched = await call('PATCH', `/api/v1/companies/${co.id}`, { payload: { industry: 'Design', version: co.version } });
  t.equal(patched.statusCode, 200, patched.body);
  t.same(Buffer.from(await (await fetch(patched.json().logoUrl)).arrayBuffer()), logo2, 'update answers carry the new logo');

  const before = await objects();
  const rowsBefore = await rows();
  isProblem(t, await upload(`/api/v1/companies/${co.id}/attachments?logo=true`, { data: Buffer.from('x'), type: 'text/plain' }), 400, 'INVALID_LOGO');
  isProblem(
    t,
    await upload(
      `/api/v1/companies/${co.id}/attachments`,
      { data: Buffer.from('x'), type: 'application/pdf' },
      { fieldsAfter: [{ name: 'logo', value: 'true' }] },
    ),
    400,
    'INVALID_LOGO',
  );
  isProblem(t, await upload(`/api/v1/contacts/${ada.id}/attachments?logo=true`, { data: Buffer.from('x'), type: 'image/png' }), 400, 'INVALID_LOGO');
  isProblem(
    t,
    await upload(`/api/v1/contacts/${ada.id}/attachments`, { data: Buffer.from('x'), type: 'image/png' }, { fields: [{ name: 'logo', value: 'true' }] }),
    400,
    'INVALID_LOGO',
  );
  t.same(await objects(), before, 'a refused logo leaves no object, even when the file was already streamed');
  t.equal(await rows(), rowsBefore, 'and no row');

  t.equal((await call('DELETE', `/api/v1/attachments/${l2.json().id}`)).statusCode, 204);
  t.equal((await call('GET', `/api/v1/companies/${co.id}`)).json().logoUrl, null, 'deleting the logo clears logoUrl');
});

t.test("another tenant's attachment ids are 404, and its URLs are never produced", async (t) => {
  const a = await upload(`/api/v1/companies/${acme.id}/attachments`, { data: Buffer.from('secret of tenant files') });
  t.equal(a.statusCode, 201);
  const other = await makeTenant(ctx, 'files-b');
  const tokB = (await login(app, 'files-b')).accessToken;
  const B = (method: Method, url: string) => call(method, url, { slug: 'files-b', token: tokB });
  isProblem(t, await B('GET', `/api/v1/attachments/${a.json().id}`), 404, 'ATTACHMENT_NOT_FOUND');
  isProblem(t, await B('GET', `/api/v1/attachments/${a.json().id}/url`), 404, 'ATTACHMENT_NOT_FOUND');
  isProblem(t, await B('DELETE', `/api/v1/attachments/${a.json().id}`), 404, 'ATTACHMENT_NOT_FOUND');
  isProblem(t, await B('GET', `/api/v1/companies/${acme.id}/attachments`), 404, 'COMPANY_NOT_FOUND');
  isProblem(
    t,
    await upload(`/api/v1/companies/${acme.id}/attachments`, { data: Buffer.from('x') }, { slug: 'files-b', token: tokB }),
    404,
    'COMPANY_NOT_FOUND',
  );
  t.equal((await call('GET', `/api/v1/attachments/${a.json().id}`)).statusCode, 200, 'still there for its tenant');

  // B's own attachment, with the same id range: its URL points into B's folder only.
  const bCo = (await call('POST', '/api/v1/companies', { slug: 'files-b', token: tokB, payload: { name: 'B Co' } })).json();
  const b = await upload(`/api/v1/companies/${bCo.id}/attachments`, { data: Buffer.from('b data') }, { slug: 'files-b', token: tokB });
  t.equal(b.statusCode, 201, b.body);
  const bUrl = new URL((await B('GET', `/api/v1/attachments/${b.json().id}/url`)).json().url);
  t.match(bUrl.pathname, new RegExp(`/tenants/${other.id}/files/`));
  t.notMatch(bUrl.pathname, new RegExp(`/tenants/${tenant.id}/`));
  const aUrl = new URL((await call('GET', `/api/v1/attachments/${a.json().id}/url`)).json().url);
  t.not(bUrl.pathname, aUrl.pathname);
  t.same(Buffer.from(await (await fetch(bUrl)).arrayBuffer()), Buffer.from('b data'));
});

t.test('a pre-signed URL expires (SILO_S3_PRESIGN_TTL_S=2)', async (t) => {
  const short = await setupApp(t, { ...s3.env, SILO_S3_PRESIGN_TTL_S: '2' });
  await makeTenant(short.ctx, 'ttl');
  const token = (await login(short.app, 'ttl')).accessToken;
  const co = (await call('POST', '/api/v1/companies', { on: short.app, slug: 'ttl', token, payload: { name: 'Brief' } })).json();
  const up = await upload(`/api/v1/companies/${co.id}/attachments`, { data: Buffer.from('short-lived') }, { on: short.app, slug: 'ttl', token });
  t.equal(up.statusCode, 201, up.body);
  const { url, expiresAt } = (await call('GET', `/api/v1/attachments/${up.json().id}/url`, { on: short.app, slug: 'ttl', token })).json();
  t.ok(Date.parse(expiresAt) - Date.now() <= 2000, 'expiresAt says 2 s');
  t.equal((await fetch(url)).status, 200, 'valid at first');
  // S3 checks expiry against the clock: nothing to await but time.
  await new Promise((r) => setTimeout(r, 3100));
  const late = await fetch(url);
  t.equal(late.status, 403, 'refused once expired');
  t.match(await late.text(), /expired/i);
});

t.test('without S3, attachment routes answer 503 STORAGE_NOT_CONFIGURED and logoUrl is null', async (t) => {
  const bare = await setupApp(t);
  await makeTenant(bare.ctx, 'nos3');
  const token = (await login(bare.app, 'nos3')).accessToken;
  const o = { on: bare.app, slug: 'nos3', token };
  const co = await call('POST', '/api/v1/companies', { ...o, payload: { name: 'No S3' } });
  t.equal(co.statusCode, 201);
  t.equal(co.json().logoUrl, null);
  t.equal((await call('GET', `/api/v1/companies/${co.json().id}`, o)).json().logoUrl, null);
  t.equal((await call('GET', '/api/v1/companies', o)).json().data[0].logoUrl, null);
  isProblem(t, await upload(`/api/v1/companies/${co.json().id}/attachments`, { data: Buffer.from('x') }, o), 503, 'STORAGE_NOT_CONFIGURED');
  isProblem(t, await call('GET', `/api/v1/companies/${co.json().id}/attachments`, o), 503, 'STORAGE_NOT_CONFIGURED');
  isProblem(t, await call('GET', '/api/v1/attachments/1', o), 503, 'STORAGE_NOT_CONFIGURED');
  isProblem(t, await call('GET', '/api/v1/attachments/1/url', o), 503, 'STORAGE_NOT_CONFIGURED');
  isProblem(t, await call('DELETE', '/api/v1/attachments/1', o), 503, 'STORAGE_NOT_CONFIGURED');
});
