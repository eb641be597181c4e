/**
 * CSV import of companies and contacts: a dry run writes nothing, an import creates N
 * rows and N activity rows in one transaction, one bad row among 1,000 writes nothing and
 * the report names its line, duplicates in the file and against the database, 10,001
 * rows refused, bad files refused with their codes, formula cells stored as text, an
 * export imported into another tenant reproduces the rows, Idempotency-Key, managers and
 * admins import (staff do not), and no tenant imports into another.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { login, makeTenant, PASSWORD, setupApp } from './fixtures/app.js';
import { rootKnex } from './fixtures/env.js';

const { app, ctx } = await setupApp(t);
const root = rootKnex();
t.teardown(() => root.destroy());
const A = 'impa';
const B = 'impb';
const tenantA = await makeTenant(ctx, A);
const tenantB = await makeTenant(ctx, B);
const dbOf: Record<string, string> = { [A]: tenantA.databaseName, [B]: tenantB.databaseName };
const tokens: Record<string, string> = { [A]: (await login(app, A)).accessToken, [B]: (await login(app, B)).accessToken };

type Opts = { token?: string; headers?: Record<string, string> };
const call = (slug: string, method: 'GET' | 'POST', url: string, payload?: object, o: Opts = {}) =>
  app.inject({ method, url, payload, headers: { 'x-tenant': slug, authorization: `Bearer ${o.token ?? tokens[slug]}`, ...o.headers } });

/** A multipart body with `csv` as the file part `file` (RFC 7578). */
function form(csv: string | Buffer) {
  const boundary = `----silo-import-${randomBytes(6).toString('hex')}`;
  const payload = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="import.csv"\r\nContent-Type: text/csv\r\n\r\n`),
    Buffer.isBuffer(csv) ? csv : Buffer.from(csv),
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { payload, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}
const upload = (slug: string, resource: 'companies' | 'contacts', csv: string | Buffer, query = '', o: Opts = {}) => {
  const f = form(csv);
  return app.inject({
    method: 'POST',
    url: `/api/v1/${resource}/import${query}`,
    payload: f.payload,
    headers: { 'x-tenant': slug, authorization: `Bearer ${o.token ?? tokens[slug]}`, ...f.headers, ...o.headers },
  });
};
const count = async (slug: string, table: string, where: Record<string, unknown> = {}) =>
  Number((await root(`${dbOf[slug]}.${table}`).where(where).count({ n: '*' }).first())!.n);

t.test('a dry run reports and writes nothing; the import creates N rows and N activity rows', async (t) => {
  const csv = 'Name,INDUSTRY,country,website,phone\r\nAlpha Ltd,Software,de,https://alpha.test/,+49 30 1234567\r\nBeta GmbH,,,,\r\nGamma SA,Retail,FR,,\r\n';
  const companiesBefore = await count(A, 'companies');
  const activityBefore = await count(A, 'activity_log');
  const dry = await upload(A, 'companies', csv, '?dryRun=true');
  t.equal(dry.statusCode, 200, dry.body);
  t.same(dry.json(), { created: 3, dryRun: true, errors: [] });
  t.equal(await count(A, 'companies'), companiesBefore, 'dry run: no company');
  t.equal(await count(A, 'activity_log'), activityBefore, 'dry run: no activity');
  const res = await upload(A, 'companies', csv);
  t.equal(res.statusCode, 201, res.body);
  t.same(res.json(), { created: 3, dryRun: false, errors: [] });
  t.equal(await count(A, 'companies'), companiesBefore + 3);
  t.equal(await count(A, 'activity_log', { entity: 'company', action: 'create' }), activityBefore + 3, 'one activity row per created row');
  const alpha = (await call(A, 'GET', '/api/v1/companies?q=alpha')).json().data[0];
  t.match(alpha, { name: 'Alpha Ltd', industry: 'Software', country: 'DE', website: 'https://alpha.test/', phone: '49301234567' });
  const log = await root(`${dbOf[A]}.activity_log`).where({ entity: 'company', entity_id: alpha.id }).first();
  t.ok(log, 'the activity row names the created id');
  t.match(typeof log.changes === 'string' ? JSON.parse(log.changes) : log.changes, { name: { old: null, new: 'Alpha Ltd' } });
});

t.test('one bad row among 1,000: nothing is written and the report names its line', async (t) => {
  const lines = ['name,country'];
  for (let i = 0; i < 1000; i++) lines.push(`Bulk company ${i},${i === 637 ? 'Germany' : 'DE'}`);
  const before = await count(A, 'companies');
  const activity = await count(A, 'activity_log');
  const res = await upload(A, 'companies', lines.join('\n'));
  t.equal(res.statusCode, 422, res.body.slice(0, 300));
  t.equal(res.json().code, 'IMPORT_INVALID');
  t.match(res.json().rowErrors, [{ row: 639, column: 'country', code: 'INVALID_VALUE' }], 'line 639: header + 637 rows before it + 1');
  t.equal(res.json().rowErrors.length, 1);
  t.equal(await count(A, 'companies'), before, 'no company written');
  t.equal(await count(A, 'activity_log'), activity, 'no activity written');
  const dry = await upload(A, 'companies', lines.join('\n'), '?dryRun=true');
  t.equal(dry.statusCode, 200);
  t.match(dry.json(), { created: 0, dryRun: true, errors: [{ row: 639, column: 'country' }] });
  lines[638] = 'Bulk company 637,DE';
  const ok = await upload(A, 'companies', lines.join('\n'));
  t.equal(ok.statusCode, 201, ok.body.slice(0, 300));
  t.equal(ok.json().created, 1000);
  t.equal(await count(A, 'companies'), before + 1000);
  t.equal(await count(A, 'activity_log'), activity + 1000);
});

t.test('duplicates in the file and against live rows are reported per row', async (t) => {
  const res = await upload(A, 'companies', 'name\nDelta One\nALPHA LTD\ndelta one\nÁlpha Ltd2\n', '?dryRun=true');
  t.equal(res.statusCode, 200, res.body);
  t.match(res.json().errors, [
    { row: 3, column: 'name', code: 'COMPANY_NAME_TAKEN' },
    { row: 4, column: 'name', code: 'DUPLICATE_IN_FILE' },
  ]);
  t.equal(res.json().errors.length, 2);
  const acme = (await call(A, 'POST', '/api/v1/companies', { name: 'Acme Import' })).json();
  await call(A, 'POST', '/api/v1/contacts', { companyId: acme.id, fullName: 'Existing', email: 'taken@acme.test' });
  const contacts = await upload(
    A,
    'contacts',
    [
      'fullName,email,companyName,companyId',
      'New One,taken@acme.test,acme import,', // taken in that company
      'New Two,taken@acme.test,,', // no company: another key
      'New Three,dup@acme.test,Acme Import,',
      'New Four,DUP@acme.test,,' + acme.id, // same company by id: duplicate in the file
      'New Five,x@acme.test,Nobody Inc,',
      'New Six,y@acme.test,,99999999',
      `New Seven,z@acme.test,Alpha Ltd,${acme.id}`,
    ].join('\n'),
    '?dryRun=true',
  );
  t.equal(contacts.statusCode, 200, contacts.body);
  t.match(contacts.json().errors, [
    { row: 2, column: 'email', code: 'CONTACT_EMAIL_TAKEN' },
    { row: 5, column: 'email', code: 'DUPLICATE_IN_FILE' },
    { row: 6, column: 'companyName', code: 'COMPANY_NOT_FOUND' },
    { row: 7, column: 'companyId', code: 'INVALID_REFERENCE' },
    { row: 8, column: 'companyName', code: 'COMPANY_MISMATCH' },
  ]);
  const real = await upload(A, 'contacts', 'fullName,email,company\nNew Three,dup@acme.test,Acme Import\nNo Mail,,\n');
  t.equal(real.statusCode, 201, real.body);
  const three = (await call(A, 'GET', '/api/v1/contacts?email=dup@acme.test')).json().data[0];
  t.equal(three.companyId, acme.id, 'the company is resolved by name');
});

t.test('10,001 rows are refused; bad files are refused with their codes', async (t) => {
  const big = ['name', ...Array.from({ length: 10_001 }, (_, i) => `Too many ${i}`)].join('\n');
  const res = await upload(A, 'companies', big);
  t.equal(res.statusCode, 413);
  t.equal(res.json().code, 'IMPORT_TOO_LARGE');
  const cases: Array<[string | Buffer, string]> = [
    ['name\n"Unclosed,quote\n', 'CSV_INVALID'],
    ['name,industry\nA,B,C\n', 'CSV_INVALID'],
    [Buffer.from([0x6e, 0x61, 0x6d, 0x65, 0x0a, 0x4d, 0xfc, 0x6c, 0x6c, 0x65, 0x72, 0x0a]), 'CSV_NOT_UTF8'], // latin-1 "Müller"
    ['', 'CSV_EMPTY'],
    ['name,colour\nA,red\n', 'CSV_UNKNOWN_COLUMN'],
    ['name,Name\nA,B\n', 'CSV_DUPLICATE_COLUMN'],
    ['industry\nRetail\n', 'CSV_MISSING_COLUMN'],
  ];
  for (const [csv, code] of cases) {
    const r = await upload(A, 'companies', csv);
    t.equal(r.statusCode, 400, `${code}: ${r.body}`);
    t.equal(r.json().code, code);
  }
  const notMultipart = await call(A, 'POST', '/api/v1/companies/import', { name: 'x' });
  t.equal(notMultipart.statusCode, 415);
});

t.test('formula-looking cells are stored as text; the export guards them again', async (t) => {
  const res = await upload(A, 'companies', 'name,industry\n"=HYPERLINK(""http://evil.test"")",+cmd|calc\n');
  t.equal(res.statusCode, 201, res.body);
  const row = await root(`${dbOf[A]}.companies`).where({ name: '=HYPERLINK("http://evil.test")' }).first();
  t.equal(row?.industry, '+cmd|calc', 'stored as sent');
  const csv = (await call(A, 'GET', '/api/v1/companies/export.csv?q=hyperlink')).body;
  t.match(csv, /'=HYPERLINK/);
});

t.test('an export imported into another tenant reproduces the rows', async (t) => {
  const exported = (await call(A, 'GET', '/api/v1/companies/export.csv?sort=name')).body;
  const res = await upload(B, 'companies', exported);
  t.equal(res.statusCode, 201, res.body.slice(0, 300));
  const pick = (rows: any[]) => rows.map((c) => [c.name, c.industry, c.country, c.website, c.phone]);
  const all = async (slug: string) => root(`${dbOf[slug]}.companies`).whereNull('deleted_at').orderBy('name').select('*');
  t.same(pick(await all(B)), pick(await all(A)), 'same companies, formula cells included');
  // Contacts: without companies (another tenant's companyId means nothing here).
  await call(A, 'POST', '/api/v1/contacts', { fullName: 'Loner', email: 'loner@x.test', phone: '+1 555 0100 123', jobTitle: '@boss' });
  const contacts = (await call(A, 'GET', '/api/v1/contacts/export.csv?q=loner')).body;
  const r2 = await upload(B, 'contacts', contacts);
  t.equal(r2.statusCode, 201, r2.body);
  t.match((await call(B, 'GET', '/api/v1/contacts?q=loner')).json().data, [
    { fullName: 'Loner', email: 'loner@x.test', phone: '15550100123', jobTitle: '@boss', companyId: null },
  ]);
});

t.test('Idempotency-Key: a retry replays and creates nothing', async (t) => {
  const csv = 'name\nIdem Co\n';
  const first = await upload(A, 'companies', csv, '', { headers: { 'idempotency-key': 'imp-1' } });
  t.equal(first.statusCode, 201, first.body);
  const again = await upload(A, 'companies', csv, '', { headers: { 'idempotency-key': 'imp-1' } });
  t.equal(again.statusCode, 201);
  t.equal(again.headers['idempotent-replayed'], 'true');
  t.same(again.json(), first.json());
  t.equal(await count(A, 'companies', { name: 'Idem Co' }), 1);
  const other = await upload(A, 'companies', 'name\nOther Co\n', '', { headers: { 'idempotency-key': 'imp-1' } });
  t.equal(other.statusCode, 422);
  t.equal(other.json().code, 'IDEMPOTENCY_KEY_REUSED');
});

t.test('importing needs <resource>:import (managers and admins, not staff); another tenant cannot be imported into', async (t) => {
  await call(A, 'POST', '/api/v1/users', { email: 'staff@impa.test', fullName: 'Staff', role: 'staff', password: PASSWORD });
  await call(A, 'POST', '/api/v1/users', { email: 'manager@impa.test', fullName: 'Manager', role: 'manager', password: PASSWORD });
  const staff = (await login(app, A, 'staff@impa.test')).accessToken;
  const manager = (await login(app, A, 'manager@impa.test')).accessToken;
  const refused = await upload(A, 'companies', 'name\nStaff Co\n', '', { token: staff });
  t.equal(refused.statusCode, 403, refused.body);
  t.equal(await count(A, 'companies', { name: 'Staff Co' }), 0, 'nothing written for staff');
  const res = await upload(A, 'companies', 'name\nManager Co\n', '', { token: manager });
  t.equal(res.statusCode, 201, res.body);
  const before = await count(B, 'companies');
  const cross = await upload(B, 'companies', 'name\nIntruder Co\n', '', { token: tokens[A] });
  t.equal(cross.statusCode, 401, "A's token on B");
  const companyOfB = (await call(B, 'POST', '/api/v1/companies', { name: 'B only' })).json();
  const ref = await upload(A, 'contacts', `fullName,companyId\nSneaky,${companyOfB.id}\nSneakier,\n`.replace(',\n', `,${companyOfB.id}\n`), '?dryRun=true');
  t.equal(ref.statusCode, 200);
  t.ok(
    ref.json().errors.every((e: any) => e.code === 'INVALID_REFERENCE'),
    "B's company id is not a company of A (ids overlap only by chance: it is refused or names A's own row)",
  );
  t.equal(await count(B, 'companies'), before + 1);
});
