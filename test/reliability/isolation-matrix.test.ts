/**
 * Isolation matrix over every tenant route of the app. The routes (methods included) are
 * read from the app itself (router + OpenAPI document), so a new route is covered
 * without touching this file. Five tenants with data; ids of each tenant live in their
 * own range, so an id of a row of one tenant names no row of another.
 *
 * For each route and each (access token of tenant X, tenant Y named by X-Tenant, ?tenant=,
 * its subdomain or its custom domain, row of tenant Z - in the path or referenced by the body) the request
 * succeeds only when X = Y = Z; otherwise it is refused with 401/403/404 (or 422
 * INVALID_REFERENCE when only the body refers to another tenant's row), shows no other
 * tenant's data, and changes nothing: afterwards every table of every tenant database
 * has the same rows (count and SHA-256 in primary-key order) and S3 the same objects.
 * Bodies are valid, so that only isolation refuses (the X = Y = Z requests prove it by
 * succeeding). Platform tokens and missing tokens never open a tenant route. Each
 * tenant's MySQL account is denied on the other tenants' databases and on the catalog.
 *
 * Routes without a token (sign-in, refresh, logout, forgot/reset password, accepting an
 * invitation) cross tenants with what their body carries: a credential, an email or a
 * one-time token of tenant Z sent to tenant Y. The one-time tokens are real (made with the
 * services on Z's own connection before the checks), so Y's refusal is of a token that
 * works in Z: the X = Y = Z requests use those very tokens and succeed. Mail goes to a
 * local SMTP server, so "changes nothing" includes "sends no mail".
 *
 * The platform API (/platform/v1) is not tenant-routed: no tenant is identified by host,
 * X-Tenant or ?tenant=, and an operator acts on every tenant by design, so it is not in
 * the matrix (test/api-platform, test/signup, test/tenant-rename cover it). What the
 * matrix checks there is the other direction: a tenant's access token opens no platform
 * route, whichever tenant the route names (so it cannot rename, suspend, re-plan or read
 * another tenant). Platform routes without a platform token are listed in PLATFORM_PUBLIC
 * with why they name no existing tenant.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import type { Knex } from 'knex';
import t from 'tap';
import type { Tenant } from '../../src/catalog/index.js';
import { parseMysqlUrl } from '../../src/config.js';
import { createInvitationsService } from '../../src/crm/invitations.js';
import { createPasswordResetsService } from '../../src/crm/password-resets.js';
import { createMysqlKnex } from '../../src/lib/knex.js';
import { decryptSecret } from '../../src/lib/secrets.js';
import { addDomain } from '../../src/provisioning/tenants-service.js';
import { appRoutes, openApiDocument, type AppRoute, type JsonSchema } from '../fixtures/app-routes.js';
import { login, makeTenant, PASSWORD, platformLogin, setupApp } from '../fixtures/app.js';
import { databaseDigest, type TableDigest } from '../fixtures/db-digest.js';
import { MYSQL_URL, rootKnex } from '../fixtures/env.js';
import { setupS3 } from '../fixtures/s3.js';
import { startSmtpServer } from '../fixtures/smtp.js';

const started = Date.now();
const API = '/api/v1';
const PLATFORM = '/platform/v1';
/** The password reset-password sets (strong enough for the reset's check). */
const NEW_PASSWORD = 'a brand new passphrase 42';
const SLUGS = ['mx-alpha', 'mx-bravo', 'mx-charlie', 'mx-delta', 'mx-echo'] as const;
const SOURCES = ['header', 'query', 'subdomain', 'domain'] as const;
type Source = (typeof SOURCES)[number];
/** Ids of tenant i start at (i + 1) x ID_STRIDE in every table. */
const ID_STRIDE = 100_000;

type Kind = 'company' | 'contact' | 'deal' | 'user' | 'stage' | 'attachment' | 'invitation' | 'webhook' | 'role' | 'task' | 'note' | 'lead';
/** The kind of row an `{id}` names, by the first path segment after /api/v1. */
const KIND_OF_SEGMENT: Record<string, Kind> = {
  companies: 'company',
  contacts: 'contact',
  deals: 'deal',
  leads: 'lead',
  users: 'user',
  'pipeline-stages': 'stage',
  attachments: 'attachment',
  invitations: 'invitation',
  webhooks: 'webhook',
  roles: 'role',
  tasks: 'task',
  notes: 'note',
};
const TABLE_OF: Record<Kind, string> = {
  company: 'companies',
  contact: 'contacts',
  deal: 'deals',
  lead: 'leads',
  user: 'users',
  stage: 'pipeline_stages',
  attachment: 'attachments',
  invitation: 'invitations',
  webhook: 'webhooks',
  role: 'roles',
  task: 'tasks',
  note: 'notes',
};
/** Body fields that reference a row, by name. */
const KIND_OF_FIELD: Record<string, Kind> = {
  companyId: 'company',
  contactId: 'contact',
  dealId: 'deal',
  stageId: 'stage',
  ownerId: 'user',
  userId: 'user',
  attachmentId: 'attachment',
  roleId: 'role',
  assigneeId: 'user',
};

const s3 = await setupS3(t);
// Invitation and reset mails reach a real SMTP server: the checks see every mail sent.
const smtp = await startSmtpServer(t);
const { app, ctx, config, names } = await setupApp(t, { ...s3.env, ...smtp.env });
const root = rootKnex();
t.teardown(() => root.destroy());

interface TenantData {
  slug: string;
  /** Its custom domain. */
  domain: string;
  tenant: Tenant;
  /** Access token of the tenant's admin. */
  token: string;
  /** A live row of each kind (rows that requests read or reference). */
  refs: Record<Kind, number>;
  /** The default stage "Prospecting" (deals are created there, then moved to `refs.stage`). */
  firstStage: number;
  /** The row each changing route acts on, by route key: one per route, in the state it needs. */
  targets: Map<string, number>;
  /** A delivery of each webhook (`{deliveryId}` of the redeliver route), by webhook id. */
  deliveries: Map<number, number>;
  /** The row each bulk route acts on (the body names it), by route key. */
  bulkTargets: Map<string, number>;
  /** Refresh tokens kept for the refresh and logout routes. */
  refreshTokens: { refresh: string; logout: string };
  /** A staff user whose password forgot-password and reset-password are about. */
  resetEmail: string;
  /**
   * One-time tokens, made with the services (as the mails would carry them): an open
   * invitation and a reset of `resetEmail`. Other tenants are sent them (and refuse them);
   * the tenant's own request then uses them up.
   */
  oneTime: { invitation: string; reset: string };
}

let counter = 0;
const next = () => ++counter;

