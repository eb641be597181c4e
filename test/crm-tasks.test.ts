/**
 * Tasks through the API: roles, validation, references (assignee, related record),
 * optimistic locking, idempotent creates, completedAt, soft delete and restore, activity
 * rows, every filter (the `due` windows at fixed instants through the service's clock)
 * and sort field, and another tenant's 404.
 */
import t from 'tap';
import { createTasksService, TASK_SORT } from '../src/crm/tasks.js';
import { addTenantUser } from '../src/provisioning/users-service.js';
import { login, makeTenant, PASSWORD, setupApp } from './fixtures/app.js';

const { app, ctx } = await setupApp(t);
const tenant = await makeTenant(ctx, 'crmtask');
await addTenantUser(ctx, 'crmtask', { email: 'm@crmtask.test', role: 'manager', password: PASSWORD });
await addTenantUser(ctx, 'crmtask', { email: 's@crmtask.test', role: 'staff', password: PASSWORD });
await addTenantUser(ctx, 'crmtask', { email: 'gone@crmtask.test', role: 'staff', password: PASSWORD });
const admin = (await login(app, 'crmtask')).accessToken;
const manager = (await login(app, 'crmtask', 'm@crmtask.test')).accessToken;
const staff = (await login(app, 'crmtask', 's@crmtask.test')).accessToken;
const db = <T>(fn: Parameters<typeof ctx.admin.withTenantDatabase<T>>[1]) => ctx.admin.withTenantDatabase(tenant, fn);
const userId = async (email: string) => Number((await db((kn) => kn('users').where({ email }).first('id'))).id);
const adminId = await userId('admin@crmtask.test');
const staffId = await userId('s@crmtask.test');
const goneId = await userId('gone@crmtask.test');
await db((kn) => kn('users').where({ id: goneId }).update({ active: false }));

type Opts = { token?: string; payload?: unknown; headers?: Record<string, string> };
const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, o: Opts = {}) =>
  app.inject({ method, url, payload: o.payload as object, headers: { 'x-tenant': 'crmtask', authorization: `Bearer ${o.token ?? admin}`, ...o.headers } });
const must = async (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, o: Opts = {}) => {
  const res = await call(method, url, o);
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
  return res.statusCode === 204 ? undefined : res.json();
};
const titles = (res: { json(): any }) => res.json().data.map((x: any) => x.title);

const company = await must('POST', '/api/v1/companies', { payload: { name: 'Task Co' } });
const deletedCompany = await must('POST', '/api/v1/companies', { payload: { name: 'Gone Co' } });
await must('DELETE', `/api/v1/companies/${deletedCompany.id}`);
const contact = await must('POST', '/api/v1/contacts', { payload: { fullName: 'Task Person', companyId: company.id } });

t.test('create answers 201 with defaults; staff may create; createdBy is the caller', async (t) => {
  const res = await call('POST', '/api/v1/tasks', {
    token: staff,
    payload: { title: '  Call back  ', description: 'about the offer', dueAt: '2030-05-01T09:30:00+02:00', relatedType: 'company', relatedId: company.id },
  });
  t.equal(res.statusCode, 201, res.body);
  t.match(res.json(), {
    title: 'Call back',
    description: 'about the offer',
    dueAt: '2030-05-01T07:30:00.000Z',
    priority: 'normal',
    status: 'open',
    assigneeId: null,
    relatedType: 'company',
    relatedId: company.id,
    completedAt: null,
    createdBy: staffId,
    version: 1,
    deletedAt: null,
  });
  const bare = await call('POST', '/api/v1/tasks', { payload: { title: 'No record' } });
  t.equal(bare.statusCode, 201, 'a task need not be about a record');
  t.match(bare.json(), { relatedType: null, relatedId: null, dueAt: null });
});

t.test('authentication comes before validation; roles come before params', async (t) => {
  const res = await app.inject({ method: 'POST', url: '/api/v1/tasks', payload: { nope: 1 }, headers: { 'x-tenant': 'crmtask' } });
  t.equal(res.statusCode, 401);
  t.equal((await call('DELETE', '/api/v1/tasks/abc', { token: staff })).statusCode, 403);
  t.equal((await call('PATCH', '/api/v1/tasks/abc', { token: staff, payload: {} })).statusCode, 403);
});

