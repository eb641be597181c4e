/**
 * Invitations: a tenant admin invites an email address to join with a role; the mail's
 * one-time link (token stored as its SHA-256, valid 7 days) lets its reader choose a
 * password and become that user, signed in.
 *
 * - At most one invitation is open (not accepted, not revoked) per email: inviting an
 *   address again replaces its open invitation (the older link stops working), which is
 *   how an admin re-sends one.
 * - {@link createInvitationsService} `invite` delivers the mail after the commit (no
 *   transaction waits on SMTP); when delivery fails, the invitation is removed again and
 *   the one it replaced is open again, so the caller can simply retry.
 * - Acceptance is one use, even under concurrent accepts: the invitation row is locked,
 *   re-checked, marked accepted and the user inserted in one transaction.
 * - Every refusal of a token (unknown, malformed, expired, accepted, revoked) is the same
 *   400 `INVITATION_INVALID`, so answers tell nothing about which tokens exist.
 */
import type { Knex } from 'knex';
import { z } from 'zod';
import { ConflictError, NotFoundError, UnprocessableError, ValidationError } from '../lib/errors.js';
import { MysqlErrno, mysqlErrno } from '../lib/knex.js';
import { assertAcceptablePassword, hashPassword, MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from '../lib/passwords.js';
import { emailSchema, pageOffset, parseInput } from '../lib/validation.js';
import { diff, logActivity } from './activity.js';
import { createAuthService, type IssuedRefreshToken } from './auth-service.js';
import { findByToken, newToken } from './one-time-tokens.js';
import { findRole, roleName } from './roles.js';
import { createUsersRepository, type TenantUser } from './users-repository.js';

/** How long an invitation link works: 7 days, in ms. */
export const INVITATION_TTL_MS = 7 * 24 * 3600 * 1000;

/** Body of `POST /api/v1/invitations`. */
export const createInvitationBody = z.strictObject({
  email: emailSchema,
  role: roleName.describe('a role of the tenant: admin, manager, staff or a custom role (GET /api/v1/roles)'),
});

/** Body of `POST /api/v1/invitations/accept`. */
export const acceptInvitationBody = z.strictObject({
  token: z.string().min(1).max(200).describe('the token of the link in the invitation mail'),
  password: z.string().min(MIN_PASSWORD_LENGTH).max(MAX_PASSWORD_LENGTH),
  fullName: z.string().trim().min(1).max(200),
});

/** An invitation as admins see it (never the token nor its hash). */
export interface Invitation {
  id: number;
  email: string;
  /** The role's name. */
  role: string;
  /** The admin who invited (null: the platform). */
  invitedBy: number | null;
  expiresAt: Date;
  createdAt: Date;
}

/** A row of a tenant's `invitations` table. */
interface InvitationRow {
  id: number;
  email: string;
  role: string;
  token_hash: string;
  invited_by: number | null;
  expires_at: Date;
  accepted_at: Date | null;
  accepted_user_id: number | null;
  revoked_at: Date | null;
  created_at: Date;
}

const toInvitation = (r: InvitationRow): Invitation => ({
  id: Number(r.id),
  email: r.email,
  role: r.role,
  invitedBy: r.invited_by === null ? null : Number(r.invited_by),
  expiresAt: r.expires_at,
  createdAt: r.created_at,
});

/** Open (neither accepted nor revoked) and not expired at `now`. */
const usable = (r: InvitationRow | undefined, now = Date.now()): r is InvitationRow =>
  r !== undefined && r.accepted_at === null && r.revoked_at === null && new Date(r.expires_at).getTime() > now;

/** The one answer to every token that cannot be accepted. */
const invalid = () =>
  new ValidationError(
    'this invitation link is not valid (unknown, expired, already used or revoked): ask for a new invitation',
    { field: 'token' },
    'INVITATION_INVALID',
  );

/** What {@link createInvitationsService} `accept` returns: the new user, signed in. */
export interface AcceptedInvitation {
  user: TenantUser;
  /** The new user's `token_version` (for its access token). */
  tokenVersion: number;
  refresh: IssuedRefreshToken;
}

/**
 * Invitations over a tenant's Knex.
 * @param actorId the acting admin, recorded as `invited_by` (null: the platform)
 */
export function createInvitationsService(knex: Knex, actorId: number | null = null) {
  const users = createUsersRepository(knex);

  /** A token's row (locked FOR UPDATE within `trx`), undefined for a malformed or unknown token. */
  const byToken = (token: string, trx?: Knex.Transaction) => findByToken<InvitationRow>(knex, 'invitations', token, trx);

  return {
    /**
     * Invites an email address: replaces the address's open invitation, if any, commits,
     * then calls `deliver` with the new invitation and its token (shown nowhere else).
     * When `deliver` throws, the new invitation is deleted and the replaced one reopened
     * (unless another was made meanwhile), then the error is rethrown.
     * @throws ValidationError; ConflictError `USER_EXISTS` (a user, active or not, has this
     *         email: an inactive one is reactivated instead); what `deliver` throws
     */
    async invite(raw: z.input<typeof createInvitationBody>, deliver: (invitation: Invitation, token: string) => Promise<void>): Promise<Invitation> {
      const input = parseInput(createInvitationBody, raw);
      const { token, hash } = newToken();
      const { invitation, replaced } = await knex.transaction(async (trx) => {
        const role = await findRole(trx, { name: input.role });
        if (!role) throw new UnprocessableError(`no role named ${input.role}`, 'INVALID_REFERENCE', { field: 'role' });
        if (await users.findForLogin(input.email, trx)) {
          throw new ConflictError(`a user with email ${input.email} already exists`, 'USER_EXISTS', { field: 'email' });
        }
        const open = (await trx('invitations').where({ open_email: input.email }).forUpdate().first()) as InvitationRow | undefined;
        const revokedAt = new Date();
        if (open) await trx('invitations').where({ id: open.id }).update({ revoked_at: revokedAt });
        try {
          const [id] = await trx('invitations').insert({
            email: input.email,
            role: role.name,
            token_hash: hash,
            invited_by: actorId,
            expires_at: new Date(Date.now() + INVITATION_TTL_MS),
          });
          const row = (await trx<InvitationRow>('invitations').where({ id }).first()) as InvitationRow;
          return { invitation: toInvitation(row), replaced: open && { id: open.id, revokedAt } };
        } catch (err) {
          // Another invitation of this email was inserted meanwhile (it held no row to lock yet).
          if (mysqlErrno(err) === MysqlErrno.DUP_ENTRY) throw new ConflictError(`${input.email} is being invited right now`, 'INVITATION_CONFLICT');
          throw err;
        }
      });
      try {
        await deliver(invitation, token);
      } catch (err) {
        await knex.transaction(async (trx) => {
          await trx('invitations').where({ id: invitation.id }).delete();
          if (replaced) {
            await trx('invitations')
              .where({ id: replaced.id, revoked_at: replaced.revokedAt })
              .update({ revoked_at: null })
              .catch((e: unknown) => {
                // Another open invitation of the address exists by now: the replaced one stays closed.
                if (mysqlErrno(e) !== MysqlErrno.DUP_ENTRY) throw e;
              });
          }
        });
        throw err;
      }
      return invitation;
    },

    /** Pending invitations (open, not expired), newest first, paginated. */
    async list(page: number, pageSize: number): Promise<{ data: Invitation[]; total: number }> {
      const pending = () => knex('invitations').whereNull('accepted_at').whereNull('revoked_at').where('expires_at', '>', new Date());
      const [rows, count] = await Promise.all([
        pending().orderBy('id', 'desc').limit(pageSize).offset(pageOffset(page, pageSize)).select<InvitationRow[]>('*'),
        pending().count({ n: '*' }).first(),
      ]);
      return { data: rows.map(toInvitation), total: Number(count?.n ?? 0) };
    },

    /**
     * Revokes an open invitation: its link stops working.
     * @throws NotFoundError `INVITATION_NOT_FOUND` (unknown, accepted or already revoked)
     */
    async revoke(id: number): Promise<void> {
      const n = await knex('invitations').where({ id }).whereNull('accepted_at').whereNull('revoked_at').update({ revoked_at: new Date() });
      if (n === 0) throw new NotFoundError(`invitation ${id} not found (or no longer open)`, 'INVITATION_NOT_FOUND');
    },

    /**
     * Accepts an invitation: creates its user (email and role of the invitation, the
     * chosen password and name), marks the invitation accepted and opens a session, in one
     * transaction.
     * @param generation the tenant's token generation (the refresh token carries it)
     * @throws ValidationError `WEAK_PASSWORD`, `INVITATION_INVALID` (any token that cannot be
     *         accepted); ConflictError `USER_EXISTS` (a user got this email meanwhile)
     */
    async accept(raw: z.input<typeof acceptInvitationBody>, generation: number): Promise<AcceptedInvitation> {
      const input = parseInput(acceptInvitationBody, raw);
      assertAcceptablePassword(input.password);
      // A token that cannot be accepted costs no hashing.
      if (!usable(await byToken(input.token))) throw invalid();
      const passwordHash = await hashPassword(input.password);
      return knex.transaction(async (trx) => {
        const row = await byToken(input.token, trx);
        if (!usable(row)) throw invalid();
        // The role, locked shared so it cannot be deleted before the user holds it; deleted meanwhile: unusable.
        const role = await trx<{ id: number; name: string }>('roles').where({ name: row.role }).forShare().first('id', 'name');
        if (!role) throw invalid();
        const id = await users.insert({ email: row.email, fullName: input.fullName, passwordHash, role: role.name, roleId: Number(role.id) }, trx);
        await trx('invitations').where({ id: row.id }).update({ accepted_at: new Date(), accepted_user_id: id });
        const user = (await users.findById(id, trx))!;
        await logActivity(trx, { userId: id, action: 'create', entity: 'user', entityId: id, changes: diff(null, user) });
        const refresh = await createAuthService(knex, generation).openSession(id, trx);
        return { user, tokenVersion: 0, refresh };
      });
    },
  };
}