/** A multipart/form-data body with one small text file in the part `file` (RFC 7578). */
function fileForm(fileName: string): { payload: Buffer; headers: Record<string, string> } {
  const boundary = `----silo-matrix-${randomBytes(8).toString('hex')}`;
  const payload = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${fileName}"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--${boundary}--\r\n`,
  );
  return { payload, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

/** A multipart/form-data body with `csv` as the file part `file` (the import routes). */
function csvForm(csv: string): { payload: Buffer; headers: Record<string, string> } {
  const boundary = `----silo-matrix-${randomBytes(8).toString('hex')}`;
  const payload = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="import.csv"\r\nContent-Type: text/csv\r\n\r\n${csv}\r\n--${boundary}--\r\n`,
  );
  return { payload, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

/** A request as the tenant's admin (by X-Tenant); throws unless 2xx. */
async function asAdmin(
  d: Pick<TenantData, 'slug' | 'token'>,
  method: InjectOptions['method'],
  url: string,
  payload?: InjectOptions['payload'],
  headers: Record<string, string> = {},
) {
  const res = await app.inject({ method, url, payload, headers: { 'x-tenant': d.slug, authorization: `Bearer ${d.token}`, ...headers } });
  if (res.statusCode >= 300) throw new Error(`${method} ${url} as admin of ${d.slug}: ${res.statusCode} ${res.body}`);
  return res.statusCode === 204 ? undefined : res.json();
}

/** Creates a live row of `kind` in the tenant (through the API); returns its id. */
async function createRow(d: TenantData, kind: Kind): Promise<number> {
  const n = next();
  const s = d.slug;
  switch (kind) {
    case 'company':
      return (await asAdmin(d, 'POST', `${API}/companies`, { name: `${s} company ${n}`, industry: 'Software', country: 'DE' })).id;
    case 'contact':
      return (await asAdmin(d, 'POST', `${API}/contacts`, { companyId: d.refs.company, fullName: `${s} contact ${n}`, email: `contact${n}@${s}.test` })).id;
    case 'deal':
      return (
        await asAdmin(d, 'POST', `${API}/deals`, {
          title: `${s} deal ${n}`,
          amount: '1200.00',
          currency: 'EUR',
          stageId: d.firstStage,
          companyId: d.refs.company,
          contactId: d.refs.contact,
          ownerId: d.refs.user,
        })
      ).id;
    case 'lead':
      return (
        await asAdmin(d, 'POST', `${API}/leads`, {
          fullName: `${s} lead ${n}`,
          email: `lead${n}@${s}.test`,
          companyName: `${s} lead company ${n}`,
          ownerId: d.refs.user,
        })
      ).id;
    case 'user':
      return (await asAdmin(d, 'POST', `${API}/users`, { email: `user${n}@${s}.test`, fullName: `${s} user ${n}`, role: 'manager', password: PASSWORD })).id;
    case 'stage':
      return (await asAdmin(d, 'POST', `${API}/pipeline-stages`, { name: `${s} stage ${n}`, probability: 40 })).id;
    case 'attachment': {
      const form = fileForm(`${s}-file-${n}.txt`);
      return (await asAdmin(d, 'POST', `${API}/companies/${d.refs.company}/attachments`, form.payload, form.headers)).id;
    }
    // An open invitation (the tenant's email is verified: operator-made tenants are).
    case 'invitation':
      return (await asAdmin(d, 'POST', `${API}/invitations`, { email: `invitee${n}@${s}.test`, role: 'staff' })).id;
    // An inactive webhook (nothing is sent during the checks) subscribed to a type nothing emits here,
    // with one past delivery (written as root: no event of that type is emitted) for {deliveryId}.
    case 'webhook': {
      const id = (await asAdmin(d, 'POST', `${API}/webhooks`, { url: `https://203.0.113.7/${s}/${n}`, events: ['note.created'], active: false })).id;
      const db = d.tenant.databaseName;
      const now = new Date();
      const [eventId] = await root(`${db}.webhook_events`).insert({ public_id: randomUUID(), type: 'note.created', data: '{}', occurred_at: now });
      const [deliveryId] = await root(`${db}.webhook_deliveries`).insert({
        webhook_id: id,
        event_id: eventId,
        attempt: 1,
        status: 'succeeded',
        next_attempt_at: now,
        attempted_at: now,
        status_code: 200,
        latency_ms: 5,
      });
      d.deliveries.set(id, Number(deliveryId));
      return id;
    }
    case 'role':
      return (await asAdmin(d, 'POST', `${API}/roles`, { name: `${s}-role-${n}`, description: `${s} role ${n}`, permissions: ['contacts:read'] })).id;
    case 'task':
      return (await asAdmin(d, 'POST', `${API}/tasks`, { title: `${s} task ${n}`, ...taskRefs(d), dueAt: '2030-01-01T09:00:00Z' })).id;
    case 'note':
      return (await asAdmin(d, 'POST', `${API}/notes`, { relatedType: 'contact', relatedId: d.refs.contact, text: `${s} note ${n}` })).id;
  }
}

/** Makes the tenant's one-time tokens with the services, on a lease of the tenant's own connections (as the routes do). */
async function makeOneTimeTokens(d: Pick<TenantData, 'slug' | 'tenant' | 'resetEmail'>): Promise<TenantData['oneTime']> {
  const lease = await app.tenantConnections.acquire(d.tenant);
  try {
    let invitation = '';
    await createInvitationsService(lease.knex).invite({ email: `invited@${d.slug}.test`, role: 'staff' }, (_inv, token) => {
      invitation = token;
      return Promise.resolve();
    });
    const reset = await createPasswordResetsService(lease.knex).request(d.resetEmail);
    if (!invitation || !reset) throw new Error(`${d.slug}: no one-time tokens made`);
    return { invitation, reset: reset.token };
  } finally {
    lease.release();
  }
}

/** Current version of a row of tenant `z` (read as root). */
async function versionOf(z: TenantData, kind: Kind, id: number | undefined): Promise<number> {
  const row = await root(`${z.tenant.databaseName}.${TABLE_OF[kind]}`).where({ id }).first('version');
  if (!row) throw new Error(`no ${kind} ${id} in ${z.slug}`);
  return Number(row.version);
}

// ---------------------------------------------------------------------------------------
// Valid bodies. Routes without a body need nothing here; a route with a JSON body that is
// not listed gets one generated from its OpenAPI schema (and the X = Y = Z requests fail
// with a clear message when that is not enough).

