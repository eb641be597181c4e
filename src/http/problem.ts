/**
 * RFC 9457 problem details: every error answer of the API is
 * `application/problem+json` with `type`, `title`, `status`, `detail`, a stable `code`
 * and the `requestId`; validation errors add `errors: [{ path, message }]`.
 * A 5xx never carries internals (the detail is generic; the log has the cause).
 */
import { STATUS_CODES } from 'node:http';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { SiloError, TooManyRequestsError, UnavailableError } from '../lib/errors.js';
import { isConnectionError, MysqlErrno, mysqlErrno } from '../lib/knex.js';
import { isConnectionWaitTimeout, poolExhaustedError } from '../tenancy/pool-exhausted.js';

/** The problem+json body. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  requestId: string;
  errors?: Array<{ path: string; message: string }>;
  [k: string]: unknown;
}

/** Media type of problem details (RFC 9457 §3). */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

/** `type` URI of a code: `urn:silo:problem:<code in kebab case>`. */
export function problemType(code: string): string {
  return `urn:silo:problem:${code.toLowerCase().replaceAll('_', '-')}`;
}

/** Result of mapping an error: the body and headers to send. */
export interface MappedProblem {
  problem: Problem;
  headers: Record<string, string>;
  /** True when the cause should be logged as an error (5xx not explained). */
  unexpected: boolean;
}

function make(status: number, code: string, detail: string, requestId: string, extra: Partial<Problem> = {}): Problem {
  return { type: problemType(code), title: STATUS_CODES[status] ?? 'Error', status, detail, code, requestId, ...extra };
}

const FASTIFY_CODES: Record<string, { status: number; code: string; detail?: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'INVALID_JSON', detail: 'the request body is not valid JSON' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'INVALID_JSON', detail: 'the request body is empty but declared as JSON' },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'PAYLOAD_TOO_LARGE', detail: 'the request body is too large' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', detail: 'send application/json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'INVALID_CONTENT_LENGTH' },
  FST_ERR_BAD_URL: { status: 400, code: 'BAD_URL' },
  FST_ERR_MAX_PARAM_LENGTH: { status: 414, code: 'URI_TOO_LONG', detail: 'a path parameter is too long' },
  FST_ERR_ASYNC_CONSTRAINT: { status: 400, code: 'BAD_REQUEST' },
  FAST_JWT_MALFORMED: { status: 401, code: 'INVALID_TOKEN' },
  // fast-jwt verification errors that @fastify/jwt passes through unwrapped (they carry no status).
  FAST_JWT_MISSING_SIGNATURE: { status: 401, code: 'INVALID_TOKEN', detail: 'the access token is not signed' },
  FAST_JWT_INVALID_ALGORITHM: { status: 401, code: 'INVALID_TOKEN', detail: 'the access token is not valid' },
  FAST_JWT_INVALID_TYPE: { status: 401, code: 'INVALID_TOKEN', detail: 'the access token is not valid' },
  FAST_JWT_INVALID_PAYLOAD: { status: 401, code: 'INVALID_TOKEN', detail: 'the access token is not valid' },
  FAST_JWT_INVALID_CLAIM_TYPE: { status: 401, code: 'INVALID_TOKEN', detail: 'the access token is not valid' },
  FAST_JWT_INVALID_CRIT_HEADER: { status: 401, code: 'INVALID_TOKEN', detail: 'the access token is not valid' },
  FAST_JWT_INACTIVE: { status: 401, code: 'INVALID_TOKEN', detail: 'the access token is not valid yet' },
  FST_JWT_NO_AUTHORIZATION_IN_HEADER: { status: 401, code: 'UNAUTHORIZED', detail: 'send Authorization: Bearer <access token>' },
  FST_JWT_AUTHORIZATION_TOKEN_EXPIRED: { status: 401, code: 'TOKEN_EXPIRED', detail: 'the access token has expired; refresh it' },
  FST_JWT_AUTHORIZATION_TOKEN_INVALID: { status: 401, code: 'INVALID_TOKEN' },
  FST_JWT_AUTHORIZATION_TOKEN_UNTRUSTED: { status: 401, code: 'INVALID_TOKEN' },
  FST_JWT_BAD_REQUEST: { status: 401, code: 'INVALID_TOKEN', detail: 'the Authorization header is malformed' },
  FST_JWT_BAD_COOKIE_REQUEST: { status: 401, code: 'INVALID_TOKEN' },
};

/**
 * 503 codes whose message Silo composes from its own facts (a tenant's status, "the
 * catalog is not reachable"): shown as the detail. Any other 503 (S3, the dump tool, a
 * backup) may carry a dependency's own error text, which can name hosts, accounts, keys
 * and buckets: it answers a generic detail ({@link GENERIC_503}) instead, and its text
 * goes to the log.
 */
