/**
 * Record timelines: notes, tasks, activity entries and attachments of ONE record,
 * merged newest first (ties: note, task, activity, attachment, then newest id), walked by
 * cursor without gaps or duplicates at every page size (also while new items arrive),
 * never showing another record's items (another company, or a contact with the same id),
 * nor deleted notes and tasks; 404 for an unknown or deleted record (admins may ask with
 * includeDeleted); each source is one query bounded by the page, read from its index.
 */
import type { Knex } from 'knex';
import t from 'tap';
import { timeline } from '../src/crm/timeline.js';
import { addTenantUser } from '../src/provisioning/users-service.js';
import { login, makeTenant, PASSWORD, setupApp } from './fixtures/app.js';

const { app, ctx } = await setupApp(t);
const tenant = await makeTenant(ctx, 'crmtl');
await addTenantUser(ctx, 'crmtl', { email: 's@crmtl.test', role: 'staff', password: PASSWORD });
const admin = (await login(app, 'crmtl')).accessToken;
const staff = (await login(app, 'crmtl', 's@crmtl.test')).accessToken;
const db = <T>(fn: (kn: Knex) => Promise<T>) => ctx.admin.withTenantDatabase(tenant, fn);

const call = (url: string, token = admin) => app.inject({ method: 'GET', url, headers: { 'x-tenant': 'crmtl', authorization: `Bearer ${token}` } });
const post = async (url: string, payload: object) => {
  const res = await app.inject({ method: 'POST', url, payload, headers: { 'x-tenant': 'crmtl', authorization: `Bearer ${admin}` } });
  if (res.statusCode !== 201) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
  return res.json();
};

let files = 0;
/** An attachment row (the timeline reads rows; the bytes are not needed). */
const attach = (entityType: string, entityId: number, fileName: string) =>
  db(async (kn) => {
    files++;
    const [id] = await kn('attachments').insert({
      entity_type: entityType,
      entity_id: entityId,
      file_name: fileName,
      content_type: 'text/plain',
      size_bytes: 5,
      sha256: '0'.repeat(64),
      storage_key: `tenants/${tenant.id}/files/timeline-${files}`,
    });
    return Number(id);
  });
const at = (table: string, id: number, iso: string) =>
  db((kn) =>
    kn(table)
      .where({ id })
      .update({ created_at: new Date(iso) }),
  );

// The record, and neighbours whose items must never show.
const co = await post('/api/v1/companies', { name: 'Timeline Co' });
const neighbour = await post('/api/v1/companies', { name: 'Neighbour Co' });
// A contact with the company's id: (contact, id) is another record.
await db((kn) => kn('contacts').insert({ id: co.id, full_name: 'Same id' }));
await post('/api/v1/notes', { relatedType: 'contact', relatedId: co.id, text: 'contact note' });
await post('/api/v1/notes', { relatedType: 'company', relatedId: neighbour.id, text: 'neighbour note' });
await post('/api/v1/tasks', { title: 'neighbour task', relatedType: 'company', relatedId: neighbour.id });
await attach('contact', co.id, 'contact.txt');

// Items of the record: 2 notes, 2 tasks (+ their own activity rows, which are the task's, not the company's), 3 attachments, 1 activity row (create).
const n1 = await post('/api/v1/notes', { relatedType: 'company', relatedId: co.id, text: 'first note' });
const n2 = await post('/api/v1/notes', { relatedType: 'company', relatedId: co.id, text: 'second note' });
const k1 = await post('/api/v1/tasks', { title: 'first task', relatedType: 'company', relatedId: co.id });
const k2 = await post('/api/v1/tasks', { title: 'second task', relatedType: 'company', relatedId: co.id });
const a1 = await attach('company', co.id, 'one.txt');
const a2 = await attach('company', co.id, 'two.txt');
// A newer id than every note and task of its instant: ties go by kind before id.
const a3 = await attach('company', co.id, 'three.txt');
const deletedNote = await post('/api/v1/notes', { relatedType: 'company', relatedId: co.id, text: 'deleted note' });
await app.inject({ method: 'DELETE', url: `/api/v1/notes/${deletedNote.id}`, headers: { 'x-tenant': 'crmtl', authorization: `Bearer ${admin}` } });
const deletedTask = await post('/api/v1/tasks', { title: 'deleted task', relatedType: 'company', relatedId: co.id });
await app.inject({ method: 'DELETE', url: `/api/v1/tasks/${deletedTask.id}`, headers: { 'x-tenant': 'crmtl', authorization: `Bearer ${admin}` } });
const created = Number((await db((kn) => kn('activity_log').where({ entity: 'company', entity_id: co.id, action: 'create' }).first('id'))).id);

