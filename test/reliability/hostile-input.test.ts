/**
 * Hostile input never breaks Silo. A corpus of hostile strings (test/fixtures/hostile.ts)
 * goes through every string property of every JSON request body (enumerated from the
 * OpenAPI document at /docs/json, the rest of the body kept valid), every query
 * parameter, every path parameter (percent-encoded, and raw when printable), the
 * X-Tenant and Host headers (through inject and as raw bytes over a socket), a few more
 * headers (Idempotency-Key, If-Match), and a representative set of `silo` CLI arguments.
 *
 * What must hold:
 * - no 5xx anywhere, and every error answer of the API is problem+json (all violations
 *   are collected and reported in one assertion per part);
 * - the process never crashes: the server still answers at the end, and the request
 *   history wrote every row (no failed flush, nothing dropped);
 * - a value accepted with a 2xx comes back byte-identical from a GET, except where the
 *   product normalizes it, and those rules are listed in NORMALIZE below; an accepted
 *   password signs in; a CLI argument is stored as the process received it (argv is
 *   UTF-8, so a lone surrogate arrives as U+FFFD), trimmed where the product trims;
 * - a CLI run never crashes, prints no stack trace and fails only with a known code
 *   (the CLI runs in the background during the API sweeps, on a tenant of its own);
 * - no partially created tenant: `silo tenants repair --all --json` has nothing to do and
 *   finds no orphans, every tenant in the catalog is active, every operation succeeded.
 */
import { connect } from 'node:net';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import pLimit from 'p-limit';
import t from 'tap';
import { formatCents, toCents } from '../../src/crm/deals.js';
import { login, makeTenant, PASSWORD, platformLogin, setupApp } from '../fixtures/app.js';
import { runCli, type CliResult } from '../fixtures/env.js';
import { HOSTILE, percentEncode, show, utf8RoundTrip, type Hostile } from '../fixtures/hostile.js';
import { setupS3 } from '../fixtures/s3.js';

const started = Date.now();
const SLUG = 'hostile';
const s3 = await setupS3(t);
const { app, ctx, env } = await setupApp(t, { ...s3.env, SILO_POOL_MAX_PER_TENANT: '4', SILO_SIGNUP_ENABLED: '1', SILO_SIGNUP_RATE_LIMIT: '100000' });
await makeTenant(ctx, SLUG);
const tenantToken = (await login(app, SLUG)).accessToken;
const { refreshToken } = await login(app, SLUG);
const operatorToken = await platformLogin(app, ctx, 'operator');
await app.listen({ port: 0, host: '127.0.0.1' });
const port = (app.server.address() as { port: number }).port;

/** Authorization (and X-Tenant) for a URL: the tenant admin on /api/v1, an operator on /platform/v1. */
function auth(url: string): Record<string, string> {
  if (url.startsWith('/api/v1/')) return { 'x-tenant': SLUG, authorization: `Bearer ${tenantToken}` };
  if (url.startsWith('/platform/v1/')) return { authorization: `Bearer ${operatorToken}` };
  return {};
}

async function must<T = any>(method: 'GET' | 'POST', url: string, payload?: object): Promise<T> {
  const res = await app.inject({ method, url, headers: auth(url), ...(payload ? { payload } : {}) });
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
  return res.json<T>();
}

// Records the body sweep updates; each keeps its current version here.
const target = await must('POST', '/api/v1/users', { email: 'target@hostile.test', fullName: 'Target', role: 'staff', password: PASSWORD });
const company = await must('POST', '/api/v1/companies', { name: 'Fixture Co' });
const contact = await must('POST', '/api/v1/contacts', { fullName: 'Fixture Person', companyId: company.id });
const stage = await must('POST', '/api/v1/pipeline-stages', { name: 'Fixture stage', probability: 40 });
const customRole = await must('POST', '/api/v1/roles', { name: 'fixture-role', permissions: ['contacts:read'] });
const deal = await must('POST', '/api/v1/deals', { title: 'Fixture deal', amount: '10.00', currency: 'EUR', stageId: stage.id });
// Inactive: nothing is sent to it while the sweeps create and change records.
const webhook = await must('POST', '/api/v1/webhooks', { url: 'https://203.0.113.7/hook', events: ['company.created'], active: false });
const task = await must('POST', '/api/v1/tasks', { title: 'Fixture task', relatedType: 'company', relatedId: company.id });
const note = await must('POST', '/api/v1/notes', { relatedType: 'company', relatedId: company.id, text: 'Fixture note' });
const lead = await must('POST', '/api/v1/leads', { fullName: 'Fixture Lead', companyName: 'Fixture Lead Co' });

interface Violation {
  where: string;
  value: string;
  status?: number;
  problem: string;
}
const violations: Violation[] = [];
let requests = 0;
let rawRequests = 0;
let cliRuns = 0;

/** Records a 5xx, or an error answer that is not problem+json. */
function check(where: string, value: string, res: LightMyRequestResponse): void {
  if (res.statusCode >= 500) violations.push({ where, value, status: res.statusCode, problem: res.body.slice(0, 300) });
  else if (res.statusCode >= 400 && !String(res.headers['content-type']).startsWith('application/problem+json')) {
    violations.push({ where, value, status: res.statusCode, problem: `error answer is ${String(res.headers['content-type'])}, not problem+json` });
  } else if (res.statusCode >= 400 && res.json().requestId !== res.headers['x-request-id']) {
    violations.push({
      where,
      value,
      status: res.statusCode,
      problem: `problem requestId ${res.json().requestId} is not the X-Request-Id ${String(res.headers['x-request-id'])}`,
    });
  }
}