interface BodyArgs {
  /** The tenant whose rows the body refers to. */
  z: TenantData;
  /** The row in the path, if any. */
  id: number | undefined;
  /** A number unique in this run. */
  n: number;
}
interface BodySpec {
  body: (a: BodyArgs) => unknown;
  /** The body refers to rows (or credentials) of tenant Z. */
  refs?: boolean;
  /**
   * How the route answers, besides 401/403/404, when the token (if any) and tenant Y
   * match but the body carries what only means something in another tenant Z: the status
   * and, for an error, its problem code. Allowed only for that case (never for a foreign
   * token or a foreign row in the path), and the request must still change nothing and
   * send no mail (checked below). Each use says why this is a refusal.
   */
  foreign?: { status: number; code?: string };
}
/** A task's references: a company of Z (relatedId) and a user of Z (assigneeId). */
const taskRefs = (z: Pick<TenantData, 'refs'>) => ({ relatedType: 'company', relatedId: z.refs.company, assigneeId: z.refs.user });
const dealRefs = (z: TenantData) => ({ stageId: z.refs.stage, companyId: z.refs.company, contactId: z.refs.contact, ownerId: z.refs.user });
/** The bulk routes, the kind of their rows, and the action each one's body takes (one of each, and restore twice). */
const BULK_KINDS: Record<string, Kind> = { companies: 'company', contacts: 'contact', deals: 'deal', leads: 'lead' };
const BULK_ACTION: Record<string, 'delete' | 'restore' | 'update'> = { companies: 'delete', contacts: 'update', deals: 'restore', leads: 'update' };
const BULK_PATCH: Record<string, unknown> = { contacts: { jobTitle: 'Bulk buyer' }, leads: { score: 42, status: 'qualified' } };
/**
 * A bulk body naming tenant Z's row. Y finds no row of that id (ids of each tenant are in
 * their own range), so it answers 409 BULK_FAILED listing the id as not found and changes
 * nothing (the failure is the whole answer: nothing is read or written): that is the refusal.
 */
const bulkSpec = (resource: string): BodySpec => ({
  refs: true,
  foreign: { status: 409, code: 'BULK_FAILED' },
  body: ({ z }) => ({
    action: BULK_ACTION[resource],
    ids: [z.bulkTargets.get(`POST ${API}/${resource}/bulk`)],
    ...(BULK_PATCH[resource] ? { patch: BULK_PATCH[resource] } : {}),
  }),
});
const BODIES: Record<string, BodySpec> = {
  ...Object.fromEntries(Object.keys(BULK_KINDS).map((r) => [`POST ${API}/${r}/bulk`, bulkSpec(r)])),
  [`POST ${API}/leads`]: {
    refs: true,
    body: ({ z, n }) => ({
      fullName: `New lead ${n}`,
      email: `new-lead-${n}@example.test`,
      companyName: `New lead company ${n}`,
      source: 'event',
      score: 30,
      ownerId: z.refs.user,
    }),
  },
  [`PATCH ${API}/leads/{id}`]: {
    refs: true,
    body: async ({ z, id, n }) => ({ fullName: `Renamed lead ${n}`, score: 60, ownerId: z.refs.user, version: await versionOf(z, 'lead', id) }),
  },
  // Makes the contact, the company (of the lead's company name) and a deal in the stage of tenant Z.
  [`POST ${API}/leads/{id}/convert`]: {
    refs: true,
    body: ({ z, n }) => ({ createCompany: true, deal: { title: `Converted deal ${n}`, amount: '500.00', currency: 'EUR', stageId: z.refs.stage } }),
  },
  [`POST ${API}/auth/login`]: { refs: true, body: ({ z }) => ({ email: `admin@${z.slug}.test`, password: PASSWORD }) },
  [`POST ${API}/auth/refresh`]: { refs: true, body: ({ z }) => ({ refreshToken: z.refreshTokens.refresh }) },
  // Revoking an unknown token is not an error (RFC 7009 §2.2): logout answers 204 to a
  // refresh token of another tenant. It must still change nothing (checked below).
  [`POST ${API}/auth/logout`]: { refs: true, foreign: { status: 204 }, body: ({ z }) => ({ refreshToken: z.refreshTokens.logout }) },
  // forgot-password answers one 202 to every email, a user's or not, so that the answer tells
  // nothing (src/http/routes/password-reset.ts): Z's user's email sent to Y is answered as
  // any unknown address. It must still change nothing and send no mail (checked below);
  // the X = Y = Z request must mail the user (checked there).
  [`POST ${API}/auth/forgot-password`]: { refs: true, foreign: { status: 202 }, body: ({ z }) => ({ email: z.resetEmail }) },
  // Every token a tenant cannot use is the same 400 RESET_TOKEN_INVALID (unknown, used,
  // expired): a reset token of Z is unknown in Y's database. That is the refusal.
  [`POST ${API}/auth/reset-password`]: {
    refs: true,
    foreign: { status: 400, code: 'RESET_TOKEN_INVALID' },
    body: ({ z }) => ({ token: z.oneTime.reset, password: NEW_PASSWORD }),
  },
  [`POST ${API}/invitations`]: { body: ({ n }) => ({ email: `new-invitee-${n}@example.test`, role: 'staff' }) },
  // Likewise 400 INVITATION_INVALID for every token that cannot be accepted: Z's invitation is unknown in Y.
  [`POST ${API}/invitations/accept`]: {
    refs: true,
    foreign: { status: 400, code: 'INVITATION_INVALID' },
    body: ({ z, n }) => ({ token: z.oneTime.invitation, password: PASSWORD, fullName: `Invitee ${n}` }),
  },
  [`POST ${API}/users`]: { body: ({ n }) => ({ email: `new-user-${n}@example.test`, fullName: `New user ${n}`, role: 'staff', password: PASSWORD }) },
  [`PATCH ${API}/users/{id}`]: { body: async ({ z, id, n }) => ({ fullName: `Renamed user ${n}`, role: 'staff', version: await versionOf(z, 'user', id) }) },
  [`POST ${API}/companies`]: {
    body: ({ n }) => ({ name: `New company ${n}`, industry: 'Retail', country: 'FR', website: 'https://example.test/', phone: '+33 1 23 45 67 89' }),
  },
  [`PATCH ${API}/companies/{id}`]: {
    body: async ({ z, id, n }) => ({ name: `Renamed company ${n}`, industry: 'Energy', version: await versionOf(z, 'company', id) }),
  },
  [`POST ${API}/contacts`]: {
    refs: true,
    body: ({ z, n }) => ({ companyId: z.refs.company, fullName: `New contact ${n}`, email: `new-contact-${n}@example.test`, jobTitle: 'Buyer' }),
  },
  [`PATCH ${API}/contacts/{id}`]: {
    refs: true,
    body: async ({ z, id, n }) => ({ companyId: z.refs.company, fullName: `Renamed contact ${n}`, version: await versionOf(z, 'contact', id) }),
  },
  [`POST ${API}/roles`]: { body: ({ n }) => ({ name: `new-role-${n}`, description: `New role ${n}`, permissions: ['contacts:read', 'companies:read'] }) },
  [`PATCH ${API}/roles/{id}`]: {
    body: async ({ z, id, n }) => ({ description: `Renamed role ${n}`, permissions: ['deals:read'], version: await versionOf(z, 'role', id) }),
  },
  [`POST ${API}/pipeline-stages`]: { body: ({ n }) => ({ name: `New stage ${n}`, probability: 60 }) },
  [`PATCH ${API}/pipeline-stages/{id}`]: {
    body: async ({ z, id, n }) => ({ name: `Renamed stage ${n}`, probability: 65, version: await versionOf(z, 'stage', id) }),
  },
  [`POST ${API}/deals`]: {
    refs: true,
    body: ({ z, n }) => ({ ...dealRefs(z), title: `New deal ${n}`, amount: '2500.00', currency: 'EUR', expectedCloseDate: '2030-06-30' }),
  },
  [`PATCH ${API}/deals/{id}`]: {
    refs: true,
    body: async ({ z, id, n }) => ({ ...dealRefs(z), title: `Renamed deal ${n}`, amount: '3000.50', version: await versionOf(z, 'deal', id) }),
  },
  [`POST ${API}/deals/{id}/move`]: { refs: true, body: async ({ z, id }) => ({ stageId: z.refs.stage, version: await versionOf(z, 'deal', id) }) },
  [`POST ${API}/webhooks`]: { body: ({ n }) => ({ url: `https://203.0.113.8/new/${n}`, events: ['note.created'], active: false }) },
  [`PATCH ${API}/webhooks/{id}`]: {
    body: async ({ z, id, n }) => ({ url: `https://203.0.113.9/renamed/${n}`, events: ['note.updated'], version: await versionOf(z, 'webhook', id) }),
  },
  // Imports (multipart): `body` is the CSV file. A contacts file naming Z's company by id
  // is, in Y, a row whose companyId is no company of Y: the import refuses the whole file
  // (422 IMPORT_INVALID with the row's INVALID_REFERENCE) and writes nothing.
  [`POST ${API}/companies/import`]: { body: ({ n }) => `name,industry\r\nImported company ${n},Retail\r\n` },
  [`POST ${API}/contacts/import`]: {
    refs: true,
    foreign: { status: 422, code: 'IMPORT_INVALID' },
    body: ({ z, n }) => `fullName,email,companyId\r\nImported contact ${n},imported-${n}@example.test,${z.refs.company}\r\n`,
  },
  [`POST ${API}/deals/{id}/win`]: { body: async ({ z, id }) => ({ version: await versionOf(z, 'deal', id) }) },
  [`POST ${API}/deals/{id}/lose`]: { body: async ({ z, id }) => ({ version: await versionOf(z, 'deal', id) }) },
  [`POST ${API}/tasks`]: { refs: true, body: ({ z, n }) => ({ ...taskRefs(z), title: `New task ${n}`, priority: 'high', dueAt: '2030-06-30T12:00:00Z' }) },
  [`PATCH ${API}/tasks/{id}`]: {
    refs: true,
    body: async ({ z, id, n }) => ({ ...taskRefs(z), title: `Renamed task ${n}`, status: 'done', version: await versionOf(z, 'task', id) }),
  },
  [`POST ${API}/notes`]: { refs: true, body: ({ z, n }) => ({ relatedType: 'deal', relatedId: z.refs.deal, text: `New note ${n}` }) },
  [`PATCH ${API}/notes/{id}`]: { body: async ({ z, id, n }) => ({ text: `Changed note ${n}`, version: await versionOf(z, 'note', id) }) },
};

