/**
 * Self-service signup (`POST /platform/v1/signup`): a customer makes a tenant and its first
 * admin in one call, and is signed in.
 *
 * 1. Checks, before anything is written: the body (slug, name, email, password), the
 *    password's strength (`src/lib/password-strength.ts`), and that the slug is neither
 *    taken nor reserved (the claim checks it again, atomically).
 * 2. Hashes the password (argon2id), then claims a pending tenant
 *    (`src/provisioning/pending-tenants.ts`): one catalog transaction.
 * 3. With no pending tenant left, provisions one now (the same steps, ~50 ms) and claims
 *    that one; if the claim fails (the slug was taken meanwhile), the tenant made for it is
 *    discarded: database, account and catalog row.
 * So whatever fails, no database, account or catalog row carries the signup's slug, and
 * a pending tenant that was tried stays pending. The tenant starts unverified: the admin
 * gets a link by mail (`verifySignup`); unverified tenants are deleted after
 * `SILO_SIGNUP_VERIFY_TTL_HOURS` by the maintenance run (`purgeUnverifiedTenants`).
 */
import { z } from 'zod';
import type { Tenant } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { hashToken, looksLikeToken, newToken } from '../crm/one-time-tokens.js';
import { safeErrorText } from '../lib/error-text.js';
import { ConflictError, NotFoundError, SiloError, ValidationError } from '../lib/errors.js';
import { isPendingSlug, isValidSlug, SLUG_PATTERN } from '../lib/identifiers.js';
import { assertStrongPassword } from '../lib/password-strength.js';
import { hashPassword } from '../lib/passwords.js';
import { emailSchema } from '../lib/validation.js';
import { claimPendingTenant, type ClaimedTenant } from '../provisioning/pending-tenants.js';
import { createPendingTenant } from '../provisioning/tenant-create.js';
import { discardTenant } from '../provisioning/tenant-discard.js';

/** Body of a signup. */
export const signupInput = z.strictObject({
  slug: z.string().max(64).describe('3-32 of a-z 0-9 -, starting with a letter: the tenant is <slug>.<base domain>'),
  name: z.string().trim().min(1).max(200),
  email: z.string().max(254),
  password: z.string().max(256),
  fullName: z.string().trim().min(1).max(200).optional(),
});
export type SignupInput = z.input<typeof signupInput>;

/** Plan of tenants made by a signup. */
export const SIGNUP_PLAN = 'standard';

/** What a signup made; `verifyToken` goes into the verification link only (never logged or answered). */
export interface SignupResult extends ClaimedTenant {
  /** True when a pending tenant was claimed, false when one was provisioned for this signup. */
  fromPending: boolean;
  verifyToken: string;
}

/**
 * Validates a signup body: every bad field is reported at once, as `fields`.
 * @throws ValidationError `VALIDATION_FAILED`
 */
async function validate(raw: SignupInput): Promise<{ slug: string; name: string; email: string; password: string; fullName: string | null }> {
  const fields: Array<{ path: string; message: string }> = [];
  if (!isValidSlug(raw.slug))
    fields.push({
      path: 'slug',
      message: SLUG_PATTERN.test(raw.slug)
        ? 'is reserved'
        : 'must be 3 to 32 lower-case letters, digits and hyphens, starting with a letter and not ending with a hyphen',
    });
  const email = emailSchema.safeParse(raw.email);
  if (!email.success) fields.push({ path: 'email', message: 'must be an email address' });
  if (fields.length) throw new ValidationError(`invalid signup: ${fields.map((f) => `${f.path} ${f.message}`).join('; ')}`, { fields });
  await assertStrongPassword(raw.password, [raw.slug, raw.name, raw.email, raw.fullName ?? '']);
  return { slug: raw.slug, name: raw.name, email: email.data!, password: raw.password, fullName: raw.fullName ?? null };
}

/**
 * Refuses a slug that is taken (by any tenant, also a deleted one) or reserved by a
 * rename, before any work (the claim checks again in its transaction).
 * @throws ConflictError `TENANT_EXISTS`
 */
async function assertSlugFree(ctx: SiloContext, slug: string): Promise<void> {
  const taken = await ctx.catalog.tenants.findBySlug(slug);
  const reserved: { slug: string } | undefined = taken
    ? undefined
    : await ctx.catalog.knex('slug_reservations').where({ slug }).where('reserved_until', '>', ctx.catalog.knex.raw('CURRENT_TIMESTAMP(3)')).first('slug');
  if (taken || reserved) throw new ConflictError(`tenant "${slug}" already exists`, 'TENANT_EXISTS', { slug });
}

/**
 * Signs a customer up (see the module comment).
 * @throws ValidationError `VALIDATION_FAILED` (bad slug, email, weak password); ConflictError `TENANT_EXISTS`;
 *         OperationFailedError when provisioning fails (nothing is left)
 */