/** One request through inject; a throw of inject itself is a violation unless `refusable`. */
async function send(where: string, hv: Hostile, opts: InjectOptions, refusable = false): Promise<LightMyRequestResponse | undefined> {
  requests++;
  let res: LightMyRequestResponse;
  try {
    res = await app.inject(opts);
  } catch (err) {
    // light-my-request refuses header values Node's HTTP client would refuse; the raw-socket sweep sends those.
    if (!refusable) violations.push({ where, value: hv.name, problem: `inject threw: ${(err as Error).message}` });
    return undefined;
  }
  check(where, hv.name, res);
  return res;
}

/** Sends raw request bytes over a socket; returns the status of every answer read before the server closed. */
function rawRequest(head: Buffer): Promise<{ statuses: number[]; timedOut: boolean }> {
  rawRequests++;
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, 5000);
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => undefined); // a reset after the answer is fine; the statuses say what happened
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ statuses: [...text.matchAll(/^HTTP\/1\.[01] (\d{3})/gm)].map((m) => Number(m[1])), timedOut });
    });
    // Not end(): a half-closed socket makes Node abort a request still being answered.
    // `Connection: close` in the request makes the server close after its answer.
    socket.write(head);
  });
}

// --- OpenAPI ------------------------------------------------------------------------