/** A value that satisfies a (simple) JSON schema: required properties, references to rows of `z`. */
function sample(schema: JsonSchema, schemas: Record<string, JsonSchema>, z: TenantData, n: number, field = ''): unknown {
  if (schema.$ref) return sample(schemas[String(schema.$ref).split('/').pop()!] ?? {}, schemas, z, n, field);
  const kind = KIND_OF_FIELD[field];
  if (kind) return z.refs[kind];
  const alternatives: JsonSchema[] | undefined = schema.anyOf ?? schema.oneOf;
  if (alternatives) return sample(alternatives.find((a) => a.type !== 'null') ?? alternatives[0]!, schemas, z, n, field);
  if (schema.const !== undefined) return schema.const;
  if (schema.enum) return schema.enum[0];
  switch (schema.type) {
    case 'object': {
      const required: string[] = schema.required ?? [];
      return Object.fromEntries(required.map((k) => [k, sample(schema.properties?.[k] ?? {}, schemas, z, n, k)]));
    }
    case 'array':
      return [];
    case 'boolean':
      return true;
    case 'integer':
    case 'number':
      return schema.minimum ?? 1;
    default:
      if (schema.format === 'email') return `generated-${n}@example.test`;
      if (schema.format === 'date') return '2030-01-01';
      if (schema.format === 'date-time') return '2030-01-01T00:00:00.000Z';
      if (schema.format === 'uri') return 'https://example.test/';
      return `generated ${n}`.padEnd(schema.minLength ?? 0, 'x').slice(0, schema.maxLength ?? 100);
  }
}

// ---------------------------------------------------------------------------------------
// Routes -> cases.

interface RouteCase {
  route: AppRoute;
  /** `METHOD /path/{id}` */
  key: string;
  /** Needs a tenant access token (OpenAPI `security`). */
  secured: boolean;
  /** The kind of row named by `{id}`. */
  kind: Kind | undefined;
  /** Acts on its own row (changing routes), else on the tenant's ref row. */
  dedicated: boolean;
  /** Its own row is soft-deleted first (restore). */
  deleted: boolean;
  multipart: boolean;
  spec: BodySpec | undefined;
  generatedBody: boolean;
  /** Tenant Z matters: a row in the path or a reference in the body. */
  usesZ: boolean;
  /** Why the route cannot be exercised (fails the enumeration test). */
  problems: string[];
}

const doc = await openApiDocument(app);
const schemas = doc.components?.schemas ?? {};
const routes = await appRoutes(app, API);

