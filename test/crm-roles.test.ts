/**
 * Custom roles and permissions (issue 16 part 4): roles are sets of `resource:action`
 * permissions; the built-in admin, manager and staff keep exactly the rights the role
 * lists of the routes gave them (every route of the router answers each of them as
 * before); every authenticated tenant route checks a permission (a role without any gets
 * 403 on all of them); a custom role opens what it holds and nothing else; a change of a
 * role's permissions reaches a second API process within one change-poll interval; roles in
 * use, built-in roles and unknown permissions are refused; a role id means nothing in
 * another tenant; the tenant always keeps an active user with `users:manage` and
 * `roles:manage`; the CLI adds users with a custom role.
 */
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { buildApp } from '../src/http/app.js';
import { BUILT_IN_PERMISSIONS, PERMISSION_NAMES } from '../src/crm/permissions.js';
import { appRoutes, openApiDocument } from './fixtures/app-routes.js';
import { PASSWORD, login, makeTenant, setupApp } from './fixtures/app.js';
import { runCliJson } from './fixtures/env.js';
import { isProblem } from './fixtures/problem.js';

const POLL_MS = 400;
const { app, ctx, env } = await setupApp(t, { SILO_TENANT_CHANGE_POLL_MS: String(POLL_MS) });
await makeTenant(ctx, 'roles-a');
await makeTenant(ctx, 'roles-b');

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT';
const call =
  (slug: string, token: string, on: FastifyInstance = app) =>
  (method: Method, url: string, payload?: unknown, headers: Record<string, string> = {}) =>
    on.inject({
      method,
      url,
      ...(payload === undefined ? {} : { payload: payload as object }),
      headers: { 'x-tenant': slug, authorization: `Bearer ${token}`, ...headers },
    });
const adminA = call('roles-a', (await login(app, 'roles-a')).accessToken);
const adminB = call('roles-b', (await login(app, 'roles-b')).accessToken);

let seq = 0;
/** A user of `slug` with `role` (a name), signed in; its id and a caller. */
async function userWith(slug: string, role: string, on: FastifyInstance = app) {
  const email = `u${++seq}@${slug}.test`;
  const admin = slug === 'roles-a' ? adminA : adminB;
  const res = await admin('POST', '/api/v1/users', { email, role, password: PASSWORD });
  if (res.statusCode !== 201) throw new Error(`create ${email} (${role}): ${res.statusCode} ${res.body}`);
  const { accessToken } = await login(on, slug, email);
  return { id: res.json<{ id: number }>().id, email, as: call(slug, accessToken, on) };
}
/** Creates a custom role in roles-a. */
async function role(name: string, permissions: string[], admin = adminA) {
  const res = await admin('POST', '/api/v1/roles', { name, permissions });
  if (res.statusCode !== 201) throw new Error(`create role ${name}: ${res.statusCode} ${res.body}`);
  return res.json<{ id: number; name: string; version: number; permissions: string[] }>();
}

/**
 * Who each route let in before permissions existed, read from the role lists of the
 * routes at the commit before this change (`ROLES.read`/`create`: all; `ROLES.update`,
 * attachments' delete: admin and manager; `ROLES.remove` and `['admin']`: admin).
 */
