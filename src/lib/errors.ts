/**
 * The typed errors of Silo. Each carries a stable machine `code`, the HTTP status it
 * maps to (RFC 9457 problem+json in `src/http`) and the CLI exit code (`cli/`).
 * Services throw these; adapters map them in one place.
 */

/** Optional structured details, e.g. the fields of a validation error. */
export type ErrorDetails = Record<string, unknown>;

/** Base class: a failure that is expected and explained to the caller. */
export class SiloError extends Error {
  /** Stable machine-readable code, e.g. `TENANT_NOT_FOUND`. */
  readonly code: string;
  /** HTTP status of the problem+json answer. */
  readonly status: number;
  /** CLI exit code: 2 for usage/validation errors, 1 otherwise. */
  readonly exitCode: number;
  readonly details: ErrorDetails | undefined;
  /** Extension members of the problem+json body (RFC 9457 §3.2), e.g. a quota's `limit` and `usage`. */
  readonly members: Record<string, unknown> | undefined;

  constructor(
    message: string,
    opts: { code: string; status: number; exitCode?: number; details?: ErrorDetails; members?: Record<string, unknown>; cause?: unknown },
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = opts.code;
    this.status = opts.status;
    this.exitCode = opts.exitCode ?? 1;
    this.details = opts.details;
    this.members = opts.members;
  }
}

/** Input that does not meet a rule (HTTP 400 / exit 2). */
export class ValidationError extends SiloError {
  constructor(message: string, details?: ErrorDetails, code = 'VALIDATION_FAILED') {
    super(message, { code, status: 400, exitCode: 2, details });
  }
}

/** The named thing does not exist (HTTP 404). */
export class NotFoundError extends SiloError {
  constructor(message: string, code = 'NOT_FOUND', details?: ErrorDetails) {
    super(message, { code, status: 404, details });
  }
}

/** The request conflicts with the current state (HTTP 409). */
export class ConflictError extends SiloError {
  constructor(message: string, code = 'CONFLICT', details?: ErrorDetails) {
    super(message, { code, status: 409, details });
  }
}

/** The caller may not do this (HTTP 403). */
export class ForbiddenError extends SiloError {
  constructor(message: string, code = 'FORBIDDEN', details?: ErrorDetails) {
    super(message, { code, status: 403, details });
  }
}

/** Which plan limit a create would pass: active users, live contacts, or the bytes of all attachments. */
export type QuotaName = 'users' | 'contacts' | 'attachmentBytes';

/**
 * A create would take the tenant past a limit of its plan (HTTP 403 `QUOTA_EXCEEDED`). The
 * problem body carries `quota`, `limit` (the plan's), `usage` (before this create) and
 * `requested` (what the create adds: 1 record, or the file's bytes).
 */
export class QuotaExceededError extends SiloError {
  constructor(quota: QuotaName, limit: number, usage: number, requested: number) {
    const what = quota === 'attachmentBytes' ? `${usage} + ${requested} attachment bytes` : `${usage + requested} ${quota}`;
    const members = { quota, limit, usage, requested };
    super(`the plan allows ${limit} ${quota === 'attachmentBytes' ? 'attachment bytes' : quota}; this would make ${what}`, {
      code: 'QUOTA_EXCEEDED',
      status: 403,
      details: members,
      members,
    });
  }
}

/** The caller is not authenticated, or its credentials do not fit (HTTP 401). */
export class UnauthorizedError extends SiloError {
  constructor(message: string, code = 'UNAUTHORIZED', details?: ErrorDetails) {
    super(message, { code, status: 401, details });
  }
}

/** The request is well-formed but cannot be processed (HTTP 422). */
export class UnprocessableError extends SiloError {
  constructor(message: string, code = 'UNPROCESSABLE', details?: ErrorDetails) {
    super(message, { code, status: 422, details });
  }
}

/**
 * A tenant or a dependency cannot serve right now (HTTP 503 with `Retry-After`).
 * `retryAfterS` is in seconds (RFC 9110 §10.2.3).
 */
export class UnavailableError extends SiloError {
  readonly retryAfterS: number;
  constructor(message: string, code = 'UNAVAILABLE', retryAfterS = 5, details?: ErrorDetails, cause?: unknown) {
    super(message, { code, status: 503, details, cause });
    this.retryAfterS = retryAfterS;
  }
}

/**
 * The caller sent too many requests of some kind (HTTP 429 with `Retry-After`).
 * `retryAfterS` is in seconds (RFC 6585 §4, RFC 9110 §10.2.3).
 */
export class TooManyRequestsError extends SiloError {
  readonly retryAfterS: number;
  constructor(message: string, code = 'RATE_LIMITED', retryAfterS = 60, details?: ErrorDetails) {
    super(message, { code, status: 429, details });
    this.retryAfterS = retryAfterS;
  }
}

/** A lifecycle step failed; the operation row holds the step and the reason (exit 1). */
export class OperationFailedError extends SiloError {
  constructor(message: string, details: ErrorDetails, cause?: unknown) {
    super(message, { code: 'OPERATION_FAILED', status: 500, details, cause });
  }
}