function toCase(route: AppRoute): RouteCase {
  const key = `${route.method} ${route.path}`;
  const problems: string[] = [];
  const op = route.operation;
  if (!op) problems.push('the route is not in the OpenAPI document');
  const secured = Boolean(op?.security?.some((s) => 'tenantBearer' in s));
  const params = [...route.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
  const segment = route.path.slice(API.length + 1).split('/')[0]!;
  let kind: Kind | undefined;
  if (params.length) {
    kind = KIND_OF_SEGMENT[segment];
    // `{deliveryId}` (redeliver) is a delivery of the webhook `{id}` names.
    const understood = params.join() === 'id' || (kind === 'webhook' && params.join() === 'id,deliveryId');
    if (!understood || !kind) problems.push(`cannot tell which row {${params.join('}, {')}} names: add its kind to KIND_OF_SEGMENT`);
  }
  const reads = route.method === 'GET' || route.method === 'HEAD';
  const content = op?.requestBody?.content ?? {};
  const multipart = 'multipart/form-data' in content;
  let spec = BODIES[key];
  let generatedBody = false;
  if (!spec && !multipart && content['application/json']) {
    const schema = content['application/json'].schema;
    let refs = false;
    for (const field of Object.keys(schema.properties ?? {})) if (KIND_OF_FIELD[field] && schema.required?.includes(field)) refs = true;
    spec = { refs, body: ({ z, n }) => sample(schema, schemas, z, n) };
    generatedBody = true;
  }
  const usesZ = Boolean(kind) || Boolean(spec?.refs);
  // Without a token, a row in the path or a reference in the body, no request of the matrix would cross tenants.
  if (!secured && !usesZ)
    problems.push('no tenant token, row nor reference to cross tenants with: add a body with refs (and what it carries of tenant Z) to BODIES');
  return {
    route,
    key,
    secured,
    kind,
    dedicated: Boolean(kind) && !reads,
    deleted: route.path.endsWith('/restore'),
    multipart,
    spec,
    generatedBody,
    usesZ,
    problems,
  };
}
const cases = routes.map(toCase);
const runnable = cases.filter((c) => c.problems.length === 0);

// ---------------------------------------------------------------------------------------
// Five tenants with data.

/** Sets the next id of every table with an AUTO_INCREMENT column. */
async function startIdsAt(database: string, start: number): Promise<void> {
  const tables: string[] = await root('information_schema.TABLES').where({ TABLE_SCHEMA: database }).whereNotNull('AUTO_INCREMENT').pluck('TABLE_NAME');
  for (const table of tables) await root.raw(`ALTER TABLE ??.?? AUTO_INCREMENT = ${start}`, [database, table]);
}

const data: TenantData[] = [];
for (const [i, slug] of SLUGS.entries()) {
  const made = await makeTenant(ctx, slug);
  const tenant = (await ctx.catalog.tenants.findBySlug(made.slug))!;
  await startIdsAt(tenant.databaseName, (i + 1) * ID_STRIDE);
  const token = (await login(app, slug)).accessToken;
  const firstStage = Number((await root(`${tenant.databaseName}.pipeline_stages`).where({ name: 'Prospecting' }).first('id')).id);
  const domain = `crm.${slug}.example.com`;
  await addDomain(ctx, slug, domain, 'test');
  const d: TenantData = {
    slug,
    domain,
    tenant,
    token,
    refs: {} as Record<Kind, number>,
    firstStage,
    targets: new Map(),
    deliveries: new Map(),
    bulkTargets: new Map(),
    refreshTokens: { refresh: '', logout: '' },
    resetEmail: `reset@${slug}.test`,
    oneTime: { invitation: '', reset: '' },
  };
  for (const kind of ['company', 'contact', 'stage', 'user', 'deal', 'lead', 'attachment', 'invitation', 'webhook', 'role', 'task', 'note'] as const)
    d.refs[kind] = await createRow(d, kind);
  // More data: companies, contacts, deals in several states, a staff user, activity.
  for (let k = 0; k < 3; k++) await createRow(d, 'company');
  await createRow(d, 'contact');
  const won = await createRow(d, 'deal');
  await asAdmin(d, 'POST', `${API}/deals/${won}/win`, { version: 1 });
  await asAdmin(d, 'DELETE', `${API}/companies/${await createRow(d, 'company')}`);
  await asAdmin(d, 'POST', `${API}/users`, { email: `staff@${slug}.test`, fullName: `${slug} staff`, role: 'staff', password: PASSWORD });
  d.refreshTokens = { refresh: (await login(app, slug)).refreshToken, logout: (await login(app, slug)).refreshToken };
  await asAdmin(d, 'POST', `${API}/users`, { email: d.resetEmail, fullName: `${slug} reset`, role: 'staff', password: PASSWORD });
  d.oneTime = await makeOneTimeTokens(d);
  for (const c of runnable) {
    if (!c.dedicated || !c.kind) continue;
    const id = await createRow(d, c.kind);
    if (c.deleted) await asAdmin(d, 'DELETE', `${API}/${c.route.path.slice(API.length + 1).split('/')[0]}/${id}`);
    d.targets.set(c.key, id);
  }
  // Bulk routes name their rows in the body: one row each, deleted first for the bulk restore.
  for (const [resource, kind] of Object.entries(BULK_KINDS)) {
    const id = await createRow(d, kind);
    if (BULK_ACTION[resource] === 'restore') await asAdmin(d, 'DELETE', `${API}/${resource}/${id}`);
    d.bulkTargets.set(`POST ${API}/${resource}/bulk`, id);
  }
  data.push(d);
}
const operatorToken = await platformLogin(app, ctx, 'operator');
const supportToken = await platformLogin(app, ctx, 'support');

// ---------------------------------------------------------------------------------------
// Platform routes (see the header): checked only for "a tenant token opens none of them".

/**
 * Platform routes that take no platform token, each with why it names no existing tenant
 * (so a tenant's credential has nothing of another tenant to reach there). Any other
 * platform route without `platformBearer` fails the enumeration test.
 */
const PLATFORM_PUBLIC: Record<string, string> = {
  [`POST ${PLATFORM}/auth/login`]: "platform sign-in: a platform user's email and password, no tenant",
  [`POST ${PLATFORM}/signup`]: 'creates a new tenant; a slug in use is refused 409 TENANT_EXISTS (test/signup)',
  [`GET ${PLATFORM}/signup/verify`]: 'the one-time token alone names its tenant; the request names none (test/signup)',
  [`HEAD ${PLATFORM}/signup/verify`]: 'as GET',
};
/** The newest catalog row about tenant `y` in `table` (its `tenant_id`). */
async function newestCatalogId(table: string, y: TenantData): Promise<number> {
  const id: unknown = (await root(`${names.catalog}.${table}`).where({ tenant_id: y.tenant.id }).max({ id: 'id' }).first())?.id;
  if (!id) throw new Error(`no ${table} row of ${y.slug}`);
  return Number(id);
}
/** What `{id}` of a platform route names, by the first segment after /platform/v1: a catalog row about tenant y. */
const PLATFORM_ID_OF_SEGMENT: Record<string, (y: TenantData) => Promise<number>> = {
  operations: (y) => newestCatalogId('operations', y),
  history: (y) => newestCatalogId('request_history', y),
};
/** Path parameters of platform routes other than `{id}`, for tenant y. */
const PLATFORM_PARAMS: Record<string, (y: TenantData) => string> = { slug: (y) => y.slug, name: (y) => y.tenant.plan };
/** Bodies of platform routes that matter here; the others are generated from their schema. */
const PLATFORM_BODIES: Record<string, (y: TenantData, n: number) => unknown> = {
  // The rename: a tenant token must not move another tenant's slug (nor its own).
  [`PATCH ${PLATFORM}/tenants/{slug}`]: (y, n) => ({ slug: `${y.slug}-taken-${n}`, name: `Taken over ${n}` }),
};

interface PlatformCase {
  route: AppRoute;
  key: string;
  /** Needs a platform token (OpenAPI `security`). */
  secured: boolean;
  problems: string[];
}
const platformCases: PlatformCase[] = (await appRoutes(app, PLATFORM)).map((route) => {
  const key = `${route.method} ${route.path}`;
  const problems: string[] = [];
  const secured = Boolean(route.operation?.security?.some((s) => 'platformBearer' in s));
  if (!route.operation) problems.push('the route is not in the OpenAPI document');
  else if (!secured && !PLATFORM_PUBLIC[key]) problems.push('takes no platform token: add it to PLATFORM_PUBLIC with why it names no existing tenant');
  const segment = route.path.slice(PLATFORM.length + 1).split('/')[0]!;
  for (const [, param] of route.path.matchAll(/\{([^}]+)\}/g)) {
    if (param === 'id' ? !PLATFORM_ID_OF_SEGMENT[segment] : !PLATFORM_PARAMS[param!])
      problems.push(`cannot fill {${param}}: add it to PLATFORM_PARAMS or PLATFORM_ID_OF_SEGMENT`);
  }
  return { route, key, secured, problems };
});