t.test('bad input gets 400 problem+json and creates nothing', async (t) => {
  const before = (await must('GET', '/api/v1/tasks')).total;
  for (const payload of [
    {},
    { title: '' },
    { title: '   ' },
    { title: 'x'.repeat(201) },
    { title: 'T', description: 'x'.repeat(10_001) },
    { title: 'T', dueAt: 'tomorrow' },
    { title: 'T', dueAt: '2030-05-01' },
    { title: 'T', dueAt: '2030-05-01T09:30:00' },
    { title: 'T', dueAt: '0999-12-31T00:00:00Z' },
    { title: 'T', priority: 'urgent' },
    { title: 'T', status: 'closed' },
    { title: 'T', assigneeId: 0 },
    { title: 'T', assigneeId: '1' },
    { title: 'T', relatedType: 'company' },
    { title: 'T', relatedId: company.id },
    { title: 'T', relatedType: 'user', relatedId: 1 },
    { title: 'T', relatedType: '__proto__', relatedId: 1 },
    { title: 'T', extra: 1 },
    { title: 42 },
  ]) {
    const res = await call('POST', '/api/v1/tasks', { payload });
    t.equal(res.statusCode, 400, JSON.stringify(payload).slice(0, 80));
    t.equal(res.json().code, 'VALIDATION_FAILED');
    t.match(res.headers['content-type'], /application\/problem\+json/);
  }
  t.equal((await must('GET', '/api/v1/tasks')).total, before);
});

t.test('a missing or soft-deleted related record, or an unknown or inactive assignee, is 422 INVALID_REFERENCE', async (t) => {
  const before = (await must('GET', '/api/v1/tasks')).total;
  for (const [payload, field] of [
    [{ title: 'T', relatedType: 'company', relatedId: 999_999 }, 'relatedId'],
    [{ title: 'T', relatedType: 'company', relatedId: deletedCompany.id }, 'relatedId'],
    [{ title: 'T', relatedType: 'deal', relatedId: company.id }, 'relatedId'],
    [{ title: 'T', relatedType: 'contact', relatedId: company.id + 1000 }, 'relatedId'],
    [{ title: 'T', assigneeId: 999_999 }, 'assigneeId'],
    [{ title: 'T', assigneeId: goneId }, 'assigneeId'],
  ] as const) {
    const res = await call('POST', '/api/v1/tasks', { payload });
    t.equal(res.statusCode, 422, JSON.stringify(payload));
    t.equal(res.json().code, 'INVALID_REFERENCE');
    t.equal(res.json().errors?.[0]?.path, `body.${field}`);
  }
  t.equal((await must('GET', '/api/v1/tasks')).total, before, 'nothing created');
  const ok = await call('POST', '/api/v1/tasks', { payload: { title: 'On contact', relatedType: 'contact', relatedId: contact.id, assigneeId: staffId } });
  t.equal(ok.statusCode, 201, ok.body);
  const task = ok.json();
  const bad = await call('PATCH', `/api/v1/tasks/${task.id}`, { payload: { assigneeId: goneId, version: 1 } });
  t.equal(bad.statusCode, 422, 'an update is checked too');
  t.equal(bad.json().code, 'INVALID_REFERENCE');
  const badRel = await call('PATCH', `/api/v1/tasks/${task.id}`, { payload: { relatedType: 'company', relatedId: deletedCompany.id, version: 1 } });
  t.equal(badRel.statusCode, 422);
  const half = await call('PATCH', `/api/v1/tasks/${task.id}`, { payload: { relatedId: company.id, version: 1 } });
  t.equal(half.statusCode, 400, 'relatedId alone is refused on update');
  t.equal((await must('GET', `/api/v1/tasks/${task.id}`)).version, 1, 'unchanged');
});

