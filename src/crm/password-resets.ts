/**
 * Password resets of tenant users: "forgot password" makes a one-time token (stored as
 * its SHA-256, valid 1 hour) for an active user's email; the link's token then sets a new
 * password once. A reset moves the user's `token_version` (its access tokens stop
 * working), revokes its refresh tokens and uses up every other open reset of the user, in
 * the transaction that sets the password.
 *
 * Every refusal of a token (unknown, malformed, expired, used, user deactivated) is the
 * same 400 `RESET_TOKEN_INVALID`.
 */
import type { Knex } from 'knex';
import { z } from 'zod';
import { ValidationError } from '../lib/errors.js';
import { assertAcceptablePassword, hashPassword, MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from '../lib/passwords.js';
import { emailSchema, parseInput } from '../lib/validation.js';
import { logActivity } from './activity.js';
import { createAuthService } from './auth-service.js';
import { findByToken, newToken } from './one-time-tokens.js';
import { createUsersRepository, type TenantUser, type UserRow } from './users-repository.js';

/** How long a reset link works: 1 hour, in ms. */
export const RESET_TTL_MS = 3600 * 1000;
/** Reset mails one user gets at most per hour; further requests send nothing (the answer is the same). */
export const MAX_RESETS_PER_HOUR = 3;

/** Body of `POST /api/v1/auth/forgot-password`. */
export const forgotPasswordBody = z.strictObject({ email: emailSchema });

/** Body of `POST /api/v1/auth/reset-password`. */
export const resetPasswordBody = z.strictObject({
  token: z.string().min(1).max(200).describe('the token of the link in the reset mail'),
  password: z.string().min(MIN_PASSWORD_LENGTH).max(MAX_PASSWORD_LENGTH),
});

/** A row of a tenant's `password_resets` table. */
interface ResetRow {
  id: number;
  user_id: number;
  token_hash: string;
  expires_at: Date;
  used_at: Date | null;
  created_at: Date;
}

const usable = (r: ResetRow | undefined): r is ResetRow => r !== undefined && r.used_at === null && new Date(r.expires_at).getTime() > Date.now();

const invalid = () =>
  new ValidationError('this password reset link is not valid (unknown, expired or already used): ask for a new one', { field: 'token' }, 'RESET_TOKEN_INVALID');

/** Hooks of {@link createPasswordResetsService}. */
export interface PasswordResetsHooks {
  /** Called after the commit of a reset (the user's `token_version` moved); see `UsersServiceHooks`. */
  afterTokenVersionChange?: (userId: number) => Promise<void>;
}

/** Password resets over a tenant's Knex. */
export function createPasswordResetsService(knex: Knex, hooks: PasswordResetsHooks = {}) {
  const users = createUsersRepository(knex);

  /** A token's row (locked FOR UPDATE within `trx`), undefined for a malformed or unknown token. */
  const byToken = (token: string, trx?: Knex.Transaction) => findByToken<ResetRow>(knex, 'password_resets', token, trx);

  return {
    /**
     * Makes a reset token for the active user with this email, unless it got
     * {@link MAX_RESETS_PER_HOUR} in the last hour.
     * @returns the user and the token (to mail), or undefined when nothing is to be sent
     *          (no such user, deactivated, over the limit)
     * @throws ValidationError for a malformed email
     */
    async request(email: string): Promise<{ user: TenantUser; token: string; expiresAt: Date } | undefined> {
      const input = parseInput(forgotPasswordBody, { email });
      const user = await users.findForLogin(input.email);
      if (!user?.active) return undefined;
      const { token, hash } = newToken();
      const expiresAt = new Date(Date.now() + RESET_TTL_MS);
      // Count and insert under the user's row lock, so concurrent requests cannot all pass the
      // cap: the locking read comes first, so the count (the transaction's first plain read, whose
      // snapshot starts there under REPEATABLE READ) sees every reset committed before the lock.
      const made = await knex.transaction(async (trx) => {
        await trx('users').where({ id: user.id }).forUpdate().first('id');
        const recent = await trx('password_resets')
          .where({ user_id: user.id })
          .where('created_at', '>', new Date(Date.now() - 3600 * 1000))
          .count({ n: '*' })
          .first();
        if (Number(recent?.n ?? 0) >= MAX_RESETS_PER_HOUR) return false;
        await trx('password_resets').insert({ user_id: user.id, token_hash: hash, expires_at: expiresAt });
        return true;
      });
      if (!made) return undefined;
      const { passwordHash: _, tokenVersion: __, ...safe } = user;
      return { user: safe, token, expiresAt };
    },

    /**
     * Sets a new password with a reset token (once), bumps the user's `token_version`,
     * revokes its refresh tokens and uses up its other open resets; then calls
     * `afterTokenVersionChange`. A refused password changes nothing and keeps the token.
     * @returns the user's id
     * @throws ValidationError `WEAK_PASSWORD`, `RESET_TOKEN_INVALID`
     */
    async reset(raw: z.input<typeof resetPasswordBody>): Promise<number> {
      const input = parseInput(resetPasswordBody, raw);
      assertAcceptablePassword(input.password);
      if (!usable(await byToken(input.token))) throw invalid();
      const passwordHash = await hashPassword(input.password);
      const userId = await knex.transaction(async (trx) => {
        const row = await byToken(input.token, trx);
        if (!usable(row)) throw invalid();
        const user = (await trx('users').where({ id: row.user_id }).forUpdate().first()) as UserRow | undefined;
        if (!user?.active) throw invalid();
        const id = Number(user.id);
        await trx('users')
          .where({ id })
          .update({ password_hash: passwordHash, version: user.version + 1, token_version: trx.raw('token_version + 1') });
        await trx('password_resets').where({ user_id: id }).whereNull('used_at').update({ used_at: new Date() });
        await createAuthService(knex).revokeUser(id, trx);
        await logActivity(trx, { userId: id, action: 'update', entity: 'user', entityId: id, changes: { password: { old: '[redacted]', new: '[redacted]' } } });
        return id;
      });
      await hooks.afterTokenVersionChange?.(userId);
      return userId;
    },
  };
}