type Schema = { $ref?: string; type?: string | string[]; properties?: Record<string, Schema>; anyOf?: Schema[]; oneOf?: Schema[]; allOf?: Schema[] };
interface Param {
  name: string;
  in: string;
}
interface Operation {
  operationId?: string;
  parameters?: Param[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
}
const doc = (await app.inject('/docs/json')).json<{ paths: Record<string, Record<string, Operation>>; components?: { schemas?: Record<string, Schema> } }>();
const HTTP_METHODS = new Set(['get', 'post', 'put', 'patch', 'delete']);
const operations = Object.entries(doc.paths).flatMap(([path, item]) =>
  Object.entries(item)
    .filter(([m]) => HTTP_METHODS.has(m))
    .map(([m, op]) => ({ path, method: m.toUpperCase() as 'GET' | 'POST' | 'PATCH' | 'DELETE', op, id: op.operationId ?? `${m} ${path}` })),
);

function deref(s: Schema | undefined): Schema | undefined {
  let x = s;
  for (let i = 0; x?.$ref && i < 10; i++) x = doc.components?.schemas?.[x.$ref.split('/').pop()!];
  return x;
}
/** The schema and every alternative or part of it (anyOf, oneOf, allOf), dereferenced. */
function variants(s: Schema | undefined): Schema[] {
  const x = deref(s);
  return x ? [x, ...[...(x.anyOf ?? []), ...(x.oneOf ?? []), ...(x.allOf ?? [])].flatMap(variants)] : [];
}
const isString = (s: Schema) => variants(s).some((v) => v.type === 'string' || (Array.isArray(v.type) && v.type.includes('string')));
const stringProps = (s: Schema | undefined) => [
  ...new Set(
    variants(s).flatMap((v) =>
      Object.entries(v.properties ?? {})
        .filter(([, p]) => isString(p))
        .map(([k]) => k),
    ),
  ),
];
const jsonBody = (op: Operation) => op.requestBody?.content?.['application/json']?.schema;

/** `/api/v1/companies/{id}` with values (percent-encoded unless `raw`). */
function fill(path: string, params: Record<string, string | number>, raw: ReadonlySet<string> = new Set()): string {
  return path.replace(/\{(\w+)\}/g, (_m, name: string) => (raw.has(name) ? String(params[name]) : percentEncode(String(params[name]))));
}

/** Valid path parameters of a route: the main tenant, and the fixture record of that resource. */
function validParams(path: string): Record<string, string | number> {
  const ids: Array<[string, number]> = [
    ['/api/v1/users/', target.id],
    ['/api/v1/companies/', company.id],
    ['/api/v1/contacts/', contact.id],
    ['/api/v1/deals/', deal.id],
    ['/api/v1/pipeline-stages/', stage.id],
    ['/api/v1/webhooks/', webhook.id],
    ['/api/v1/tasks/', task.id],
    ['/api/v1/notes/', note.id],
    ['/api/v1/leads/', lead.id],
  ];
  const id = ids.find(([prefix]) => path.startsWith(prefix))?.[1] ?? 1;
  const out: Record<string, string | number> = {};
  for (const [, name] of path.matchAll(/\{(\w+)\}/g)) out[name!] = name === 'slug' ? SLUG : id;
  return out;
}

// --- Bodies -------------------------------------------------------------------------

let seq = 0;
const uniq = (p: string) => `${p}-${++seq}`;
const versions = {
  company: company.version as number,
  contact: contact.version as number,
  deal: deal.version as number,
  stage: stage.version as number,
  webhook: webhook.version as number,
  role: customRole.version as number,
  task: task.version as number,
  note: note.version as number,
  lead: lead.version as number,
};

/** A valid body (and path parameters) per operation with a JSON body. */
const BASES: Record<string, () => { body: Record<string, unknown>; params?: Record<string, string | number> }> = {
  login: () => ({ body: { email: `admin@${SLUG}.test`, password: PASSWORD } }),
  refreshToken: () => ({ body: { refreshToken } }),
  logout: () => ({ body: { refreshToken } }),
  createUser: () => ({ body: { email: `${uniq('user')}@hostile.test`, fullName: 'Hostile User', role: 'staff', password: PASSWORD } }),
  updateUser: () => ({ params: { id: target.id }, body: {} }),
  createCompany: () => ({ body: { name: uniq('Company'), industry: 'Software', country: 'DE', website: 'https://example.com/', phone: '+49 30 1234567' } }),
  updateCompany: () => ({ params: { id: company.id }, body: { version: versions.company } }),
  createPipelineStage: () => ({ body: { name: uniq('Stage'), probability: 50 } }),
  updatePipelineStage: () => ({ params: { id: stage.id }, body: { version: versions.stage } }),
  createRole: () => ({ body: { name: uniq('role'), description: 'Hostile role', permissions: ['contacts:read'] } }),
  updateRole: () => ({ params: { id: customRole.id }, body: { version: versions.role } }),
  createDeal: () => ({ body: { title: uniq('Deal'), amount: '1200.50', currency: 'EUR', stageId: stage.id, expectedCloseDate: '2030-06-30', status: 'open' } }),
  updateDeal: () => ({ params: { id: deal.id }, body: { version: versions.deal } }),
  moveDeal: () => ({ params: { id: deal.id }, body: { stageId: stage.id, version: versions.deal } }),
  winDeal: () => ({ params: { id: deal.id }, body: { version: versions.deal } }),
  loseDeal: () => ({ params: { id: deal.id }, body: { version: versions.deal } }),
  createContact: () => ({ body: { fullName: 'Hostile Person', email: `${uniq('contact')}@hostile.test`, phone: '+1 555 0100 123', jobTitle: 'Buyer' } }),
  updateContact: () => ({ params: { id: contact.id }, body: { version: versions.contact } }),
  createWebhook: () => ({ body: { url: 'https://203.0.113.8/hook', events: ['deal.won'], active: false } }),
  updateWebhook: () => ({ params: { id: webhook.id }, body: { version: versions.webhook } }),
  createTask: () => ({
    body: { title: uniq('Task'), description: 'Details', dueAt: '2030-06-30T12:00:00Z', relatedType: 'company', relatedId: company.id, assigneeId: target.id },
  }),
  updateTask: () => ({ params: { id: task.id }, body: { version: versions.task } }),
  createNote: () => ({ body: { relatedType: 'contact', relatedId: contact.id, text: 'A note' } }),
  updateNote: () => ({ params: { id: note.id }, body: { text: 'Changed note', version: versions.note } }),
  createLead: () => ({
    body: { fullName: 'Hostile Lead', email: `${uniq('lead')}@hostile.test`, companyName: 'Hostile Co', source: 'website', status: 'new', notes: 'n' },
  }),
  updateLead: () => ({ params: { id: lead.id }, body: { version: versions.lead } }),
  // No string property at the top level (createCompany, deal): only its path and query parameters are swept.
  convertLead: () => ({ params: { id: lead.id }, body: {} }),
  // Only `action` is a string: every hostile value of it is refused (400); the accepted paths are test/crm-bulk.test.ts.
  bulkCompanies: () => ({ body: { action: 'update', ids: [company.id], patch: { industry: 'Software' } } }),
  bulkContacts: () => ({ body: { action: 'update', ids: [contact.id], patch: { jobTitle: 'Buyer' } } }),
  bulkDeals: () => ({ body: { action: 'update', ids: [deal.id], patch: { amount: '10.00' } } }),
  bulkLeads: () => ({ body: { action: 'update', ids: [lead.id], patch: { score: 1 } } }),
  platformLogin: () => ({ body: { email: 'operator@silo.test', password: PASSWORD } }),
  createTenant: () => {
    const slug = uniq('hx');
    return { body: { slug, name: 'Hostile Tenant', plan: 'standard', adminEmail: `admin@${slug}.test`, adminPassword: PASSWORD } };
  },
  updateTenant: () => ({ params: { slug: SLUG }, body: {} }),
  createInvitation: () => ({ body: { email: `${uniq('invitee')}@hostile.test`, role: 'staff' } }),
  // One-time tokens: a made-up one, so every value reaches validation and the token check (400 INVITATION_INVALID /
  // RESET_TOKEN_INVALID), never a 5xx; the accepted paths are test/invitations.test.ts and test/password-reset.test.ts.
  acceptInvitation: () => ({ body: { token: 'A'.repeat(43), password: PASSWORD, fullName: 'Hostile Invitee' } }),
  forgotPassword: () => ({ body: { email: `admin@${SLUG}.test` } }),
  resetPassword: () => ({ body: { token: 'A'.repeat(43), password: PASSWORD } }),
  signup: () => {
    const slug = uniq('hs');
    return { body: { slug, name: 'Hostile Signup', email: `owner@${slug}.test`, password: 'violet-tractor-orbit-91' } };
  },
  restoreTenant: () => ({ params: { slug: SLUG }, body: { latest: true, confirm: SLUG } }),
  createPlan: () => ({ body: { name: uniq('plan') } }),
  updatePlan: () => ({ params: { name: 'standard' }, body: { maxContacts: null } }),
  setTenantPlan: () => ({ params: { slug: SLUG }, body: { plan: 'standard' } }),
};

/**
 * The product's normalizations of accepted values, by field (from the zod schemas in
 * src/crm, src/lib/validation.ts and src/provisioning): names and titles are trimmed
 * (`String.prototype.trim`), emails trimmed and lower-cased, country codes upper-cased,
 * phone numbers reduced to their digits, amounts written with two decimals (keyed by field,
 * or by `<operation>.<field>` where one operation differs). Every other
 * accepted string must come back byte-identical.
 */
const trim = (v: string) => v.trim();
const NORMALIZE: Record<string, (v: string) => string> = {
  name: trim,
  industry: trim,
  fullName: trim,
  companyName: trim,
  jobTitle: trim,
  title: trim,
  email: (v) => v.trim().toLowerCase(),
  adminEmail: (v) => v.trim().toLowerCase(),
  country: (v) => v.toUpperCase(),
  phone: (v) => v.replace(/\D/g, ''),
  amount: (v) => formatCents(toCents(v)),
  // Role names (a user's role names one, the sweep's roles included) and roles' descriptions are trimmed.
  role: trim,
  'createRole.description': trim,
  'updateRole.description': trim,
};

/** Where an accepted create or update can be read back (GET). */
const READ_BACK: Record<string, (r: any, params: Record<string, string | number>) => string> = {
  createUser: (r) => `/api/v1/users/${r.id}`,
  updateUser: (_r, p) => `/api/v1/users/${p.id}`,
  createCompany: (r) => `/api/v1/companies/${r.id}`,
  updateCompany: (_r, p) => `/api/v1/companies/${p.id}`,
  createContact: (r) => `/api/v1/contacts/${r.id}`,
  updateContact: (_r, p) => `/api/v1/contacts/${p.id}`,
  createLead: (r) => `/api/v1/leads/${r.id}`,
  updateLead: (_r, p) => `/api/v1/leads/${p.id}`,
  createDeal: (r) => `/api/v1/deals/${r.id}`,
  updateDeal: (_r, p) => `/api/v1/deals/${p.id}`,
  createPipelineStage: (r) => `/api/v1/pipeline-stages/${r.id}`,
  updatePipelineStage: (_r, p) => `/api/v1/pipeline-stages/${p.id}`,
  createWebhook: (r) => `/api/v1/webhooks/${r.id}`,
  updateWebhook: (_r, p) => `/api/v1/webhooks/${p.id}`,
  createRole: (r) => `/api/v1/roles/${r.id}`,
  updateRole: (_r, p) => `/api/v1/roles/${p.id}`,
  createTask: (r) => `/api/v1/tasks/${r.id}`,
  updateTask: (_r, p) => `/api/v1/tasks/${p.id}`,
  createNote: (r) => `/api/v1/notes/${r.id}`,
  updateNote: (_r, p) => `/api/v1/notes/${p.id}`,
  createTenant: (r) => `/platform/v1/tenants/${r.tenant.slug}`,
  updateTenant: (_r, p) => `/platform/v1/tenants/${p.slug}`,
  createPlan: (r) => `/platform/v1/plans/${r.name}`,
  setTenantPlan: (_r, p) => `/platform/v1/tenants/${p.slug}`,
};
/** Accepted operations that store nothing to read back. */
// A signup's stored fields are read back by test/signup.test.ts; here its password is checked to sign in.
// Invitations are read back by test/invitations.test.ts; forgot-password answers 202 whatever it is given.
const STORES_NOTHING = new Set([
  'createInvitation',
  'forgotPassword',
  'acceptInvitation',
  'resetPassword',
  'signup',
  'login',
  'refreshToken',
  'logout',
  'platformLogin',
  'restoreTenant',
  'moveDeal',
  'winDeal',
  'loseDeal',
]);
/** Write-only password fields: an accepted one must sign in (tenant slug and email to use). */
const PASSWORDS: Record<string, (body: Record<string, any>) => { slug: string; email: string }> = {
  'createUser.password': (b) => ({ slug: SLUG, email: b.email }),
  'updateUser.password': () => ({ slug: SLUG, email: 'target@hostile.test' }),
  'createTenant.adminPassword': (b) => ({ slug: b.slug, email: b.adminEmail }),
  'signup.password': (b) => ({ slug: b.slug, email: b.email }),
};
const VERSIONED: Record<string, keyof typeof versions> = {
  updateCompany: 'company',
  updateRole: 'role',
  updateContact: 'contact',
  updateDeal: 'deal',
  updatePipelineStage: 'stage',
  updateWebhook: 'webhook',
  updateTask: 'task',
  updateNote: 'note',
  updateLead: 'lead',
};
/** Operations that change one fixture record: their requests go one at a time. */
/** Sequential operations that change the same record (PATCH of the tenant and its plan): they run in one lane. */
const SAME_RECORD: Record<string, string> = { updateTenant: 'tenant', setTenantPlan: 'tenant' };
const SEQUENTIAL = new Set([...Object.keys(VERSIONED), 'updateUser', 'updateTenant', 'setTenantPlan', 'moveDeal', 'winDeal', 'loseDeal']);

const mismatches: Array<Record<string, string>> = [];

/** After a 2xx: the answer and a GET return the value sent (or its normalization); a password signs in. */
async function verifyStored(
  opId: string,
  prop: string,
  hv: Hostile,
  body: Record<string, any>,
  params: Record<string, string | number>,
  res: LightMyRequestResponse,
): Promise<void> {
  const answer = res.statusCode === 204 ? undefined : res.json();
  if (VERSIONED[opId]) versions[VERSIONED[opId]] = answer.version;
  const where = `${opId} body.${prop}`;
  const pw = PASSWORDS[`${opId}.${prop}`];
  if (pw) {
    const { slug, email } = pw(body);
    requests++;
    const r = await app.inject({ method: 'POST', url: '/api/v1/auth/login', headers: { 'x-tenant': slug }, payload: { email, password: hv.value } });
    if (r.statusCode !== 200)
      mismatches.push({ where, value: hv.name, problem: `accepted password does not sign in: ${r.statusCode} ${r.body.slice(0, 200)}` });
    return;
  }
  if (STORES_NOTHING.has(opId)) return;
  const readUrl = READ_BACK[opId];
  if (!readUrl) {
    violations.push({
      where,
      value: hv.name,
      status: res.statusCode,
      problem: 'accepted, but the test does not know where to read it back: add it to READ_BACK or STORES_NOTHING',
    });
    return;
  }
  const expected = (NORMALIZE[`${opId}.${prop}`] ?? NORMALIZE[prop] ?? ((v: string) => v))(hv.value);
  const url = readUrl(answer, params);
  requests++;
  const stored = (await app.inject({ method: 'GET', url, headers: auth(url) })).json();
  const echoed = opId === 'createTenant' || opId === 'setTenantPlan' ? answer.tenant : answer;
  for (const [what, got] of [
    ['answer', echoed?.[prop]],
    ['GET', stored?.[prop]],
  ] as const) {
    if (got !== expected) mismatches.push({ where, value: hv.name, sent: show(hv.value), expected: show(expected), [what]: show(String(got)) });
  }
}

// --- CLI ----------------------------------------------------------------------------

/**
 * The CLI sweep runs in the background while the API is swept (its processes mostly wait
 * on MySQL); it works on its own tenant, so the API sweeps cannot touch its users.
 */
async function cliSweep() {
  const CLI_SLUG = 'hostile-cli';
  await makeTenant(ctx, CLI_SLUG);
  const cliToken = (await login(app, CLI_SLUG)).accessToken;
  const pick = (name: string) => {
    const hv = HOSTILE.find((x) => x.name === name);
    if (!hv) throw new Error(`no hostile value ${name}`);
    return hv;
  };
  /** argv carries UTF-8: a lone surrogate reaches the CLI as U+FFFD (the transport's doing, not Silo's); U+0000 cannot be passed at all, so no case uses it. */
  const received = (hv: Hostile) => utf8RoundTrip(hv.value);
  const problems: Violation[] = [];
  const mism: Array<Record<string, string>> = [];
  type Case = { where: string; hv: Hostile; args: string[]; after?: (out: any) => Promise<void> };
  const cases: Case[] = [];
  const nameCheck = (slug: string, hv: Hostile) => async (out: any) => {
    const stored = await ctx.catalog.tenants.findBySlug(slug);
    const expected = received(hv).trim();
    if (out.tenant?.name !== expected || stored?.name !== expected)
      mism.push({
        where: 'tenants create --name',
        value: hv.name,
        expected: show(expected),
        printed: show(String(out.tenant?.name)),
        stored: show(String(stored?.name)),
      });
  };
  const signsIn = (where: string, slug: string, email: string, hv: Hostile) => async () => {
    // A tenant the CLI (another process) created is served within one SILO_TENANT_CHANGE_POLL_MS: 404 until then.
    const until = Date.now() + 3 * ctx.config.tenantChangePollMs + 1_000;
    for (;;) {
      requests++;
      const r = await app.inject({ method: 'POST', url: '/api/v1/auth/login', headers: { 'x-tenant': slug }, payload: { email, password: received(hv) } });
      if (r.statusCode === 404 && Date.now() < until) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      if (r.statusCode !== 200) mism.push({ where, value: hv.name, problem: `accepted password does not sign in: ${r.statusCode}` });
      return;
    }
  };

  for (const n of ['sql-or', 'path-etc-passwd', 'uni-rtl-override', 'blank-empty']) {
    cases.push({ where: 'tenants create <slug>', hv: pick(n), args: ['tenants', 'create', pick(n).value, '--admin-password', PASSWORD] });
  }
  for (const n of ['sql-drop-double', 'fmt-template-literal', 'uni-nfd', 'uni-lone-high', 'ctl-ansi', 'long-10k']) {
    const slug = uniq('cli-name');
    cases.push({
      where: 'tenants create --name',
      hv: pick(n),
      args: ['tenants', 'create', slug, '--name', pick(n).value, '--admin-password', PASSWORD],
      after: nameCheck(slug, pick(n)),
    });
  }
  for (const n of ['num-hex']) {
    const slug = uniq('cli-plan');
    // A tenant's plan must be one of the catalog's (catalog 0014): the value is a plan name, so it is made a plan first.
    if (!(await ctx.catalog.plans.find(received(pick(n))))) await ctx.catalog.plans.insert({ name: received(pick(n)) });
    cases.push({
      where: 'tenants create --plan',
      hv: pick(n),
      args: ['tenants', 'create', slug, '--plan', pick(n).value, '--admin-password', PASSWORD],
      after: async (out) => {
        const stored = await ctx.catalog.tenants.findBySlug(slug);
        if (out.tenant?.plan !== received(pick(n)) || stored?.plan !== received(pick(n)))
          mism.push({ where: 'tenants create --plan', value: n, stored: show(String(stored?.plan)) });
      },
    });
  }
  for (const n of ['fmt-html'])
    cases.push({
      where: 'tenants create --admin-email',
      hv: pick(n),
      args: ['tenants', 'create', uniq('cli-email'), '--admin-email', pick(n).value, '--admin-password', PASSWORD],
    });
  for (const n of ['sql-drop-single', 'uni-combining']) {
    const slug = uniq('cli-pw');
    cases.push({
      where: 'tenants create --admin-password',
      hv: pick(n),
      args: ['tenants', 'create', slug, '--admin-email', `admin@${slug}.test`, '--admin-password', pick(n).value],
      after: signsIn('tenants create --admin-password', slug, `admin@${slug}.test`, pick(n)),
    });
  }
  cases.push({
    where: 'users add <slug>',
    hv: pick('sql-or'),
    args: ['users', 'add', pick('sql-or').value, 'x@hostile.test', '--role', 'staff', '--password', PASSWORD],
  });
  for (const n of ['sql-drop-single'])
    cases.push({ where: 'users add <email>', hv: pick(n), args: ['users', 'add', CLI_SLUG, pick(n).value, '--role', 'staff', '--password', PASSWORD] });
  cases.push({
    where: 'users add --role',
    hv: pick('fmt-printf'),
    args: ['users', 'add', CLI_SLUG, `${uniq('role')}@hostile.test`, '--role', pick('fmt-printf').value, '--password', PASSWORD],
  });
  for (const n of ['fmt-mustache', 'uni-rtl-override']) {
    cases.push({
      where: 'users add --name',
      hv: pick(n),
      args: ['users', 'add', CLI_SLUG, `${uniq('named')}@hostile.test`, '--role', 'staff', '--name', pick(n).value, '--password', PASSWORD],
      after: async (out) => {
        requests++;
        const user = (
          await app.inject({ method: 'GET', url: `/api/v1/users/${out.id}`, headers: { 'x-tenant': CLI_SLUG, authorization: `Bearer ${cliToken}` } })
        ).json();
        if (user.fullName !== received(pick(n)).trim())
          mism.push({ where: 'users add --name', value: n, expected: show(received(pick(n)).trim()), stored: show(String(user.fullName)) });
      },
    });
  }
  {
    const email = `${uniq('pw')}@hostile.test`;
    cases.push({
      where: 'users add --password',
      hv: pick('num-unsafe-int'),
      args: ['users', 'add', CLI_SLUG, email, '--role', 'staff', '--password', pick('num-unsafe-int').value],
      after: signsIn('users add --password', CLI_SLUG, email, pick('num-unsafe-int')),
    });
  }
  for (const n of ['path-etc-passwd', 'uni-fullwidth'])
    cases.push({ where: 'tenants domains add <domain>', hv: pick(n), args: ['tenants', 'domains', 'add', CLI_SLUG, pick(n).value] });
  cases.push({ where: 'tenants domains add <slug>', hv: pick('fmt-printf'), args: ['tenants', 'domains', 'add', pick('fmt-printf').value, 'crm.example.com'] });
  for (const n of ['sql-or', 'uni-lone-low'])
    cases.push({ where: 'history stats --tenant', hv: pick(n), args: ['history', 'stats', '--tenant', pick(n).value] });
  cases.push({ where: 'history stats --since', hv: pick('num-1e309'), args: ['history', 'stats', '--since', pick('num-1e309').value] });
  cases.push({ where: 'operations list --tenant', hv: pick('sql-drop-double'), args: ['operations', 'list', '--tenant', pick('sql-drop-double').value] });
  cases.push({ where: 'tenants show <slug>', hv: pick('path-dots'), args: ['tenants', 'show', pick('path-dots').value] });

  const limit = pLimit(2);
  await Promise.all(
    cases.map((c) =>
      limit(async () => {
        cliRuns++;
        const r: CliResult = await runCli([...c.args, '--json'], env);
        const problem = (p: string) =>
          problems.push({
            where: `silo ${c.where}`,
            value: c.hv.name,
            problem: `${p} (exit ${r.code}, signal ${r.signal}): ${r.stdout.slice(0, 200)} ${r.stderr.slice(0, 300)}`,
          });
        if (r.signal !== null || r.code === null || ![0, 1, 2].includes(r.code)) return problem('crashed');
        if (/\n\s+at .+:\d+:\d+/.test(r.stderr)) return problem('printed a stack trace');
        let out: any;
        try {
          out = JSON.parse(r.stdout);
        } catch {
          return problem('--json printed no JSON');
        }
        if (r.code !== 0 && (out.error?.code === undefined || out.error.code === 'INTERNAL')) return problem(`internal error ${JSON.stringify(out.error)}`);
        if (r.code === 0) await c.after?.(out);
      }),
    ),
  );
  return { runs: cases.length, problems, mism };
}
const cliDone = cliSweep().then(
  (r) => ({ ...r, error: undefined }),
  (error: unknown) => ({ runs: 0, problems: [], mism: [], error }),
);

t.test('every string property of every JSON body: no 5xx, accepted values come back as sent', async (t) => {
  // Creating a tenant provisions a database (the slow part of this sweep): those requests get lanes of their own.
  const limit = pLimit(4);
  const provisioning = pLimit(3);
  const withJson = operations.filter((o) => jsonBody(o.op));
  t.ok(withJson.length >= 15, `${withJson.length} operations with a JSON body in the OpenAPI document`);
  let swept = 0;
  const units: Array<{ provisions: boolean; run: () => Promise<void> }> = [];
  const lanes = new Map<string, Array<() => Promise<void>>>();
  for (const { path, method, op, id } of withJson) {
    const base = BASES[id];
    if (!base) {
      violations.push({ where: `${method} ${path}`, value: '-', problem: `no valid base body for operation ${id}: add one to BASES` });
      continue;
    }
    const one = async (prop: string, hv: Hostile) => {
      const { body, params = {} } = base();
      body[prop] = hv.value;
      const url = fill(path, params);
      const res = await send(`${method} ${path} body.${prop}`, hv, { method, url, headers: auth(url), payload: body });
      if (res && res.statusCode < 300) await verifyStored(id, prop, hv, body, params, res);
    };
    const props = stringProps(jsonBody(op));
    swept += props.length;
    // Updates of one record run in order (each sends the version it last saw); the rest run in parallel.
    if (SEQUENTIAL.has(id)) {
      const run = async () => {
        for (const prop of props) for (const hv of HOSTILE) await one(prop, hv);
      };
      // Operations that change one record between them share one lane (one after the other).
      const lane = SAME_RECORD[id];
      const shared = lane && lanes.get(lane);
      if (shared) shared.push(run);
      else {
        const runs = [run];
        if (lane) lanes.set(lane, runs);
        units.push({
          provisions: false,
          run: async () => {
            for (const r of runs) await r();
          },
        });
      }
    } else {
      for (const prop of props) for (const hv of HOSTILE) units.push({ provisions: id === 'createTenant' || id === 'signup', run: () => one(prop, hv) });
    }
  }
  await Promise.all(units.map((u) => (u.provisions ? provisioning : limit)(u.run)));
  t.ok(swept >= 40, `${swept} string properties swept`);
  t.same(violations, [], 'no 5xx and only problem+json errors');
  t.same(mismatches, [], 'accepted values come back byte-identical or as the documented normalization');
  violations.length = 0;
});

t.test('every query parameter: no 5xx', async (t) => {
  const limit = pLimit(8);
  const jobs: Array<Promise<unknown>> = [];
  let params = 0;
  for (const { path, method, op } of operations) {
    for (const p of (op.parameters ?? []).filter((x) => x.in === 'query')) {
      params++;
      for (const hv of HOSTILE) {
        jobs.push(
          limit(() => {
            const url = `${fill(path, validParams(path))}?${p.name}=${percentEncode(hv.value)}`;
            const headers = auth(url);
            // `tenant` names the tenant on /api/v1: without X-Tenant it is the only source.
            if (p.name === 'tenant') delete headers['x-tenant'];
            return send(`${method} ${path} ?${p.name}`, hv, { method, url, headers });
          }),
        );
      }
    }
  }
  await Promise.all(jobs);
  t.ok(params >= 50, `${params} query parameters swept`);
  t.same(violations, [], 'no 5xx and only problem+json errors');
  violations.length = 0;
});

t.test('every path parameter, percent-encoded and raw: no 5xx', async (t) => {
  const limit = pLimit(8);
  const jobs: Array<Promise<unknown>> = [];
  let params = 0;
  for (const { path, method, id } of operations) {
    for (const [, name] of path.matchAll(/\{(\w+)\}/g)) {
      params++;
      for (const hv of HOSTILE) {
        // Printable ASCII is also sent unencoded: `../`, `%2e%2e%2f` and friends reach the router as they are.
        for (const raw of [false, ...(/^[\x21-\x7e]+$/.test(hv.value) ? [true] : [])]) {
          jobs.push(
            limit(() => {
              const values = { ...validParams(path), [name!]: hv.value };
              let url = fill(path, values, raw ? new Set([name!]) : new Set());
              // Deleting needs ?confirm=<slug>: confirm the hostile slug, so the request gets past the check.
              if (id === 'deleteTenant') url += `?backup=false&confirm=${percentEncode(hv.value)}`;
              const body = BASES[id]?.().body;
              return send(`${method} ${path} {${name}}${raw ? ' raw' : ''}`, hv, { method, url, headers: auth(url), ...(body ? { payload: body } : {}) });
            }),
          );
        }
      }
    }
  }
  // Routes outside the OpenAPI document that take a path: Swagger UI's static files.
  for (const hv of HOSTILE.filter((h) => h.kind === 'path')) {
    for (const url of [`/docs/static/${hv.value}`, `/docs/static/${percentEncode(hv.value)}`]) {
      jobs.push(limit(() => send(`GET /docs/static/*`, hv, { method: 'GET', url })));
    }
  }
  await Promise.all(jobs);
  t.ok(params >= 30, `${params} path parameters swept`);
  t.same(violations, [], 'no 5xx and only problem+json errors');
  violations.length = 0;
});

t.test('X-Tenant, Host (subdomain), Idempotency-Key and If-Match headers, through inject and raw bytes: no 5xx', async (t) => {
  const rawProblems: Violation[] = [];
  for (const hv of HOSTILE) {
    const login = { email: `admin@${SLUG}.test`, password: 'wrong password 123' };
    for (const [name, value] of [
      ['x-tenant', hv.value],
      ['host', `${hv.value}.localhost`],
      ['host', hv.value],
    ] as const) {
      const where = `header ${name}: ${name === 'host' && value !== hv.value ? '<value>.localhost' : '<value>'}`;
      const headers = { authorization: `Bearer ${tenantToken}`, [name]: value };
      await send(`${where} GET /api/v1/companies`, hv, { method: 'GET', url: '/api/v1/companies', headers }, true);
      await send(`${where} POST /api/v1/auth/login`, hv, { method: 'POST', url: '/api/v1/auth/login', headers: { [name]: value }, payload: login }, true);
      // The same as bytes on the wire (UTF-8), which no client library would refuse to send.
      const lines =
        name === 'host'
          ? [`GET /api/v1/companies HTTP/1.1`, `Host: ${value}`, `Authorization: Bearer ${tenantToken}`]
          : [`GET /api/v1/companies HTTP/1.1`, `Host: 127.0.0.1:${port}`, `X-Tenant: ${value}`, `Authorization: Bearer ${tenantToken}`];
      const r = await rawRequest(Buffer.from(`${[...lines, 'Connection: close'].join('\r\n')}\r\n\r\n`, 'utf8'));
      if (!r.statuses.length || r.statuses.some((s) => s >= 500))
        rawProblems.push({
          where: `raw ${where}`,
          value: hv.name,
          problem: `statuses ${JSON.stringify(r.statuses)}${r.timedOut ? ' (no answer in 5 s)' : ''}`,
        });
    }
    const companyBody = { name: uniq('Idem Co') };
    await send(
      'header Idempotency-Key POST /api/v1/companies',
      hv,
      { method: 'POST', url: '/api/v1/companies', headers: { ...auth('/api/v1/'), 'idempotency-key': hv.value }, payload: companyBody },
      true,
    );
    await send(
      'header If-Match PATCH /api/v1/companies/{id}',
      hv,
      { method: 'PATCH', url: `/api/v1/companies/${company.id}`, headers: { ...auth('/api/v1/'), 'if-match': hv.value }, payload: { industry: 'Retail' } },
      true,
    );
  }
  t.same(violations, [], 'no 5xx and only problem+json errors through inject');
  t.same(rawProblems, [], 'every raw request is answered, never with a 5xx');
  violations.length = 0;
});

t.test('the server is still up and the request history kept every row', async (t) => {
  t.equal((await app.inject('/health')).statusCode, 200, '/health through inject');
  const r = await rawRequest(Buffer.from(`GET /health HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`));
  t.same(r.statuses, [200], '/health over a socket');
  await app.historyRecorder!.flush(true);
  t.equal(app.historyRecorder!.stats.failedFlushes, 0, 'no history flush failed');
  t.equal(app.historyRecorder!.stats.dropped, 0, 'no history row dropped');
  t.ok(app.historyRecorder!.stats.written > 1000, `${app.historyRecorder!.stats.written} history rows written`);
});

t.test('CLI arguments: no crash, no internal error; accepted values are stored as the CLI received them', async (t) => {
  const r = await cliDone;
  t.error(r.error, 'the CLI sweep ran');
  t.ok(r.runs >= 24 && r.runs <= 36, `${r.runs} CLI runs`);
  t.same(r.problems, [], 'no CLI run crashed or failed internally');
  t.same(r.mism, [], 'accepted CLI values are stored as received (trimmed where the product trims)');
});

t.test('no partially created tenant: repair --all has nothing to do, no orphans, every tenant active', async (t) => {
  cliRuns++;
  const repair = await runCli(['tenants', 'repair', '--all', '--json'], env);
  t.equal(repair.code, 0, `repair --all exits 0: ${repair.stderr.slice(0, 300)}`);
  const report = JSON.parse(repair.stdout) as {
    tenants: Array<{ slug: string; outcome: string; status: string; actions: string[] }>;
    orphans: { databases: string[]; users: unknown[] };
  };
  t.same(report.orphans.databases, [], 'no orphan database');
  t.same(report.orphans.users, [], 'no orphan MySQL user');
  t.same(
    report.tenants.filter((x) => x.outcome !== 'ok' || x.status !== 'active'),
    [],
    `all ${report.tenants.length} tenants are whole and active: repair had nothing to do`,
  );
  const statuses: Array<{ status: string }> = await ctx.catalog.knex('tenants').distinct('status');
  t.same(
    statuses.map((s) => s.status),
    ['active'],
    'every tenant in the catalog is active (or was never created)',
  );
  const ops = await ctx.catalog.knex('operations').whereNot({ status: 'succeeded' }).select('id', 'kind', 'status', 'error');
  t.same(ops, [], 'every lifecycle operation succeeded');
  t.comment(
    `hostile input: corpus ${HOSTILE.length} values; ${requests} API requests (+${rawRequests} raw-socket requests); ${cliRuns} CLI runs; ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
});