const ALL = ['admin', 'manager', 'staff'];
const AM = ['admin', 'manager'];
const A = ['admin'];
const BEFORE: Record<string, string[]> = {
  listCompanies: ALL,
  exportCompanies: ALL,
  getCompany: ALL,
  createCompany: ALL,
  updateCompany: AM,
  deleteCompany: A,
  restoreCompany: A,
  listContacts: ALL,
  exportContacts: ALL,
  getContact: ALL,
  createContact: ALL,
  updateContact: AM,
  deleteContact: A,
  restoreContact: A,
  listDeals: ALL,
  dealStats: ALL,
  getDeal: ALL,
  createDeal: ALL,
  updateDeal: AM,
  moveDeal: AM,
  winDeal: AM,
  loseDeal: AM,
  deleteDeal: A,
  restoreDeal: A,
  listPipelineStages: ALL,
  getPipelineStage: ALL,
  createPipelineStage: A,
  updatePipelineStage: A,
  deletePipelineStage: A,
  uploadCompanyAttachment: ALL,
  uploadContactAttachment: ALL,
  uploadDealAttachment: ALL,
  listCompanyAttachments: ALL,
  listContactAttachments: ALL,
  listDealAttachments: ALL,
  getAttachment: ALL,
  getAttachmentUrl: ALL,
  deleteAttachment: AM,
  listActivity: ALL,
  listUsers: A,
  createUser: A,
  getUser: A,
  updateUser: A,
  deactivateUser: A,
  listInvitations: A,
  createInvitation: A,
  revokeInvitation: A,
  listTenantHistory: A,
  tenantHistoryStats: A,
  getUsage: A,
  // New with roles: reading roles is users:read, writing them roles:manage (admin only among the built-ins).
  listRoles: A,
  getRole: A,
  createRole: A,
  updateRole: A,
  deleteRole: A,
  // Routes merged with roles (issue 16), as their permissions give the built-ins.
  getCompanyTimeline: ALL,
  getContactTimeline: ALL,
  getDealTimeline: ALL,
  getLeadTimeline: ALL,
  // Bulk: any of the actions' permissions opens the route (update: managers); each action is checked after.
  bulkCompanies: AM,
  bulkContacts: AM,
  bulkDeals: AM,
  bulkLeads: AM,
  importCompanies: AM,
  importContacts: AM,
  listLeads: ALL,
  exportLeads: ALL,
  getLead: ALL,
  createLead: ALL,
  updateLead: AM,
  convertLead: AM,
  deleteLead: A,
  restoreLead: A,
  listTasks: ALL,
  getTask: ALL,
  createTask: ALL,
  updateTask: AM,
  deleteTask: A,
  restoreTask: A,
  listNotes: ALL,
  getNote: ALL,
  createNote: ALL,
  // Any note writer may try; the service lets the author (or notes:manage) change it.
  updateNote: ALL,
  deleteNote: ALL,
  listWebhooks: A,
  getWebhook: A,
  createWebhook: A,
  updateWebhook: A,
  deleteWebhook: A,
  rotateWebhookSecret: A,
  listWebhookDeliveries: A,
  redeliverWebhookDelivery: A,
};
/** Routes any signed-in user may call (no permission): their own session. */
const ANY_USER = new Set(['me', 'getMe', 'logout']);

const routes = (await appRoutes(app, '/api/v1')).filter((r) => r.method !== 'HEAD' && r.operation?.security?.some((s) => 'tenantBearer' in s));
const url = (path: string) => path.replace(/\{[^}]+\}/g, '999999');
const forbidden = (res: { statusCode: number; body: string }) => res.statusCode === 403 && (JSON.parse(res.body) as { code?: string }).code === 'FORBIDDEN';

t.test("the built-in roles are seeded, fixed, with the code catalogue's permissions", async (t) => {
  const list = await adminA('GET', '/api/v1/roles');
  t.equal(list.statusCode, 200, list.body);
  const byName = Object.fromEntries(list.json().data.map((r: { name: string }) => [r.name, r]));
  for (const name of ['admin', 'manager', 'staff'] as const) {
    t.match(byName[name], { builtIn: true, version: 1 }, name);
    t.same(byName[name].permissions, BUILT_IN_PERMISSIONS[name], `${name}: today's rights`);
  }
  t.notOk(byName.staff.permissions.includes('companies:update'), 'staff do not update');
  t.ok(
    byName.manager.permissions.includes('attachments:delete') && !byName.manager.permissions.includes('companies:delete'),
    'managers delete attachments, not records',
  );
  isProblem(t, await adminA('PATCH', `/api/v1/roles/${byName.staff.id}`, { permissions: ['contacts:read'] }, { 'if-match': '"1"' }), 409, 'ROLE_BUILT_IN');
  isProblem(t, await adminA('DELETE', `/api/v1/roles/${byName.staff.id}`), 409, 'ROLE_BUILT_IN');
  const description = ((await openApiDocument(app)) as unknown as { info: { description: string } }).info.description;
  t.same(
    PERMISSION_NAMES.filter((p) => !description.includes(`\`${p}\``)),
    [],
    'the OpenAPI description lists every permission',
  );
});