/** Sends a platform route's request with `token`, naming tenant `y` in the path (and in X-Tenant, which the platform API ignores). */
async function sendPlatform(c: PlatformCase, token: string, y: TenantData): Promise<LightMyRequestResponse> {
  const segment = c.route.path.slice(PLATFORM.length + 1).split('/')[0]!;
  let url = c.route.path.replace(/\{([a-z]+)\}/g, (m, p: string) => (p === 'id' ? m : PLATFORM_PARAMS[p]!(y)));
  if (url.includes('{id}')) url = url.replace('{id}', String(await PLATFORM_ID_OF_SEGMENT[segment]!(y)));
  // Deleting a tenant needs ?confirm=<slug>: given, so that only the token refuses.
  if (c.route.method === 'DELETE') url += `?confirm=${y.slug}`;
  const n = next();
  const json = c.route.operation?.requestBody?.content['application/json'];
  const payload = (PLATFORM_BODIES[c.key]?.(y, n) ?? (json ? sample(json.schema, schemas, y, n) : undefined)) as InjectOptions['payload'];
  return app.inject({ method: c.route.method as InjectOptions['method'], url, payload, headers: { authorization: `Bearer ${token}`, 'x-tenant': y.slug } });
}

// ---------------------------------------------------------------------------------------
// Requests and checks.

/** Sends a route's request: `token` (if any), tenant `y` named by `source`, row and body of tenant `z`. */
async function send(c: RouteCase, token: string | undefined, y: TenantData, source: Source, z: TenantData): Promise<LightMyRequestResponse> {
  const id = c.kind ? (c.dedicated ? z.targets.get(c.key) : z.refs[c.kind]) : undefined;
  let url = c.route.path.replace('{id}', String(id)).replace('{deliveryId}', String(z.deliveries.get(id ?? 0)));
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (source === 'header') headers['x-tenant'] = y.slug;
  else if (source === 'subdomain') headers.host = `${y.slug}.localhost`;
  else if (source === 'domain') headers.host = y.domain;
  else url += `?tenant=${y.slug}`;
  let payload: InjectOptions['payload'];
  if (c.multipart && c.spec) {
    const form = csvForm(String(await c.spec.body({ z, id, n: next() })));
    payload = form.payload;
    Object.assign(headers, form.headers);
  } else if (c.multipart) {
    const form = fileForm(`upload-${next()}.txt`);
    payload = form.payload;
    Object.assign(headers, form.headers);
  } else if (c.spec) {
    payload = (await c.spec.body({ z, id, n: next() })) as InjectOptions['payload'];
  }
  return app.inject({ method: c.route.method as InjectOptions['method'], url, headers, payload });
}

/** Slugs of tenants other than `own` that a response shows. */
const foreignSlugs = (res: LightMyRequestResponse, own: string) => SLUGS.filter((s) => s !== own && res.body.includes(s));
const codeOf = (res: LightMyRequestResponse) => {
  try {
    return String(res.json().code ?? '');
  } catch {
    return '';
  }
};

const tally = new Map<string, number>();
const count = (res: LightMyRequestResponse) => {
  const k = `${res.statusCode} ${codeOf(res)}`.trim();
  tally.set(k, (tally.get(k) ?? 0) + 1);
};
const stats = { refused: 0, platform: 0, tenantOnPlatform: 0, own: 0 };

/** What is wrong with the answer to a request that must be refused (undefined: nothing). */
function badRefusal(c: RouteCase, res: LightMyRequestResponse, tokenMatches: boolean, y: TenantData, z: TenantData): string | undefined {
  const allowed = new Set([401, 403, 404]);
  // Only the body refers to another tenant's rows: the request is well-formed and authorised, the reference does not exist here.
  const onlyBodyRefersToZ = !c.kind && Boolean(c.spec?.refs) && tokenMatches && y !== z;
  if (onlyBodyRefersToZ && res.statusCode === 422 && codeOf(res) === 'INVALID_REFERENCE') allowed.add(422);
  // The route's own answer to a body that is only meaningful in another tenant (BodySpec.foreign).
  const foreign = c.spec?.foreign;
  if (foreign && onlyBodyRefersToZ && res.statusCode === foreign.status && (foreign.code === undefined || codeOf(res) === foreign.code))
    allowed.add(foreign.status);
  const leaks = foreignSlugs(res, y.slug);
  if (!allowed.has(res.statusCode)) return `${res.statusCode} ${res.body.slice(0, 300)}`;
  if (leaks.length) return `answer shows data of ${leaks.join(', ')}: ${res.body.slice(0, 300)}`;
  return undefined;
}