const PUBLIC_503_CODES = new Set(['TENANT_UNAVAILABLE', 'CATALOG_UNAVAILABLE', 'POOL_EXHAUSTED']);
/** Generic details of 503 answers whose own text is kept for the log. */
const GENERIC_503: Record<string, string> = {
  STORAGE_UNAVAILABLE: 'object storage is not available right now; retry shortly',
  BACKUP_FAILED: 'the backup could not be taken, so nothing was changed; retry shortly',
  MAIL_UNAVAILABLE: 'the email could not be sent right now, so nothing was done; retry shortly',
};
const GENERIC_503_DEFAULT = 'a service this request needs is not available right now; retry shortly';

/**
 * Maps any thrown value to a problem. Order: a timed-out wait for a tenant connection
 * (503 `POOL_EXHAUSTED`), Silo's typed errors, schema validation
 * (zod), Fastify's and JWT's own codes, unreachable databases (503), then 500.
 */
export function toProblem(err: unknown, requestId: string): MappedProblem {
  // A wait for a connection of a full tenant pool that timed out is the pool budget, not an outage.
  if (isConnectionWaitTimeout(err)) err = poolExhaustedError('connection', err);
  if (err instanceof SiloError) {
    const headers: Record<string, string> = {};
    const retryAfterS = err instanceof UnavailableError || err instanceof TooManyRequestsError ? err.retryAfterS : undefined;
    if (retryAfterS !== undefined) headers['retry-after'] = String(retryAfterS);
    const fields = (err.details as { fields?: Array<{ path: string; message: string }> } | undefined)?.fields;
    const hidden = err instanceof UnavailableError && !PUBLIC_503_CODES.has(err.code);
    const detail = hidden
      ? (GENERIC_503[err.code] ?? GENERIC_503_DEFAULT)
      : err.status >= 500 && !(err instanceof UnavailableError)
        ? 'the server could not complete the request'
        : err.message;
    const extra: Partial<Problem> = { ...err.members, ...(fields ? { errors: fields } : {}) };
    if (retryAfterS !== undefined) extra.retryAfter = retryAfterS;
    // A hidden text is logged with the error (plugins/errors.ts logs `unexpected` causes).
    return {
      problem: make(err.status, err.code, detail, requestId, extra),
      headers,
      unexpected: hidden || (err.status >= 500 && !(err instanceof UnavailableError)),
    };
  }
  const e = err as { code?: string; statusCode?: number; message?: string; validation?: unknown; validationContext?: string };
  if (hasZodFastifySchemaValidationErrors(err)) {
    const errors = err.validation.map((v) => ({
      path: [err.validationContext, ...(v.instancePath ? v.instancePath.split('/').filter(Boolean) : [])].filter(Boolean).join('.'),
      message: v.message ?? 'invalid',
    }));
    return {
      problem: make(400, 'VALIDATION_FAILED', `request ${errors[0]?.path ?? ''}: ${errors[0]?.message ?? 'invalid'}`, requestId, { errors }),
      headers: {},
      unexpected: false,
    };
  }
  if (e?.validation) {
    return { problem: make(400, 'VALIDATION_FAILED', e.message ?? 'invalid request', requestId), headers: {}, unexpected: false };
  }
  const known = e?.code ? FASTIFY_CODES[e.code] : undefined;
  if (known) return { problem: make(known.status, known.code, known.detail ?? e.message ?? 'bad request', requestId), headers: {}, unexpected: false };
  if (e?.statusCode === 429) {
    return { problem: make(429, 'RATE_LIMITED', e.message ?? 'too many requests', requestId), headers: {}, unexpected: false };
  }
  const errno = mysqlErrno(err);
  if (errno === MysqlErrno.ACCOUNT_LOCKED || errno === MysqlErrno.MYSQL_ACCOUNT_LOCKED) {
    // The tenant's account is fenced while its database is replaced (provisioning/account-fence.ts).
    return {
      problem: make(503, 'TENANT_UNAVAILABLE', 'the tenant is under maintenance; retry shortly', requestId, { retryAfter: 5 }),
      headers: { 'retry-after': '5' },
      unexpected: false,
    };
  }
  if (errno === MysqlErrno.LOCK_DEADLOCK) {
    // Left after the transaction was re-run (lib/knex.ts), or outside one: transient, never the client's fault.
    return {
      problem: make(503, 'TRANSACTION_CONFLICT', 'the request met concurrent changes to the same records; retry it', requestId, { retryAfter: 1 }),
      headers: { 'retry-after': '1' },
      unexpected: false,
    };
  }
  if (isConnectionError(err)) {
    return {
      problem: make(503, 'DATABASE_UNAVAILABLE', 'a database is not reachable right now; retry shortly', requestId, { retryAfter: 2 }),
      headers: { 'retry-after': '2' },
      unexpected: false,
    };
  }
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return {
      problem: make(e.statusCode, (e.code ?? 'BAD_REQUEST').replace(/^FST_ERR_/, ''), e.message ?? 'bad request', requestId),
      headers: {},
      unexpected: false,
    };
  }
  return { problem: make(500, 'INTERNAL', 'the server could not complete the request', requestId), headers: {}, unexpected: true };
}
