/**
 * Tenant user management: list, get, create, update (role, name, active, password reset),
 * deactivate. A user's role is given by name (`role`: a built-in or a custom role of the
 * tenant) or by id (`roleId`). The last active user holding `users:manage` and
 * `roles:manage` (the last admin, whatever its role) can be neither moved to a role without
 * them nor deactivated (409 `LAST_ADMIN`; see src/crm/roles.ts).
 */
import type { Knex } from 'knex';
import { z } from 'zod';
import { ConflictError, NotFoundError, ValidationError } from '../lib/errors.js';
import { assertAcceptablePassword, hashPassword } from '../lib/passwords.js';
import { emailSchema, pageOffset, parseInput } from '../lib/validation.js';
import { diff, logActivity } from './activity.js';
import { createAuthService } from './auth-service.js';
import { checkQuota, lockQuota, reserveQuota } from './quotas.js';
import { findRole, lastKeeperError, lockKeepers, roleName, type Role } from './roles.js';
import { createUsersRepository, type TenantUser, type UserRow } from './users-repository.js';

const roleId = z
  .number()
  .int()
  .positive()
  .max(2 ** 53 - 1);

/**
 * The role a body names (`role` or `roleId`, not both).
 * @throws ValidationError when neither or both are given (when `required`), or no such role exists in this tenant
 */
async function resolveRole(
  db: Knex | Knex.Transaction,
  input: { role?: string | undefined; roleId?: number | undefined },
  required: boolean,
): Promise<Role | undefined> {
  if (input.role !== undefined && input.roleId !== undefined) throw new ValidationError('give role or roleId, not both', { field: 'role' });
  if (input.role === undefined && input.roleId === undefined) {
    if (required) throw new ValidationError('role (a role name) or roleId is required', { field: 'role' });
    return undefined;
  }
  const found = await findRole(db, input.role !== undefined ? { name: input.role } : { id: input.roleId! });
  if (!found) {
    const field = input.role !== undefined ? 'role' : 'roleId';
    const message = `${input.role !== undefined ? `no role named ${input.role}` : `no role ${input.roleId}`} in this tenant (GET /api/v1/roles lists them)`;
    // Named as the request's validation names a body field.
    throw new ValidationError(message, { field, fields: [{ path: `body.${field}`, message }] });
  }
  return found;
}

/** Body of `POST /api/v1/users`. */
export const createUserBody = z
  .strictObject({
    email: emailSchema,
    fullName: z.string().trim().min(1).max(200).optional(),
    /** A role name (`admin`, `manager`, `staff` or a custom role); or `roleId`. */
    role: roleName.optional(),
    roleId: roleId.optional(),
    password: z.string().min(12).max(256),
  })
  .refine((b) => (b.role === undefined) !== (b.roleId === undefined), { message: 'give the role: role (a role name) or roleId, one of them', path: ['role'] });

/** Body of `PATCH /api/v1/users/:id`. */
export const updateUserBody = z.strictObject({
  fullName: z.string().trim().min(1).max(200).nullable().optional(),
  role: roleName.optional(),
  roleId: roleId.optional(),
  active: z.boolean().optional(),
  password: z.string().min(12).max(256).optional(),
  version: z.number().int().positive().optional(),
});

/** The comparable fields of a `users` row (for the activity log). */
function userView(r: UserRow) {
  return {
    id: Number(r.id),
    email: r.email,
    fullName: r.full_name,
    role: r.role,
    roleId: Number(r.role_id),
    active: Boolean(r.active),
    lastLoginAt: r.last_login_at,
  };
}

/** Hooks of {@link createUsersService}. */
export interface UsersServiceHooks {
  /**
   * Called after the commit of a change that moved a user's `token_version` (deactivation,
   * role change, password reset), so that the caller records it where every API process
   * looks (the tenant's `auth_version` in the catalog). When it throws, the update has
   * been committed and the error reaches the caller.
   */
  afterTokenVersionChange?: (userId: number) => Promise<void>;
}

/**
 * User management over a tenant's Knex.
 * @param actorId the acting user, recorded in the activity log (null: the platform)
 * @param maxUsers the plan's limit of active users (null: unlimited), checked by create and by reactivation
 */