t.test('every route of the router answers admin, manager and staff as before, and checks a permission', async (t) => {
  const callers = { admin: adminA, manager: (await userWith('roles-a', 'manager')).as, staff: (await userWith('roles-a', 'staff')).as };
  await role('nobody', []);
  const nobody = (await userWith('roles-a', 'nobody')).as;
  t.ok(routes.length > 40, `${routes.length} authenticated routes`);
  for (const r of routes) {
    const id = r.operation?.operationId ?? `${r.method} ${r.path}`;
    if (ANY_USER.has(id)) {
      t.notOk(forbidden(await nobody(r.method as Method, url(r.path))), `${id}: any signed-in user`);
      continue;
    }
    const before = BEFORE[id];
    t.ok(before, `${id} (${r.method} ${r.path}) is in the table of rights`);
    for (const [name, as] of Object.entries(callers)) {
      const res = await as(r.method as Method, url(r.path));
      t.equal(!forbidden(res), before?.includes(name) ?? false, `${id} for ${name}: ${res.statusCode}`);
    }
    t.ok(forbidden(await nobody(r.method as Method, url(r.path))), `${id}: a role without permissions gets 403 FORBIDDEN`);
  }
  // includeDeleted stays admin's (records:read-deleted).
  for (const [name, as] of Object.entries(callers)) {
    const res = await as('GET', '/api/v1/companies?includeDeleted=true');
    t.equal(res.statusCode, name === 'admin' ? 200 : 403, `includeDeleted for ${name}`);
  }
});

t.test('a custom role opens what it holds and nothing else', async (t) => {
  await role('reader', ['contacts:read']);
  const reader = (await userWith('roles-a', 'reader')).as;
  t.equal((await reader('GET', '/api/v1/contacts')).statusCode, 200, 'lists contacts');
  isProblem(t, await reader('GET', '/api/v1/companies'), 403, 'FORBIDDEN');
  isProblem(t, await reader('POST', '/api/v1/contacts', { firstName: 'No', lastName: 'Way' }), 403, 'FORBIDDEN');
  isProblem(t, await reader('GET', '/api/v1/contacts?includeDeleted=true'), 403, 'FORBIDDEN');
  await role('archivist', ['companies:read', 'records:read-deleted']);
  t.equal(
    (await (await userWith('roles-a', 'archivist')).as('GET', '/api/v1/companies?includeDeleted=true')).statusCode,
    200,
    'records:read-deleted opens includeDeleted',
  );
});

t.test('roles: create, get, list, update under If-Match, delete; refusals', async (t) => {
  const made = await adminA('POST', '/api/v1/roles', { name: 'sales', description: 'Sales team', permissions: ['deals:update', 'deals:read', 'deals:read'] });
  t.equal(made.statusCode, 201, made.body);
  const sales = made.json();
  t.match(sales, { name: 'sales', description: 'Sales team', permissions: ['deals:read', 'deals:update'], builtIn: false, version: 1 });
  t.same((await adminA('GET', `/api/v1/roles/${sales.id}`)).json(), sales);
  t.ok((await adminA('GET', '/api/v1/roles?pageSize=100')).json().data.some((r: { id: number }) => r.id === sales.id));

  const bad = isProblem(t, await adminA('POST', '/api/v1/roles', { name: 'bad', permissions: ['deals:read', 'deals:fly', 'bogus'] }), 400, 'VALIDATION_FAILED');
  t.match(bad.detail, /deals:fly, bogus/, 'the unknown permissions are listed');
  isProblem(t, await adminA('POST', '/api/v1/roles', { name: 'Sales', permissions: [] }), 409, 'ROLE_EXISTS');
  isProblem(t, await adminA('POST', '/api/v1/roles', { name: 'no spaces', permissions: [] }), 400, 'VALIDATION_FAILED');

  isProblem(t, await adminA('PATCH', `/api/v1/roles/${sales.id}`, { permissions: ['deals:read'] }), 428, 'VERSION_REQUIRED');
  isProblem(t, await adminA('PATCH', `/api/v1/roles/${sales.id}`, { permissions: ['nope:nope'] }, { 'if-match': '"1"' }), 400, 'VALIDATION_FAILED');
  const updated = await adminA('PATCH', `/api/v1/roles/${sales.id}`, { permissions: ['deals:read', 'deals:create'] }, { 'if-match': '"1"' });
  t.equal(updated.statusCode, 200, updated.body);
  t.match(updated.json(), { version: 2, permissions: ['deals:read', 'deals:create'] });
  isProblem(t, await adminA('PATCH', `/api/v1/roles/${sales.id}`, { description: 'x' }, { 'if-match': '"1"' }), 409, 'VERSION_CONFLICT');

  const holder = await userWith('roles-a', 'sales');
  isProblem(t, await adminA('DELETE', `/api/v1/roles/${sales.id}`), 409, 'ROLE_IN_USE');
  t.equal((await holder.as('GET', '/api/v1/deals')).statusCode, 200, 'the holder keeps its rights');
  t.equal((await adminA('PATCH', `/api/v1/users/${holder.id}`, { role: 'staff' })).statusCode, 200);
  isProblem(t, await holder.as('GET', '/api/v1/deals'), 401, 'TOKEN_REVOKED');
  t.equal((await adminA('DELETE', `/api/v1/roles/${sales.id}`)).statusCode, 204);
  isProblem(t, await adminA('GET', `/api/v1/roles/${sales.id}`), 404, 'ROLE_NOT_FOUND');
  isProblem(t, await adminA('POST', '/api/v1/users', { email: 'late@roles-a.test', role: 'sales', password: PASSWORD }), 400, 'VALIDATION_FAILED');
});