t.test('PATCH needs the current version (body or If-Match); stale gets 409; managers may update', async (t) => {
  const task = await must('POST', '/api/v1/tasks', { payload: { title: 'Versioned' } });
  const none = await call('PATCH', `/api/v1/tasks/${task.id}`, { payload: { priority: 'high' } });
  t.equal(none.statusCode, 428);
  t.equal(none.json().code, 'VERSION_REQUIRED');
  t.equal((await call('PATCH', `/api/v1/tasks/${task.id}`, { token: staff, payload: { priority: 'high', version: 1 } })).statusCode, 403);
  const ok = await call('PATCH', `/api/v1/tasks/${task.id}`, { token: manager, payload: { priority: 'high', version: 1 } });
  t.equal(ok.statusCode, 200, ok.body);
  t.match(ok.json(), { priority: 'high', version: 2 });
  const stale = await call('PATCH', `/api/v1/tasks/${task.id}`, { payload: { priority: 'low', version: 1 } });
  t.equal(stale.statusCode, 409);
  t.equal(stale.json().code, 'VERSION_CONFLICT');
  const viaHeader = await call('PATCH', `/api/v1/tasks/${task.id}`, { payload: { dueAt: null, description: null }, headers: { 'if-match': '"2"' } });
  t.equal(viaHeader.statusCode, 200);
  t.equal(viaHeader.json().version, 3);
  t.equal((await call('PATCH', '/api/v1/tasks/999999', { payload: { version: 1 } })).statusCode, 404);
});

t.test('done sets completedAt; reopening or cancelling clears it; created done has it', async (t) => {
  const task = await must('POST', '/api/v1/tasks', { payload: { title: 'Finish me' } });
  const t0 = Date.now();
  const done = await must('PATCH', `/api/v1/tasks/${task.id}`, { payload: { status: 'done', version: 1 } });
  t.ok(done.completedAt, 'set');
  t.ok(Math.abs(new Date(done.completedAt).getTime() - t0) < 60_000, 'about now');
  const renamed = await must('PATCH', `/api/v1/tasks/${task.id}`, { payload: { title: 'Finished', version: 2 } });
  t.equal(renamed.completedAt, done.completedAt, 'other changes keep it');
  const reopened = await must('PATCH', `/api/v1/tasks/${task.id}`, { payload: { status: 'open', version: 3 } });
  t.equal(reopened.completedAt, null, 'cleared when reopened');
  const again = await must('PATCH', `/api/v1/tasks/${task.id}`, { payload: { status: 'done', version: 4 } });
  t.ok(again.completedAt);
  const cancelled = await must('PATCH', `/api/v1/tasks/${task.id}`, { payload: { status: 'cancelled', version: 5 } });
  t.equal(cancelled.completedAt, null, 'cleared when cancelled');
  const born = await must('POST', '/api/v1/tasks', { payload: { title: 'Born done', status: 'done' } });
  t.ok(born.completedAt, 'created done');
});

t.test('Idempotency-Key: a retry returns the first result; another body with the key is 422', async (t) => {
  const headers = { 'idempotency-key': 'task-1' };
  const a = await call('POST', '/api/v1/tasks', { payload: { title: 'Once' }, headers });
  const b = await call('POST', '/api/v1/tasks', { payload: { title: 'Once' }, headers });
  t.same([a.statusCode, b.statusCode], [201, 201]);
  t.equal(b.headers['idempotent-replayed'], 'true');
  t.equal(b.json().id, a.json().id);
  t.equal((await must('GET', '/api/v1/tasks?q=Once')).total, 1, 'nothing new created');
  const c = await call('POST', '/api/v1/tasks', { payload: { title: 'Twice' }, headers });
  t.equal(c.statusCode, 422);
  t.equal(c.json().code, 'IDEMPOTENCY_KEY_REUSED');
  const [x, y] = await Promise.all([
    call('POST', '/api/v1/tasks', { payload: { title: 'Par' }, headers: { 'idempotency-key': 'tpar' } }),
    call('POST', '/api/v1/tasks', { payload: { title: 'Par' }, headers: { 'idempotency-key': 'tpar' } }),
  ]);
  t.same([x.statusCode, y.statusCode], [201, 201]);
  t.equal(x.json().id, y.json().id, 'concurrent retries create one task');
});