export function createUsersService(knex: Knex, actorId: number | null = null, hooks: UsersServiceHooks = {}, maxUsers: number | null = null) {
  const repo = createUsersRepository(knex);

  async function get(id: number, trx?: Knex.Transaction): Promise<TenantUser> {
    const u = await repo.findById(id, trx);
    if (!u) throw new NotFoundError(`user ${id} not found`, 'USER_NOT_FOUND');
    return u;
  }

  return {
    get: (id: number) => get(id),

    /** Users by email, paginated. */
    async list(page: number, pageSize: number): Promise<{ data: TenantUser[]; total: number }> {
      const [rows, count] = await Promise.all([
        knex('users').orderBy('email').limit(pageSize).offset(pageOffset(page, pageSize)).select('id'),
        knex('users').count({ n: '*' }).first(),
      ]);
      const data = await Promise.all(rows.map((r: { id: number }) => get(Number(r.id))));
      return { data, total: Number(count?.n ?? 0) };
    },

    /** @throws ValidationError, ConflictError `USER_EXISTS`, QuotaExceededError (403 `QUOTA_EXCEEDED`) */
    async create(raw: z.input<typeof createUserBody>): Promise<TenantUser> {
      const input = parseInput(createUserBody, raw);
      assertAcceptablePassword(input.password);
      const passwordHash = await hashPassword(input.password);
      return knex.transaction(async (trx) => {
        await reserveQuota(trx, 'users', maxUsers, 1);
        const role = (await resolveRole(trx, input, true))!;
        const id = await repo.insert({ email: input.email, fullName: input.fullName ?? null, role: role.name, roleId: role.id, passwordHash }, trx);
        const created = await get(id, trx);
        await logActivity(trx, { userId: actorId, action: 'create', entity: 'user', entityId: id, changes: diff(null, created) });
        return created;
      });
    },

    /**
     * Updates a user. Deactivation, a role change and a password reset also bump the user's
     * `token_version` (its access tokens stop working) and then call `afterTokenVersionChange`;
     * deactivation and a password reset revoke its refresh tokens.
     * Reactivating a user is checked against the plan's limit of active users.
     * @throws NotFoundError; ConflictError `VERSION_CONFLICT` (stale version) or `LAST_ADMIN`; QuotaExceededError
     */
    async update(id: number, raw: z.input<typeof updateUserBody>): Promise<TenantUser> {
      const input = parseInput(updateUserBody, raw);
      if (input.password !== undefined) assertAcceptablePassword(input.password);
      const passwordHash = input.password ? await hashPassword(input.password) : undefined;
      let tokensChanged = false;
      const updated = await knex.transaction(async (trx) => {
        // A reactivation takes the users' quota lock first (before any other lock and read of the transaction: src/crm/quotas.ts).
        const limited = input.active === true && (await lockQuota(trx, 'users', maxUsers));
        const role = await resolveRole(trx, input, false);
        // A change that may remove a keeper (the last admin, whatever its role) locks the roles
        // and the active keepers before its own row, so that two admins demoting each other
        // queue (one consistent lock order, src/crm/roles.ts) instead of deadlocking.
        const keepers = role !== undefined || input.active === false ? await lockKeepers(trx) : undefined;
        const current = (await trx('users').where({ id }).forUpdate().first()) as UserRow | undefined;
        if (!current) throw new NotFoundError(`user ${id} not found`, 'USER_NOT_FOUND');
        if (input.version !== undefined && input.version !== current.version) {
          throw new ConflictError(`user ${id} was changed meanwhile (version ${current.version})`, 'VERSION_CONFLICT', { currentVersion: current.version });
        }
        if (limited && !current.active) await checkQuota(trx, 'users', maxUsers, 1);
        const losesKeeper =
          keepers !== undefined &&
          Boolean(current.active) &&
          keepers.roleIds.has(Number(current.role_id)) &&
          (input.active === false || (role !== undefined && !keepers.roleIds.has(role.id)));
        if (losesKeeper && keepers.userIds.filter((u) => u !== Number(id)).length === 0) throw lastKeeperError();
        const patch: Record<string, unknown> = { version: current.version + 1 };
        if (input.fullName !== undefined) patch.full_name = input.fullName;
        if (role) Object.assign(patch, { role: role.name, role_id: role.id });
        if (input.active !== undefined) patch.active = input.active;
        if (passwordHash) patch.password_hash = passwordHash;
        tokensChanged =
          (role !== undefined && role.id !== Number(current.role_id)) || (input.active === false && Boolean(current.active)) || passwordHash !== undefined;
        if (tokensChanged) patch.token_version = trx.raw('token_version + 1');
        await trx('users').where({ id }).update(patch);
        if (input.active === false || passwordHash) await createAuthService(knex).revokeUser(id, trx);
        const after = await get(id, trx);
        const changes = diff(userView(current), after);
        if (passwordHash) changes.password = { old: '[redacted]', new: '[redacted]' };
        await logActivity(trx, { userId: actorId, action: input.active === false ? 'delete' : 'update', entity: 'user', entityId: id, changes });
        return after;
      });
      if (tokensChanged) await hooks.afterTokenVersionChange?.(id);
      return updated;
    },

    /** Deactivates a user (rows that name it stay valid). @throws as {@link update} */
    async deactivate(id: number): Promise<TenantUser> {
      return this.update(id, { active: false });
    },
  };
}