const digestAll = async () => {
  // Work a request left running (forgot-password looks up and mails after its answer) ends first.
  await app.background.idle();
  const dbs: Record<string, Record<string, TableDigest>> = {};
  for (const d of data) dbs[d.slug] = await databaseDigest(root, d.tenant.databaseName);
  // The catalog but its request history (which records every request, refused ones too).
  const catalog = Object.fromEntries(Object.entries(await databaseDigest(root, names.catalog)).filter(([table]) => !table.startsWith('request_')));
  const objects: string[] = [];
  for (const f of (await readdir(s3.directory, { recursive: true })).sort()) {
    const st = await stat(join(s3.directory, f));
    if (st.isFile()) objects.push(`${f} ${st.size}`);
  }
  return { dbs, catalog, objects };
};
const before = await digestAll();
/** Mails sent before the checks (invitations made for the setup). */
const mailsBefore = smtp.messages.length;

t.test('every tenant route is enumerated from the app and can be exercised', (t) => {
  t.ok(cases.length >= 50, `${cases.length} method+path pairs under ${API}`);
  for (const must of [
    `GET ${API}/companies/{id}`,
    `HEAD ${API}/companies/{id}`,
    `POST ${API}/deals/{id}/move`,
    `POST ${API}/companies/{id}/attachments`,
    `DELETE ${API}/attachments/{id}`,
    `GET ${API}/history`,
    `POST ${API}/invitations`,
    `DELETE ${API}/invitations/{id}`,
    `POST ${API}/invitations/accept`,
    `POST ${API}/webhooks/{id}/deliveries/{deliveryId}/redeliver`,
    `GET ${API}/webhooks/{id}/deliveries`,
    `POST ${API}/auth/forgot-password`,
    `POST ${API}/auth/reset-password`,
  ]) {
    t.ok(
      cases.some((c) => c.key === must),
      `${must} is enumerated`,
    );
  }
  t.same(
    cases.filter((c) => c.problems.length).map((c) => `${c.key}: ${c.problems.join('; ')}`),
    [],
    'every route is documented and its {id} understood',
  );
  t.same(
    platformCases.filter((c) => c.problems.length).map((c) => `${c.key}: ${c.problems.join('; ')}`),
    [],
    'every platform route is documented, takes a platform token or is in PLATFORM_PUBLIC, and its parameters can be filled',
  );
  t.ok(
    platformCases.some((c) => c.key === `PATCH ${PLATFORM}/tenants/{slug}` && c.secured),
    'the platform rename (PATCH /tenants/{slug}) is enumerated, with a platform token',
  );
  for (const d of data) {
    const ids = [...Object.values(d.refs), ...d.targets.values()];
    const i = SLUGS.indexOf(d.slug as (typeof SLUGS)[number]);
    t.ok(
      ids.every((id) => id >= (i + 1) * ID_STRIDE && id < (i + 2) * ID_STRIDE),
      `${d.slug}: every row used has an id in its own range`,
    );
  }
  t.comment(`routes: ${cases.map((c) => c.key).join(', ')}`);
  t.comment(
    `platform routes (tenant tokens only): ${platformCases.map((c) => `${c.key}${c.secured ? '' : ` (public: ${PLATFORM_PUBLIC[c.key]})`}`).join(', ')}`,
  );
  t.comment(
    `generated bodies: ${
      cases
        .filter((c) => c.generatedBody)
        .map((c) => c.key)
        .join(', ') || 'none'
    }`,
  );
  t.end();
});

t.test('a request with a token, tenant or row of another tenant is refused and shows nothing of it', async (t) => {
  for (const c of runnable) {
    const failures: string[] = [];
    let n = 0;
    for (const x of c.secured ? data : [undefined]) {
      for (const y of data) {
        for (const zz of c.usesZ ? data : [undefined]) {
          const z = zz ?? y;
          const tokenMatches = !x || x === y;
          if (tokenMatches && z === y) continue;
          // Requests that get past the token check reach the database: every source; the others rotate.
          const sources = tokenMatches ? SOURCES : [SOURCES[n % SOURCES.length]!];
          for (const source of sources) {
            n++;
            const res = await send(c, x?.token, y, source, z);
            count(res);
            const bad = badRefusal(c, res, tokenMatches, y, z);
            if (bad) failures.push(`token of ${x?.slug ?? '-'}, ${source} ${y.slug}, row of ${z.slug}: ${bad}`);
          }
        }
      }
    }
    stats.refused += n;
    t.same(failures, [], `${c.key}: ${n} cross-tenant requests refused`);
  }
});

t.test('platform tokens and missing tokens never open a tenant route', async (t) => {
  for (const c of runnable.filter((r) => r.secured)) {
    const failures: string[] = [];
    for (const [i, y] of data.entries()) {
      for (const [label, token] of [
        ['operator', operatorToken],
        ['support', supportToken],
        ['no token', undefined],
      ] as const) {
        const source = SOURCES[(i + stats.platform) % SOURCES.length]!;
        stats.platform++;
        const res = await send(c, token, y, source, y);
        count(res);
        if (![401, 403].includes(res.statusCode)) failures.push(`${label}, ${source} ${y.slug}: ${res.statusCode} ${res.body.slice(0, 300)}`);
      }
    }
    t.same(failures, [], `${c.key}: platform tokens and no token refused`);
  }
});

t.test("a tenant's access token opens no platform route, whichever tenant it names", async (t) => {
  await app.historyRecorder?.flush(true);
  for (const c of platformCases.filter((p) => p.secured && p.problems.length === 0)) {
    const failures: string[] = [];
    for (const [i, x] of data.entries()) {
      // Its own tenant and another one.
      for (const y of [x, data[(i + 1) % data.length]!]) {
        stats.tenantOnPlatform++;
        const res = await sendPlatform(c, x.token, y);
        count(res);
        const leaks = foreignSlugs(res, x.slug);
        if (![401, 403].includes(res.statusCode)) failures.push(`token of ${x.slug}, naming ${y.slug}: ${res.statusCode} ${res.body.slice(0, 300)}`);
        else if (leaks.length) failures.push(`token of ${x.slug}, naming ${y.slug}: answer shows data of ${leaks.join(', ')}`);
      }
    }
    t.same(failures, [], `${c.key}: tenant tokens refused`);
  }
});

