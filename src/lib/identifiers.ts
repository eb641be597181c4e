/**
 * Names that reach SQL as identifiers: tenant slugs, database names, MySQL user names.
 * Each is checked against a strict pattern before use, and quoted by Knex (`??`) or
 * {@link quoteIdentifier} when it appears in SQL. Rules: MySQL 8.4 Reference Manual
 * §11.2 "Schema Object Names" (identifiers up to 64 characters) and §8.2.1 "Account
 * User Names and Passwords" (user names up to 32 characters).
 */
import { createHash, randomInt } from 'node:crypto';
import { ValidationError } from './errors.js';

/** A tenant slug: 3-32 chars, lower-case letter first, letters/digits/hyphens, not ending in a hyphen. */
export const SLUG_PATTERN = /^[a-z][a-z0-9-]{1,30}[a-z0-9]$/;

/** Slugs that would collide with the platform's own host names or paths. */
export const RESERVED_SLUGS: ReadonlySet<string> = new Set([
  'www',
  'api',
  'admin',
  'platform',
  'docs',
  'static',
  'assets',
  'mail',
  'app',
  'auth',
  'health',
  'ready',
  'metrics',
  'status',
  'support',
  'help',
  'root',
  'system',
  'silo',
  'catalog',
  'internal',
  'dashboard',
  'smtp',
  'ftp',
  'ns1',
  'ns2',
  'cdn',
  'test',
  'localhost',
]);

/** MySQL identifier limit (database names), in characters. */
export const MAX_DATABASE_NAME = 64;
/** MySQL user name limit, in characters (MySQL 5.7.8+). */
export const MAX_USER_NAME = 32;

const SAFE_IDENTIFIER = /^[A-Za-z0-9_]{1,64}$/;

/**
 * Checks a tenant slug.
 * @throws ValidationError (`INVALID_SLUG`) saying which rule the slug breaks
 */
export function assertValidSlug(slug: string): void {
  if (typeof slug !== 'string' || !SLUG_PATTERN.test(slug)) {
    throw new ValidationError(
      `invalid tenant slug ${JSON.stringify(slug)}: use 3 to 32 characters, lower-case letters, digits and hyphens, starting with a letter and not ending with a hyphen`,
      { field: 'slug', pattern: SLUG_PATTERN.source },
      'INVALID_SLUG',
    );
  }
  if (RESERVED_SLUGS.has(slug)) {
    throw new ValidationError(`invalid tenant slug "${slug}": it is reserved`, { field: 'slug', reserved: true }, 'INVALID_SLUG');
  }
}

/** True when `slug` is a valid, unreserved tenant slug. */
export function isValidSlug(slug: string): boolean {
  return SLUG_PATTERN.test(slug) && !RESERVED_SLUGS.has(slug);
}

/**
 * Database name of a tenant made before opaque names (issue 15): `${prefix}${slug with - as _}`
 * (at most 16 + 32 = 48 characters). New tenants get {@link opaqueTenantName}; these stay.
 */
export function tenantDatabaseName(prefix: string, slug: string): string {
  assertValidSlug(slug);
  return assertSafeIdentifier(`${prefix}${slug.replaceAll('-', '_')}`, MAX_DATABASE_NAME);
}

/**
 * MySQL user name of a tenant: the database name when it fits in 32 characters, else
 * its first 23 characters, `_` and 8 hex characters of its SHA-256 (stable, unique).
 */
export function tenantUserName(prefix: string, slug: string): string {
  const db = tenantDatabaseName(prefix, slug);
  if (db.length <= MAX_USER_NAME) return db;
  const hash = createHash('sha256').update(db).digest('hex').slice(0, 8);
  return assertSafeIdentifier(`${db.slice(0, MAX_USER_NAME - 9)}_${hash}`, MAX_USER_NAME);
}

/** Lower-case base32 alphabet of RFC 4648 §6 (no `_`, no look-alikes 0/1/8/9). */
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
/** Characters of the random part of an opaque tenant name: 10 base32 characters = 50 bits. */
export const OPAQUE_ID_LENGTH = 10;

/**
 * A new tenant's database (and account) name: `${prefix}` + 10 random base32 characters,
 * e.g. `tenant_k3v9q2mz7a` (at most 16 + 10 = 26 characters, so it is also a valid user
 * name). It does not depend on the slug, so a slug can change without moving data; no
 * `_` beyond the prefix's own. 50 random bits: a collision is refused by the catalog's
 * unique (server, database) key and the create fails before any DDL.
 */
export function opaqueTenantName(prefix: string): string {
  let id = '';
  for (let i = 0; i < OPAQUE_ID_LENGTH; i++) id += BASE32[randomInt(32)];
  return assertSafeIdentifier(`${prefix}${id}`, MAX_USER_NAME);
}

/** Prefix of the placeholder slug of a pending tenant: `_` never starts a valid slug, so no request can name it. */
export const PENDING_SLUG_PREFIX = '_pending_';

/** The placeholder slug of a pending tenant whose database is `databaseName` (its random part). */
export function pendingSlug(prefix: string, databaseName: string): string {
  return `${PENDING_SLUG_PREFIX}${databaseName.slice(prefix.length)}`;
}

/** True for the placeholder slug of a pending tenant (provisioned ahead, not yet claimed by a signup). */
export function isPendingSlug(slug: string): boolean {
  return slug.startsWith(PENDING_SLUG_PREFIX);
}

/**
 * Checks that a name is a plain identifier (`[A-Za-z0-9_]`, 1..max characters).
 * @returns the name, for chaining
 * @throws ValidationError (`INVALID_IDENTIFIER`)
 */
export function assertSafeIdentifier(name: string, max = MAX_DATABASE_NAME): string {
  if (!SAFE_IDENTIFIER.test(name) || name.length > max) {
    throw new ValidationError(`unsafe identifier ${JSON.stringify(name)}`, { max }, 'INVALID_IDENTIFIER');
  }
  return name;
}

/** Back-quotes a checked identifier for SQL (MySQL §11.2: backtick quoting). */
export function quoteIdentifier(name: string): string {
  return `\`${assertSafeIdentifier(name)}\``;
}