// Fixed times, with ties across kinds and within one kind.
await at('activity_log', created, '2020-01-01T00:00:00.000Z');
await at('notes', n1.id, '2020-01-02T00:00:00.000Z');
await at('tasks', k1.id, '2020-01-02T00:00:00.000Z');
await at('attachments', a1, '2020-01-02T00:00:00.000Z');
await at('attachments', a3, '2020-01-02T00:00:00.000Z');
await at('tasks', k2.id, '2020-01-03T00:00:00.000Z');
await at('attachments', a2, '2020-01-03T00:00:00.000Z');
await at('notes', n2.id, '2020-01-03T00:00:00.001Z');
const EXPECTED = [
  `note ${n2.id}`,
  `task ${k2.id}`,
  `attachment ${a2}`,
  `note ${n1.id}`,
  `task ${k1.id}`,
  `attachment ${a3}`,
  `attachment ${a1}`,
  `activity ${created}`,
];
const key = (i: { kind: string; id: number }) => `${i.kind} ${i.id}`;
const url = (q = '') => `/api/v1/companies/${co.id}/timeline${q}`;

t.test('the four kinds merged newest first; ties by kind then id; only this record; no deleted notes or tasks', async (t) => {
  const res = await call(url('?pageSize=100'));
  t.equal(res.statusCode, 200, res.body);
  const body = res.json();
  t.same(body.data.map(key), EXPECTED);
  t.equal(body.nextCursor, null, 'one page');
  t.match(body.data[0], { kind: 'note', at: '2020-01-03T00:00:00.001Z', text: 'second note', relatedType: 'company', relatedId: co.id });
  t.match(body.data[1], { kind: 'task', title: 'second task', status: 'open' });
  t.match(body.data[2], { kind: 'attachment', fileName: 'two.txt', entityType: 'company', entityId: co.id });
  t.match(body.data.at(-1), { kind: 'activity', action: 'create', entity: 'company', entityId: co.id });
  for (const item of body.data) t.equal(item.at, item.createdAt, `${key(item)}: at is its createdAt`);
  t.notOk(
    res.body.includes('neighbour') ||
      res.body.includes('contact note') ||
      res.body.includes('contact.txt') ||
      res.body.includes('deleted note') ||
      res.body.includes('deleted task'),
  );
  t.equal((await call(url(), staff)).statusCode, 200, 'staff may read it');
});

t.test('every page size walks the timeline without gaps or duplicates', async (t) => {
  for (let size = 1; size <= 8; size++) {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await call(url(`?pageSize=${size}${cursor ? `&cursor=${cursor}` : ''}`));
      t.equal(res.statusCode, 200);
      const body = res.json();
      t.ok(body.data.length <= size);
      seen.push(...body.data.map(key));
      cursor = body.nextCursor;
      pages++;
    } while (cursor && pages < 20);
    t.same(seen, EXPECTED, `pageSize ${size}: ${pages} pages`);
    t.equal(pages, Math.ceil(EXPECTED.length / size), `pageSize ${size}: no empty last page`);
  }
});

t.test('items written while paging do not shift the pages that follow', async (t) => {
  const first = (await call(url('?pageSize=3'))).json();
  t.same(first.data.map(key), EXPECTED.slice(0, 3));
  const fresh = await post('/api/v1/notes', { relatedType: 'company', relatedId: co.id, text: 'late arrival' });
  const rest = (await call(url(`?pageSize=100&cursor=${first.nextCursor}`))).json();
  t.same(rest.data.map(key), EXPECTED.slice(3), 'the rest, nothing twice, nothing missed');
  t.equal((await call(url('?pageSize=1'))).json().data[0].id, fresh.id, 'the new note heads a fresh walk');
  await db((kn) => kn('notes').where({ id: fresh.id }).delete());
});

t.test('unknown or deleted records are 404; admins see a deleted record with includeDeleted; bad cursors are 400', async (t) => {
  const unknown = await call('/api/v1/companies/999999/timeline');
  t.equal(unknown.statusCode, 404);
  t.equal(unknown.json().code, 'COMPANY_NOT_FOUND');
  t.equal((await call('/api/v1/deals/999999/timeline')).json().code, 'DEAL_NOT_FOUND');
  const gone = await post('/api/v1/companies', { name: 'Gone Co' });
  const note = await post('/api/v1/notes', { relatedType: 'company', relatedId: gone.id, text: 'kept' });
  await app.inject({ method: 'DELETE', url: `/api/v1/companies/${gone.id}`, headers: { 'x-tenant': 'crmtl', authorization: `Bearer ${admin}` } });
  t.equal((await call(`/api/v1/companies/${gone.id}/timeline`)).statusCode, 404, 'a deleted record has no timeline');
  const adm = await call(`/api/v1/companies/${gone.id}/timeline?includeDeleted=true`);
  t.equal(adm.statusCode, 200);
  t.ok(
    adm.json().data.some((i: any) => i.kind === 'note' && i.id === note.id),
    'its notes survive the delete',
  );
  t.equal((await call(`/api/v1/companies/${gone.id}/timeline?includeDeleted=true`, staff)).statusCode, 403);
  for (const cursor of [
    'nope',
    Buffer.from('[1,9,1]').toString('base64url'),
    Buffer.from('{"a":1}').toString('base64url'),
    Buffer.from('[-1,1,1]').toString('base64url'),
  ]) {
    const res = await call(url(`?cursor=${cursor}`));
    t.equal(res.statusCode, 400, cursor);
    t.equal(res.json().code, 'INVALID_CURSOR');
  }
  t.equal((await call(url('?pageSize=101'))).statusCode, 400);
});