t.test('the refused requests changed no row of any tenant database or of the catalog, no S3 object and sent no mail', async (t) => {
  const after = await digestAll();
  for (const d of data) t.same(after.dbs[d.slug], before.dbs[d.slug], `${d.slug}: every table has the same row count and SHA-256`);
  t.same(after.catalog, before.catalog, 'every catalog table but the request history has the same row count and SHA-256');
  t.same(after.objects, before.objects, 'S3 holds the same objects');
  t.same(
    smtp.messages.slice(mailsBefore).map((m) => `${m.to.join()}: ${m.subject}`),
    [],
    'no mail was sent',
  );
  t.ok(Object.keys(before.dbs[data[0]!.slug]!).length >= 9, 'every tenant table is digested');
  t.ok(
    ['tenants', 'tenant_domains', 'plans'].every((table) => table in before.catalog),
    'the catalog tables are digested',
  );
});

t.test('the same requests succeed when token, tenant and row are of one tenant', async (t) => {
  for (const c of runnable) {
    const failures: string[] = [];
    for (const [i, d] of data.entries()) {
      const source = SOURCES[(i + stats.own) % SOURCES.length]!;
      stats.own++;
      const res = await send(c, c.secured ? d.token : undefined, d, source, d);
      count(res);
      const hint = c.generatedBody ? ' (the body was generated from the schema: add a valid one to BODIES)' : '';
      if (res.statusCode < 200 || res.statusCode > 299) failures.push(`${source} ${d.slug}: ${res.statusCode} ${res.body.slice(0, 300)}${hint}`);
      const leaks = foreignSlugs(res, d.slug);
      if (leaks.length) failures.push(`${source} ${d.slug}: answer shows data of ${leaks.join(', ')}`);
    }
    t.same(failures, [], `${c.key}: succeeds for each of the ${data.length} tenants`);
  }
  // What forgot-password did for the tenant's own user (the foreign requests did not, above): it mailed a reset link.
  for (const d of data) {
    const mail = await smtp.waitForMail((m) => m.to.includes(d.resetEmail) && smtp.messages.indexOf(m) >= mailsBefore).catch(() => undefined);
    t.ok(mail, `${d.slug}: forgot-password mailed ${d.resetEmail}`);
  }
  // The digests see changes: the successful requests above changed every tenant.
  const after = await digestAll();
  for (const d of data) t.not(JSON.stringify(after.dbs[d.slug]), JSON.stringify(before.dbs[d.slug]), `${d.slug}: its own requests changed it`);
});

t.test("each tenant's MySQL account is denied on the other tenants' databases and on the catalog", async (t) => {
  const server = parseMysqlUrl(MYSQL_URL);
  /** Matches a mysql2 error by its MySQL errno (1142 table access denied, 1044 database access denied). */
  const denied = (errno: number) => ({ errno }) as unknown as Error;
  const open: Knex[] = [];
  t.teardown(() => Promise.all(open.map((k) => k.destroy())));
  const connectAs = (d: TenantData, database = '') => {
    const k = createMysqlKnex(
      { ...server, user: d.tenant.dbUser, password: decryptSecret(d.tenant.dbPasswordEnc, config.secrets), database },
      { min: 0, max: 1 },
    );
    open.push(k);
    return k;
  };
  const tablesOf = (database: string): Promise<string[]> =>
    root('information_schema.TABLES').where({ TABLE_SCHEMA: database }).orderBy('TABLE_NAME').pluck('TABLE_NAME');
  const catalogTables = await tablesOf(names.catalog);
  t.ok(catalogTables.includes('tenants'), 'the catalog has its tables');
  for (const d of data) {
    const k = connectAs(d);
    const [own] = await k.raw('SELECT COUNT(*) AS n FROM ??.users', [d.tenant.databaseName]);
    t.ok(Number(own[0].n) >= 1, `${d.slug} reads its own database`);
    for (const o of data.filter((x) => x !== d)) {
      const db = o.tenant.databaseName;
      for (const table of await tablesOf(db))
        await t.rejects(k.raw('SELECT * FROM ??.?? LIMIT 1', [db, table]), denied(1142), `${d.slug}: SELECT on ${o.slug}.${table} denied`);
      await t.rejects(
        k.raw('INSERT INTO ??.users (email, password_hash, role) VALUES (?, ?, ?)', [db, `evil@${d.slug}.test`, 'h', 'admin']),
        denied(1142),
        `${d.slug}: INSERT into ${o.slug} denied`,
      );
      await t.rejects(k.raw('UPDATE ??.companies SET name = ?', [db, 'evil']), denied(1142), `${d.slug}: UPDATE in ${o.slug} denied`);
      await t.rejects(k.raw('DELETE FROM ??.deals', [db]), denied(1142), `${d.slug}: DELETE in ${o.slug} denied`);
      await t.rejects(connectAs(d, db).raw('SELECT 1'), denied(1044), `${d.slug} cannot use ${o.slug}'s database`);
    }
    for (const table of catalogTables)
      await t.rejects(k.raw('SELECT * FROM ??.?? LIMIT 1', [names.catalog, table]), denied(1142), `${d.slug}: SELECT on catalog ${table} denied`);
    await t.rejects(k.raw('INSERT INTO ??.tenants (slug) VALUES (?)', [names.catalog, 'evil']), denied(1142), `${d.slug}: INSERT into the catalog denied`);
    await t.rejects(k.raw("UPDATE ??.tenants SET status = 'active'", [names.catalog]), denied(1142), `${d.slug}: UPDATE in the catalog denied`);
    await t.rejects(k.raw('DELETE FROM ??.tenants', [names.catalog]), denied(1142), `${d.slug}: DELETE in the catalog denied`);
    await t.rejects(connectAs(d, names.catalog).raw('SELECT 1'), denied(1044), `${d.slug} cannot use the catalog`);
    const [dbs] = await k.raw('SHOW DATABASES');
    const visible = (dbs as Array<Record<string, string>>).map((r) => Object.values(r)[0]);
    t.same(
      visible.filter((v) => v === names.catalog || data.some((o) => o !== d && o.tenant.databaseName === v)),
      [],
      `${d.slug} does not even see the others' databases`,
    );
  }
});

t.test('coverage and run time', (t) => {
  const byMethod = new Map<string, number>();
  for (const c of runnable) byMethod.set(c.route.method, (byMethod.get(c.route.method) ?? 0) + 1);
  t.comment(`${runnable.length} routes (${[...byMethod].map(([m, n]) => `${m} ${n}`).join(', ')}) x ${data.length} tenants`);
  t.comment(
    `${stats.refused} cross-tenant requests, ${stats.platform} platform/no-token requests, ${stats.tenantOnPlatform} tenant-token requests on ${
      platformCases.filter((c) => c.secured).length
    } platform routes, ${stats.own} same-tenant requests`,
  );
  t.comment(
    `answers: ${[...tally]
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${k}: ${n}`)
      .join(', ')}`,
  );
  t.comment(`run time ${((Date.now() - started) / 1000).toFixed(1)} s`);
  t.pass('reported');
  t.end();
});