t.test("a role's new permissions reach a second API process within one poll interval", async (t) => {
  const app2 = await buildApp({ ctx });
  await app2.ready();
  t.teardown(() => app2.close());
  const r = await role('switching', ['contacts:read', 'companies:read']);
  const user = await userWith('roles-a', 'switching');
  const on2 = call('roles-a', (await login(app2, 'roles-a', user.email)).accessToken, app2);
  t.equal((await on2('GET', '/api/v1/contacts')).statusCode, 200, 'the second process has read the role');
  t.equal((await user.as('GET', '/api/v1/contacts')).statusCode, 200);

  const changedAt = Date.now();
  const res = await adminA('PATCH', `/api/v1/roles/${r.id}`, { permissions: ['companies:read'] }, { 'if-match': `"${r.version}"` });
  t.equal(res.statusCode, 200, res.body);
  isProblem(t, await user.as('GET', '/api/v1/contacts'), 403, 'FORBIDDEN');
  let status = 200;
  while (Date.now() - changedAt < POLL_MS * 5 && status === 200) {
    status = (await on2('GET', '/api/v1/contacts')).statusCode;
    if (status === 200) await new Promise((resolve) => setTimeout(resolve, 25));
  }
  const took = Date.now() - changedAt;
  t.equal(status, 403, `the second process refuses after ${took} ms`);
  t.ok(took <= POLL_MS + 250, `within one poll interval (${POLL_MS} ms) and a little`);
  t.equal((await on2('GET', '/api/v1/companies')).statusCode, 200, 'and keeps what the role still holds');
});

t.test('a role id of one tenant means nothing in another', async (t) => {
  const r = await role('tenant-a-only', ['contacts:read']);
  const inA = await userWith('roles-a', 'tenant-a-only');
  isProblem(t, await adminB('GET', `/api/v1/roles/${r.id}`), 404, 'ROLE_NOT_FOUND');
  isProblem(t, await adminB('PATCH', `/api/v1/roles/${r.id}`, { permissions: [] }, { 'if-match': '"1"' }), 404, 'ROLE_NOT_FOUND');
  isProblem(t, await adminB('DELETE', `/api/v1/roles/${r.id}`), 404, 'ROLE_NOT_FOUND');
  isProblem(t, await adminB('POST', '/api/v1/users', { email: 'x@roles-b.test', roleId: r.id, password: PASSWORD }), 400, 'VALIDATION_FAILED');
  isProblem(t, await adminB('POST', '/api/v1/users', { email: 'y@roles-b.test', role: 'tenant-a-only', password: PASSWORD }), 400, 'VALIDATION_FAILED');
  const tokenA = (await login(app, 'roles-a', inA.email)).accessToken;
  isProblem(t, await call('roles-b', tokenA)('GET', '/api/v1/contacts'), 401, 'TOKEN_TENANT_MISMATCH');
  t.notOk((await adminB('GET', '/api/v1/roles?pageSize=100')).json().data.some((x: { name: string }) => x.name === 'tenant-a-only'));

  // Tenant B gets a role with the same id as A's, holding other permissions: a fresh API
  // process that has read A's role must not answer B's users with it.
  let inB = await role('tenant-b-filler', ['companies:read'], adminB);
  while (inB.id < r.id) inB = await role(`tenant-b-filler-${inB.id}`, ['companies:read'], adminB);
  t.equal(inB.id, r.id, 'the same role id in both tenants');
  const fresh = await buildApp({ ctx });
  await fresh.ready();
  t.teardown(() => fresh.close());
  const userA = call('roles-a', (await login(fresh, 'roles-a', inA.email)).accessToken, fresh);
  const userB = await userWith('roles-b', inB.name, fresh);
  t.equal((await userA('GET', '/api/v1/contacts')).statusCode, 200, "A's role opens contacts in A");
  isProblem(t, await userB.as('GET', '/api/v1/contacts'), 403, 'FORBIDDEN');
  t.equal((await userB.as('GET', '/api/v1/companies')).statusCode, 200, "B's role of the same id opens what it holds in B");
});