export async function signup(ctx: SiloContext, raw: SignupInput, actor: string): Promise<SignupResult> {
  const input = await validate(raw);
  await assertSlugFree(ctx, input.slug);
  const { token: verifyToken, hash: verifyTokenHash } = newToken();
  const claim = {
    slug: input.slug,
    name: input.name,
    plan: SIGNUP_PLAN,
    adminEmail: input.email,
    adminFullName: input.fullName,
    passwordHash: await hashPassword(input.password),
    unverified: true,
    verifyTokenHash,
  };
  // A tenant provisioned here can be claimed by a signup that arrives meanwhile (its
  // claim of any pending tenant sees it): then this one goes round again.
  for (let round = 0; round < 3; round++) {
    const claimed = await claimPendingTenant(ctx, claim, actor);
    if (claimed) return { ...claimed, fromPending: round === 0, verifyToken };
    // None pending: provision one for this signup, and claim exactly that one.
    const made = await createPendingTenant(ctx, actor).catch(async (err: unknown) => {
      await discardIfUnclaimed(ctx, await failedTenantOf(ctx, err), actor);
      throw err;
    });
    try {
      const own = await claimPendingTenant(ctx, claim, actor, made.tenant.id);
      if (own) return { ...own, fromPending: false, verifyToken };
    } catch (err) {
      await discardIfUnclaimed(ctx, made.tenant.id, actor);
      throw err;
    }
  }
  throw new SiloError('signups are arriving faster than tenants can be provisioned; retry in a few seconds', { code: 'SIGNUP_BUSY', status: 503 });
}

/** The id of the tenant a failed create names (its operation's tenant), if any. */
async function failedTenantOf(ctx: SiloContext, err: unknown): Promise<number | undefined> {
  const operationId = (err as { details?: { operationId?: number } }).details?.operationId;
  if (!operationId) return undefined;
  return (await ctx.catalog.operations.get(operationId))?.tenantId ?? undefined;
}

/** Discards tenant `id` if it still has its placeholder slug (nobody claimed it); errors are logged, never thrown. */
async function discardIfUnclaimed(ctx: SiloContext, id: number | undefined, actor: string): Promise<void> {
  if (id === undefined) return;
  try {
    const tenant = await ctx.catalog.tenants.findById(id);
    if (tenant && isPendingSlug(tenant.slug)) await discardTenant(ctx, tenant, actor);
  } catch (err) {
    ctx.log.warn({ err, tenantId: id }, `could not discard the tenant provisioned for a failed signup: ${safeErrorText(err)}`);
  }
}

/**
 * Verifies a signup's email with the token of its link: the tenant is no longer unverified.
 * Verifying twice is not an error (the token is forgotten, so the second time is 404).
 * @throws NotFoundError `VERIFICATION_NOT_FOUND` for an unknown or used token
 */
export async function verifySignup(ctx: SiloContext, token: string): Promise<Tenant> {
  if (!looksLikeToken(token)) throw new NotFoundError('this verification link is not valid (or was used already)', 'VERIFICATION_NOT_FOUND');
  const row: { id: number } | undefined = await ctx.catalog
    .knex('tenants')
    .where({ verify_token_hash: hashToken(token) })
    .whereNot('status', 'deleted')
    .first('id');
  if (!row) throw new NotFoundError('this verification link is not valid (or was used already)', 'VERIFICATION_NOT_FOUND');
  await ctx.catalog.knex('tenants').where({ id: row.id }).update({ unverified_since: null, verify_token_hash: null });
  const tenant = (await ctx.catalog.tenants.findById(row.id))!;
  ctx.events.emit('tenantChanged', tenant.slug);
  return tenant;
}

/**
 * Deletes tenants whose signup was not verified within `ttlHours` (database, account and
 * catalog row: their slug is free again).
 * @returns the slugs deleted
 */
export async function purgeUnverifiedTenants(ctx: SiloContext, ttlHours: number, actor = 'silo:maintenance'): Promise<string[]> {
  const stale = (await ctx.catalog
    .knex('tenants')
    .whereNotNull('unverified_since')
    .whereNot('status', 'deleted')
    .where('unverified_since', '<', ctx.catalog.knex.raw('CURRENT_TIMESTAMP(3) - INTERVAL ? HOUR', [ttlHours]))
    .pluck('id')) as number[];
  const done: string[] = [];
  for (const id of stale) {
    const tenant = await ctx.catalog.tenants.findById(id);
    if (!tenant) continue;
    try {
      await discardTenant(ctx, tenant, actor);
      done.push(tenant.slug);
    } catch (err) {
      ctx.log.warn({ err, tenant: tenant.slug }, 'could not delete an unverified signup tenant');
    }
  }
  return done;
}
