/**
 * Tenant sign-in and refresh tokens. Refresh tokens are opaque random values stored as
 * SHA-256 hashes; each refresh rotates the token, and presenting an already rotated or
 * revoked token revokes its whole family (OAuth 2.0 Security BCP, RFC 9700 §4.14.2).
 * A refresh token is `<generation>.<random>`: it names the tenant generation it was issued
 * in (the hash covers both parts), so one of an earlier generation is refused even when a
 * restore brought its row back.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { UnauthorizedError } from '../lib/errors.js';
import { verifyPasswordOrDummy } from '../lib/passwords.js';
import { createUsersRepository, type TenantUser } from './users-repository.js';

/** Refresh token lifetime: 7 days, in ms. */
export const REFRESH_TTL_MS = 7 * 24 * 3600 * 1000;

const sha256 = (v: string) => createHash('sha256').update(v).digest('hex');

/** A row of a tenant's `refresh_tokens` table. */
interface RefreshTokenRow {
  id: number;
  token_hash: string;
  user_id: number;
  family_id: string;
  expires_at: Date | string;
  rotated_at: Date | null;
  revoked_at: Date | null;
}

/**
 * The tenant generation a refresh token was issued in (1 for tokens of the old format,
 * issued before generations existed).
 */
export function refreshTokenGeneration(token: string): number {
  const m = /^(\d{1,9})\./.exec(token);
  return m ? Number(m[1]) : 1;
}

/** A new refresh token (shown once to the client) and its expiry. */
export interface IssuedRefreshToken {
  token: string;
  expiresAt: Date;
}

/**
 * Sign-in and refresh-token rotation over a tenant's Knex.
 * @param generation the tenant's current token generation (`tenants.generation`): new
 *        refresh tokens carry it, and refresh refuses tokens of another one
 */
export function createAuthService(knex: Knex, generation = 1) {
  const users = createUsersRepository(knex);

  async function issue(userId: number, familyId: string, trx?: Knex.Transaction): Promise<IssuedRefreshToken> {
    const token = `${generation}.${randomBytes(32).toString('base64url')}`;
    const expiresAt = new Date(Date.now() + REFRESH_TTL_MS);
    await (trx ?? knex)('refresh_tokens').insert({ user_id: userId, token_hash: sha256(token), family_id: familyId, expires_at: expiresAt });
    return { token, expiresAt };
  }

  return {
    /**
     * Checks email and password.
     * @throws UnauthorizedError `INVALID_CREDENTIALS` (same answer for unknown email, wrong password, deactivated user)
     */
    async login(email: string, password: string): Promise<{ user: TenantUser; tokenVersion: number; refresh: IssuedRefreshToken }> {
      const user = await users.findForLogin(email.trim().toLowerCase());
      // Unknown email: a dummy hash is verified instead, so the answer takes the same time.
      const ok = await verifyPasswordOrDummy(user?.passwordHash, password);
      if (!user || !ok || !user.active) throw new UnauthorizedError('email or password is wrong', 'INVALID_CREDENTIALS');
      await knex('users').where({ id: user.id }).update({ last_login_at: new Date() });
      const { passwordHash: _, tokenVersion, ...safe } = user;
      return { user: safe, tokenVersion, refresh: await issue(user.id, randomUUID()) };
    },

    /**
     * Rotates a refresh token.
     * @returns the user, its current `token_version` (for the new access token) and the new refresh token
     * @throws UnauthorizedError `TOKEN_REVOKED` (issued in another tenant generation),
     *         `INVALID_REFRESH_TOKEN` (unknown, expired, user inactive),
     *         `REFRESH_TOKEN_REUSED` (already rotated or revoked: the family is revoked)
     */
    async refresh(token: string): Promise<{ user: TenantUser; tokenVersion: number; refresh: IssuedRefreshToken }> {
      if (refreshTokenGeneration(token) !== generation) throw new UnauthorizedError('this refresh token was revoked: sign in again', 'TOKEN_REVOKED');
      return knex
        .transaction(async (trx) => {
          const row = (await trx('refresh_tokens')
            .where({ token_hash: sha256(token) })
            .forUpdate()
            .first()) as RefreshTokenRow | undefined;
          if (!row) throw new UnauthorizedError('refresh token is not valid', 'INVALID_REFRESH_TOKEN');
          if (row.rotated_at || row.revoked_at) {
            await trx('refresh_tokens').where({ family_id: row.family_id }).whereNull('revoked_at').update({ revoked_at: new Date() });
            // Commit the revocation, then refuse: the throw below would roll it back.
            return { reused: true } as never;
          }
          if (new Date(row.expires_at).getTime() <= Date.now()) throw new UnauthorizedError('refresh token has expired', 'INVALID_REFRESH_TOKEN');
          const user = await users.findById(Number(row.user_id), trx);
          const state = user && (await users.findTokenState(user.id, trx));
          if (!user || !state || !user.active) throw new UnauthorizedError('refresh token is not valid', 'INVALID_REFRESH_TOKEN');
          await trx('refresh_tokens').where({ id: row.id }).update({ rotated_at: new Date() });
          return { user, tokenVersion: state.tokenVersion, refresh: await issue(user.id, row.family_id, trx) };
        })
        .then((r: { reused?: boolean } & { user: TenantUser; tokenVersion: number; refresh: IssuedRefreshToken }) => {
          if (r.reused) throw new UnauthorizedError('refresh token was already used: every session of this sign-in is revoked', 'REFRESH_TOKEN_REUSED');
          return r;
        });
    },

    /**
     * Opens a session for a user who just proved who they are another way (accepted an
     * invitation): a refresh token of a new family.
     */
    async openSession(userId: number, trx?: Knex.Transaction): Promise<IssuedRefreshToken> {
      return issue(userId, randomUUID(), trx);
    },

    /** Revokes the family of a refresh token (logout). Unknown tokens are ignored. */
    async logout(token: string): Promise<void> {
      const row = await knex<RefreshTokenRow>('refresh_tokens')
        .where({ token_hash: sha256(token) })
        .first('family_id');
      if (row) await knex('refresh_tokens').where({ family_id: row.family_id }).whereNull('revoked_at').update({ revoked_at: new Date() });
    },

    /**
     * Signs a user in without a password check, for a user just made by a flow that proved
     * who they are (a signup, an accepted invitation): a new refresh token family.
     */
    async issueFor(userId: number, trx?: Knex.Transaction): Promise<IssuedRefreshToken> {
      return issue(userId, randomUUID(), trx);
    },

    /** Revokes every refresh token of a user (deactivation, password reset). */
    async revokeUser(userId: number, trx?: Knex.Transaction): Promise<void> {
      await (trx ?? knex)('refresh_tokens').where({ user_id: userId }).whereNull('revoked_at').update({ revoked_at: new Date() });
    },
  };
}
