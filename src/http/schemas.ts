/**
 * zod schemas of the API shared by several routes: problem details, pagination, and the
 * public views of catalog records. The OpenAPI document is generated from these.
 */
import { z } from 'zod';
import type { Operation, Tenant } from '../catalog/index.js';
import type { TenantUser } from '../crm/users-repository.js';

/** RFC 9457 problem details as Silo sends them. */
export const problemSchema = z
  .looseObject({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.string().describe('stable machine-readable code, e.g. TENANT_NOT_FOUND'),
    requestId: z.string(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: 'Problem' });

/** Adds problem+json answers for the given statuses to a response map. */
export function withProblems<R extends Record<number, z.ZodType>>(responses: R, statuses: number[] = [400, 401, 403, 404, 503]) {
  const out: Record<number, z.ZodType> = { ...responses };
  for (const s of statuses) out[s] = problemSchema;
  return out as R;
}

/** Query parameters every `/api/v1` route accepts: `tenant` identifies the tenant (see tenancy/resolve). */
export const tenantQuery = z.strictObject({
  tenant: z.string().max(64).optional().describe('tenant slug, when not given by subdomain, custom domain or X-Tenant'),
});

/** `page` from 1 and `pageSize` 1-100 (default 20), plus `tenant`. */
export const paginationQuery = tenantQuery.extend({
  page: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(1)
    .describe('page number from 1; a page may start at most 10,000 rows deep ((page - 1) x pageSize), else 400 PAGE_TOO_DEEP'),
  pageSize: z.coerce.number().int().min(1).max(100).default(20),
});

/**
 * `sort` of a list: comma-separated fields of `allowed` (its keys are listed in the
 * OpenAPI description), `-` for descending; ties are broken by id, newest first. An
 * unknown field is 400 `INVALID_SORT` (checked by `applySort`).
 */
export const sortParam = (allowed: Record<string, string>) =>
  z
    .string()
    .max(200)
    .optional()
    .describe(
      `comma-separated fields, - for descending (e.g. -createdAt,${Object.keys(allowed)[0]}); at most 5; fields: ${Object.keys(allowed).join(', ')}; default -createdAt`,
    );

/** `q` of a list: words searched in `what` (FULLTEXT with a LIKE fallback, see src/crm/search.ts). */
export const searchParam = (what: string) =>
  z
    .string()
    .trim()
    .min(1)
    .max(200)
    .optional()
    .describe(
      `search in ${what}: every word must match, as the start of a word (FULLTEXT), or anywhere when shorter than the server's innodb_ft_min_token_size or a stopword (LIKE); operators are plain separators; results follow sort, not relevance`,
    );

/** A page of results. */
export const page = <T extends z.ZodType>(item: T) =>
  z.object({ data: z.array(item), page: z.number().int(), pageSize: z.number().int(), total: z.number().int() });

/** Dates are `Date` in handlers and ISO-8601 UTC strings on the wire. */
const date = z.date();
const nullableDate = date.nullable();

/** A tenant as the platform API shows it (never the encrypted password). */
export const tenantSchema = z
  .object({
    id: z.number().int(),
    slug: z.string(),
    name: z.string(),
    plan: z.string(),
    status: z.enum(['pending', 'provisioning', 'active', 'suspended', 'maintenance', 'failed', 'deleted']),
    statusReason: z.string().nullable(),
    databaseName: z.string(),
    schemaVersion: z.string().nullable(),
    adminEmail: z.string().nullable(),
    domains: z.array(z.string()).optional(),
    createdAt: date,
    updatedAt: date,
    suspendedAt: nullableDate,
    deletedAt: nullableDate,
  })
  .meta({ id: 'Tenant' });

/** Picks the public fields of a tenant. */
export function tenantOut(t: Tenant, domains?: string[]) {
  return {
    id: t.id,
    slug: t.slug,
    name: t.name,
    plan: t.plan,
    status: t.status,
    statusReason: t.statusReason,
    databaseName: t.databaseName,
    schemaVersion: t.schemaVersion,
    adminEmail: t.adminEmail,
    createdAt: t.createdAt,
    updatedAt: t.updatedAt,
    suspendedAt: t.suspendedAt,
    deletedAt: t.deletedAt,
    ...(domains ? { domains } : {}),
  };
}

/** An operation of the journal. */
export const operationSchema = z
  .object({
    id: z.number().int(),
    kind: z.string(),
    tenantId: z.number().int().nullable(),
    tenantSlug: z.string().nullable().optional(),
    actor: z.string(),
    step: z.string().nullable(),
    status: z.enum(['running', 'succeeded', 'failed']),
    error: z.string().nullable(),
    details: z.record(z.string(), z.unknown()).nullable(),
    startedAt: date,
    finishedAt: nullableDate,
  })
  .meta({ id: 'Operation' });

/** Identity of an operation's output. */
export const operationOut = (o: Operation) => o;

/** A tenant user (never the hash). */
export const userSchema = z
  .object({
    id: z.number().int(),
    email: z.string(),
    fullName: z.string().nullable(),
    /** The role's name. */
    role: z.string(),
    roleId: z.number().int(),
    active: z.boolean(),
    version: z.number().int(),
    createdAt: date,
    updatedAt: date,
    lastLoginAt: nullableDate,
  })
  .meta({ id: 'User' });

/** Identity of a user's output. */
export const userOut = (u: TenantUser) => u;

/** Tokens answered by login and refresh. */
export const tokenPairSchema = z
  .object({
    accessToken: z.string(),
    tokenType: z.literal('Bearer'),
    expiresIn: z.number().int().describe('seconds'),
    refreshToken: z.string(),
    refreshExpiresAt: date,
  })
  .meta({ id: 'TokenPair' });