t.test('contacts and deals have timelines too', async (t) => {
  const contact = await post('/api/v1/contacts', { fullName: 'TL Person' });
  await post('/api/v1/notes', { relatedType: 'contact', relatedId: contact.id, text: 'on contact' });
  const c = (await call(`/api/v1/contacts/${contact.id}/timeline`)).json();
  t.same(
    c.data.map((i: any) => i.kind),
    ['note', 'activity'],
  );
  const stage = (await call('/api/v1/pipeline-stages')).json().data[0];
  const deal = await post('/api/v1/deals', { title: 'TL deal', amount: '1.00', currency: 'EUR', stageId: stage.id });
  await post('/api/v1/tasks', { title: 'on deal', relatedType: 'deal', relatedId: deal.id });
  const d = (await call(`/api/v1/deals/${deal.id}/timeline`)).json();
  t.same(
    d.data.map((i: any) => i.kind),
    ['task', 'activity'],
  );
});

t.test('one query per source, each bounded by the page and read from its (record, created_at) index', async (t) => {
  const queries: Array<{ sql: string; bindings: unknown[] }> = [];
  await db(async (kn) => {
    const listener = (q: { sql: string; bindings: unknown[] }) => queries.push(q);
    kn.on('query', listener);
    try {
      const cursor = (await timeline(kn, 'company', co.id, { pageSize: 2 })).nextCursor!;
      queries.length = 0;
      const page = await timeline(kn, 'company', co.id, { pageSize: 2, cursor });
      t.same(page.data.map(key), EXPECTED.slice(2, 4));
    } finally {
      kn.off('query', listener);
    }
    const sources = queries.filter((q) => /limit \?/.test(q.sql));
    t.equal(queries.length, 5, 'the record, then one query per source');
    t.equal(sources.length, 4);
    for (const q of sources) t.equal(q.bindings.at(-1), 3, `${q.sql.slice(0, 40)}: limit pageSize + 1`);
    const indexes: Record<string, string> = {
      notes: 'notes_related_idx',
      tasks: 'tasks_related_idx',
      activity_log: 'activity_entity_created_idx',
      attachments: 'attachments_entity_created_idx',
    };
    for (const q of sources) {
      const table = /from `(\w+)`/.exec(q.sql)![1]!;
      const [plan] = (await kn.raw(`EXPLAIN ${q.sql}`, q.bindings as Knex.RawBinding[])) as [Array<{ possible_keys: string | null }>];
      t.ok(String(plan[0]?.possible_keys).includes(indexes[table]!), `${table}: ${indexes[table]} can serve it (${plan[0]?.possible_keys})`);
    }
  });
});

t.test('a lead has tasks, notes and a timeline like the other records (related types: one registry)', async (t) => {
  const lead = await post('/api/v1/leads', { fullName: 'Timeline Lead' });
  const task = await post('/api/v1/tasks', { title: 'Qualify', relatedType: 'lead', relatedId: lead.id });
  const note = await post('/api/v1/notes', { relatedType: 'lead', relatedId: lead.id, text: 'Warm' });
  const res = await call(`/api/v1/leads/${lead.id}/timeline`);
  t.equal(res.statusCode, 200, res.body);
  const items = res.json().data as Array<{ kind: string; id: number }>;
  t.same(
    items.filter((i) => i.kind !== 'activity').map((i) => `${i.kind}:${i.id}`),
    [`note:${note.id}`, `task:${task.id}`],
    "the lead's note and task, newest first",
  );
  t.ok(
    items.some((i) => i.kind === 'activity'),
    "and the lead's own activity",
  );
  const unknown = await app.inject({
    method: 'POST',
    url: '/api/v1/tasks',
    payload: { title: 'Nowhere', relatedType: 'lead', relatedId: 999999 },
    headers: { 'x-tenant': 'crmtl', authorization: `Bearer ${admin}` },
  });
  t.equal(unknown.statusCode, 422, 'a lead that does not exist is an invalid reference');
});