t.test('delete is a soft delete (admins); restore brings it back; each change has its activity row', async (t) => {
  const task = await must('POST', '/api/v1/tasks', { payload: { title: 'Deletable', priority: 'low' } });
  await must('PATCH', `/api/v1/tasks/${task.id}`, { payload: { priority: 'high', version: 1 } });
  t.equal((await call('DELETE', `/api/v1/tasks/${task.id}`, { token: manager })).statusCode, 403, 'managers cannot delete');
  t.equal((await call('DELETE', `/api/v1/tasks/${task.id}`)).statusCode, 204);
  t.equal((await call('GET', `/api/v1/tasks/${task.id}`)).statusCode, 404);
  t.equal((await call('DELETE', `/api/v1/tasks/${task.id}`)).statusCode, 404, 'deleted once');
  t.notOk(titles(await call('GET', '/api/v1/tasks?q=Deletable')).length, 'not listed');
  t.same(titles(await call('GET', '/api/v1/tasks?q=Deletable&includeDeleted=true')), ['Deletable'], 'admins list deleted rows');
  t.equal((await call('GET', `/api/v1/tasks/${task.id}?includeDeleted=true`, { token: staff })).statusCode, 403);
  const row = await db((kn) => kn('tasks').where({ id: task.id }).first());
  t.ok(row.deleted_at, 'the row is kept');
  t.equal((await call('POST', `/api/v1/tasks/${task.id}/restore`, { token: manager })).statusCode, 403);
  const restored = await call('POST', `/api/v1/tasks/${task.id}/restore`);
  t.equal(restored.statusCode, 200);
  t.match(restored.json(), { deletedAt: null, version: 4 });
  const acts = await db((kn) => kn('activity_log').where({ entity: 'task', entity_id: task.id }).orderBy('id').select('action', 'user_id', 'changes'));
  t.same(
    acts.map((a: any) => a.action),
    ['create', 'update', 'delete', 'restore'],
  );
  t.equal(Number(acts[0].user_id), adminId);
  const changes = typeof acts[1].changes === 'string' ? JSON.parse(acts[1].changes) : acts[1].changes;
  t.same(changes.priority, { old: 'low', new: 'high' });
});

t.test("a record's soft delete keeps its tasks", async (t) => {
  const co = await must('POST', '/api/v1/companies', { payload: { name: 'Short-lived Co' } });
  const task = await must('POST', '/api/v1/tasks', { payload: { title: 'Survivor', relatedType: 'company', relatedId: co.id } });
  await must('DELETE', `/api/v1/companies/${co.id}`);
  t.match(await must('GET', `/api/v1/tasks/${task.id}`), { title: 'Survivor', deletedAt: null, relatedId: co.id });
});