t.test('the tenant keeps an active user holding users:manage and roles:manage', async (t) => {
  const adminId = (await adminB('GET', '/api/v1/auth/me')).json().id as number;
  isProblem(t, await adminB('PATCH', `/api/v1/users/${adminId}`, { role: 'manager' }), 409, 'LAST_ADMIN');
  isProblem(t, await adminB('DELETE', `/api/v1/users/${adminId}`), 409, 'LAST_ADMIN');
  const owner = await role('owner', ['users:manage', 'roles:manage', 'users:read'], adminB);
  const partial = await role('half', ['users:manage', 'users:read'], adminB);
  const halfUser = await userWith('roles-b', 'half');
  isProblem(t, await adminB('PATCH', `/api/v1/users/${adminId}`, { roleId: partial.id }), 409, 'LAST_ADMIN');
  const ownerUser = await userWith('roles-b', 'owner');
  const demoted = await adminB('PATCH', `/api/v1/users/${adminId}`, { role: 'staff' });
  t.equal(demoted.statusCode, 200, `with an active owner the admin may be demoted: ${demoted.body}`);
  isProblem(
    t,
    await ownerUser.as('PATCH', `/api/v1/roles/${owner.id}`, { permissions: ['users:manage', 'users:read'] }, { 'if-match': '"1"' }),
    409,
    'LAST_ADMIN',
  ); // nor may the owner role lose roles:manage
  isProblem(t, await ownerUser.as('DELETE', `/api/v1/users/${ownerUser.id}`), 409, 'LAST_ADMIN');
  isProblem(t, await ownerUser.as('PATCH', `/api/v1/users/${ownerUser.id}`, { role: 'half' }), 409, 'LAST_ADMIN');
  t.equal((await ownerUser.as('PATCH', `/api/v1/users/${halfUser.id}`, { role: 'owner' })).statusCode, 200, 'a second owner');
  const dropped = await ownerUser.as('PATCH', `/api/v1/users/${ownerUser.id}`, { role: 'staff' });
  t.equal(dropped.statusCode, 200, `then the first may go: ${dropped.body}`);
});

t.test('silo users add gives a user a custom role by name, and refuses an unknown one', async (t) => {
  await role('cli-made', ['contacts:read']);
  const ok = await runCliJson<{ id: number; role: string }>(
    ['users', 'add', 'roles-a', 'cli@roles-a.test', '--role', 'cli-made', '--password-stdin'],
    env,
    PASSWORD,
  );
  t.equal(ok.result.code, 0, ok.result.stderr);
  t.match((await adminA('GET', `/api/v1/users/${ok.json.id}`)).json(), { role: 'cli-made' });
  const bad = await runCliJson<{ error: { code: string } }>(
    ['users', 'add', 'roles-a', 'cli2@roles-a.test', '--role', 'no-such-role', '--password-stdin'],
    env,
    PASSWORD,
  );
  t.equal(bad.result.code, 2);
  t.equal(bad.json.error.code, 'VALIDATION_FAILED');
});