t.test('filters: assignee (me or id), status, priority, related record, created/updated ranges', async (t) => {
  const co = await must('POST', '/api/v1/companies', { payload: { name: 'Filter Co' } });
  const mk = (title: string, extra: object = {}) => must('POST', '/api/v1/tasks', { payload: { title: `Flt-${title}`, ...extra } });
  const a = await mk('a', { assigneeId: staffId, priority: 'high', relatedType: 'company', relatedId: co.id });
  await mk('b', { assigneeId: staffId, status: 'done' });
  await mk('c', { assigneeId: adminId, priority: 'low', relatedType: 'company', relatedId: co.id });
  await mk('d');
  const q = (s: string, token = admin) => call('GET', `/api/v1/tasks?q=Flt-&sort=title&${s}`, { token });
  t.same(titles(await q('assignee=me', staff)), ['Flt-a', 'Flt-b'], 'assignee=me is the caller');
  t.same(titles(await q('assignee=me')), ['Flt-c']);
  t.same(titles(await q(`assignee=${staffId}`)), ['Flt-a', 'Flt-b']);
  t.same(titles(await q('status=done')), ['Flt-b']);
  t.same(titles(await q('priority=high')), ['Flt-a']);
  t.same(titles(await q(`relatedType=company&relatedId=${co.id}`)), ['Flt-a', 'Flt-c']);
  t.same(titles(await q('relatedType=contact')), []);
  t.equal((await q(`relatedId=${co.id}`)).statusCode, 400, 'relatedId needs relatedType');
  t.equal((await q('assignee=you')).statusCode, 400);
  t.equal((await q('due=yesterday')).statusCode, 400);
  t.equal((await q('createdAfter=yesterday')).statusCode, 400);
  await db((kn) =>
    kn('tasks')
      .where({ id: a.id })
      .update({ created_at: new Date('2020-01-01T00:00:00.000Z'), updated_at: new Date('2020-01-02T00:00:00.000Z') }),
  );
  t.same(titles(await q('createdBefore=2020-01-01T00:00:00.001Z')), ['Flt-a'], 'before is exclusive, ms precise');
  t.same(titles(await q('createdBefore=2020-01-01T00:00:00.000Z')), []);
  t.same(titles(await q('createdAfter=2020-01-01T00:00:00Z&createdBefore=2020-01-01T01:00:00%2B01:00')), [], 'offsets are honoured');
  t.same(titles(await q('createdAfter=2020-01-01T00:00:00Z&createdBefore=2020-01-01T02:00:00%2B01:00')), ['Flt-a']);
  t.notOk(titles(await q('createdAfter=2021-01-01T00:00:00Z')).includes('Flt-a'), 'after is inclusive of later only');
  t.same(titles(await q('updatedBefore=2020-01-03T00:00:00Z')), ['Flt-a']);
  t.same(titles(await q('updatedAfter=2020-01-02T00:00:00Z&updatedBefore=2020-01-02T00:00:00.001Z')), ['Flt-a'], 'after is inclusive');
});

t.test('sort works on every field; an unknown field is 400 INVALID_SORT; pagination as elsewhere', async (t) => {
  for (const field of Object.keys(TASK_SORT)) {
    for (const s of [field, `-${field}`]) {
      const res = await call('GET', `/api/v1/tasks?sort=${s}`);
      t.equal(res.statusCode, 200, `sort=${s}`);
    }
  }
  t.same(titles(await call('GET', '/api/v1/tasks?q=Flt-&sort=-title')), ['Flt-d', 'Flt-c', 'Flt-b', 'Flt-a']);
  const byPriority = (await must('GET', '/api/v1/tasks?q=Flt-&sort=-priority,title')).data.map((x: any) => x.priority);
  t.same(byPriority, ['high', 'normal', 'normal', 'low'], 'priority sorts by rank, not by name');
  for (const s of ['password', '__proto__', 'related_type']) {
    const bad = await call('GET', `/api/v1/tasks?sort=${s}`);
    t.equal(bad.statusCode, 400);
    t.equal(bad.json().code, 'INVALID_SORT');
  }
  const p1 = await must('GET', '/api/v1/tasks?q=Flt-&sort=title&pageSize=3');
  const p2 = await must('GET', '/api/v1/tasks?q=Flt-&sort=title&pageSize=3&page=2');
  t.same([p1.total, p1.data.length, p2.data.length, p2.data[0].title], [4, 3, 1, 'Flt-d']);
  t.equal((await call('GET', '/api/v1/tasks?pageSize=101')).statusCode, 400);
});

t.test('due filters through the API, relative to now', async (t) => {
  const now = Date.now();
  const iso = (ms: number) => new Date(now + ms).toISOString();
  await must('POST', '/api/v1/tasks', { payload: { title: 'Due-late', dueAt: iso(-3_600_000) } });
  await must('POST', '/api/v1/tasks', { payload: { title: 'Due-late-done', dueAt: iso(-3_600_000), status: 'done' } });
  await must('POST', '/api/v1/tasks', { payload: { title: 'Due-soon', dueAt: iso(3 * 86_400_000) } });
  await must('POST', '/api/v1/tasks', { payload: { title: 'Due-far', dueAt: iso(30 * 86_400_000) } });
  t.same(titles(await call('GET', '/api/v1/tasks?q=Due-&sort=title&due=overdue')), ['Due-late']);
  t.same(titles(await call('GET', '/api/v1/tasks?q=Due-&sort=title&due=week')), ['Due-soon']);
});

t.test('due windows at fixed instants (UTC): overdue, today, week and their edges', async (t) => {
  const now = new Date('2031-03-15T12:00:00.000Z');
  const actor = { userId: adminId, role: 'admin' as const };
  const cases: Array<[string, string | null, 'open' | 'done' | 'cancelled']> = [
    ['A', '2031-03-15T11:59:59.999Z', 'open'],
    ['B', '2031-03-15T12:00:00.000Z', 'open'],
    ['C', '2031-03-15T00:00:00.000Z', 'done'],
    ['D', '2031-03-14T23:59:59.999Z', 'open'],
    ['E', '2031-03-16T00:00:00.000Z', 'open'],
    ['F', '2031-03-22T11:59:59.999Z', 'open'],
    ['G', '2031-03-22T12:00:00.000Z', 'open'],
    ['H', null, 'open'],
    ['I', '2031-03-10T00:00:00.000Z', 'cancelled'],
    ['J', '2031-03-15T23:59:59.999Z', 'open'],
  ];
  await db(async (kn) => {
    const svc = createTasksService(kn, actor, { now: () => now });
    for (const [title, dueAt, status] of cases)
      await svc.create({ title: `Fixed ${title}`, dueAt: dueAt === null ? null : new Date(dueAt), priority: 'normal', status });
    const list = async (due: 'overdue' | 'today' | 'week') =>
      (await svc.list({ due, q: 'Fixed', sort: 'title', page: 1, pageSize: 100 })).data.map((x) => x.title.slice(6));
    t.same(await list('overdue'), ['A', 'D'], 'overdue: due before now and open (not done, not cancelled, not due exactly now)');
    t.same(await list('today'), ['A', 'B', 'C', 'J'], 'today: [00:00Z, 24:00Z) of the current UTC day, any status');
    t.same(await list('week'), ['B', 'E', 'F', 'J'], 'week: [now, now + 7 days)');
    const late = createTasksService(kn, actor, { now: () => new Date('2031-03-15T23:59:59.999Z') });
    t.same(
      (await late.list({ due: 'today', q: 'Fixed', sort: 'title', page: 1, pageSize: 100 })).data.map((x) => x.title.slice(6)),
      ['A', 'B', 'C', 'J'],
      'the last ms of the day is still that day',
    );
    const next = createTasksService(kn, actor, { now: () => new Date('2031-03-16T00:00:00.000Z') });
    t.same(
      (await next.list({ due: 'today', q: 'Fixed', sort: 'title', page: 1, pageSize: 100 })).data.map((x) => x.title.slice(6)),
      ['E'],
      'midnight UTC starts the next day',
    );
  });
});

t.test('another tenant never sees these tasks', async (t) => {
  await makeTenant(ctx, 'crmtask-other');
  const other = (await login(app, 'crmtask-other')).accessToken;
  const task = await must('POST', '/api/v1/tasks', { payload: { title: 'Private task' } });
  const as = (method: 'GET' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    app.inject({ method, url, payload, headers: { 'x-tenant': 'crmtask-other', authorization: `Bearer ${other}` } });
  t.equal((await as('GET', `/api/v1/tasks/${task.id}`)).statusCode, 404);
  t.equal((await as('PATCH', `/api/v1/tasks/${task.id}`, { title: 'Hijack', version: 1 })).statusCode, 404);
  t.equal((await as('DELETE', `/api/v1/tasks/${task.id}`)).statusCode, 404);
  t.equal((await as('GET', '/api/v1/tasks?q=Private')).json().total, 0);
  const rel = await app.inject({
    method: 'POST',
    url: '/api/v1/tasks',
    payload: { title: 'Cross', relatedType: 'company', relatedId: company.id },
    headers: { 'x-tenant': 'crmtask-other', authorization: `Bearer ${other}` },
  });
  t.equal(rel.statusCode, 422, "another tenant's record is not a reference here");
  t.equal((await must('GET', `/api/v1/tasks/${task.id}`)).title, 'Private task', 'unchanged');
});
