/**
 * Tenant roles: named sets of permissions (src/crm/permissions.ts); a user has one.
 * The built-in `admin`, `manager` and `staff` are seeded by tenant migration 0015, hold
 * the permissions the code defines for them, and can be neither changed nor deleted
 * (409 `ROLE_BUILT_IN`). A custom role's permissions are a JSON array in `roles`; its name
 * is fixed at creation (users' `role` column repeats it, kept in step by a foreign key).
 *
 * The keeper rule (the "last admin" rule, for any role): while the tenant has an active
 * user, one of them holds both `users:manage` and `roles:manage`. A change that would
 * remove the last such user (a role change, a deactivation, a role losing one of those
 * permissions) is 409 `LAST_ADMIN`. Every such change locks the `roles` rows first, then
 * the keepers' `users` rows, so concurrent changes queue in one lock order.
 */
import type { Knex } from 'knex';
import { z } from 'zod';
import { ConflictError, NotFoundError, ValidationError } from '../lib/errors.js';
import { MysqlErrno, mysqlErrno } from '../lib/knex.js';
import { pageOffset, parseInput } from '../lib/validation.js';
import { diff, logActivity } from './activity.js';
import { assertVersion } from './common.js';
import { BUILT_IN_PERMISSIONS, isBuiltInRole, isPermission, KEEPER_PERMISSIONS, PERMISSION_NAMES, type Permission } from './permissions.js';

/** A role as the services and the API see it. */
export interface Role {
  id: number;
  name: string;
  description: string | null;
  permissions: Permission[];
  builtIn: boolean;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

/** A row of a tenant's `roles` table. */
interface RoleRow {
  id: number;
  name: string;
  description: string | null;
  permissions: string | string[] | null;
  built_in: number | boolean;
  version: number;
  created_at: Date;
  updated_at: Date;
}

/** A role name: letters, digits, `-`, `_`, `.`, starting with a letter or digit. */
export const roleName = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a role name is 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit');

const permissionList = z.array(z.string().max(100)).max(PERMISSION_NAMES.length * 2);

/** Body of `POST /api/v1/roles`. */
export const createRoleBody = z.strictObject({
  name: roleName,
  description: z.string().trim().max(500).nullable().optional(),
  permissions: permissionList,
});

/** Body of `PATCH /api/v1/roles/:id`. */
export const updateRoleBody = z.strictObject({
  description: z.string().trim().max(500).nullable().optional(),
  permissions: permissionList.optional(),
  version: z.number().int().positive().optional(),
});

/** The permissions of a role row: the code's for a built-in, the stored list (known names only) otherwise. */
function permissionsOf(row: Pick<RoleRow, 'name' | 'built_in' | 'permissions'>): Permission[] {
  if (row.built_in && isBuiltInRole(row.name)) return [...BUILT_IN_PERMISSIONS[row.name]];
  const stored: unknown = typeof row.permissions === 'string' ? JSON.parse(row.permissions) : row.permissions;
  const names = new Set(Array.isArray(stored) ? stored.filter((p): p is string => typeof p === 'string') : []);
  return PERMISSION_NAMES.filter((p) => names.has(p));
}

const toRole = (r: RoleRow): Role => ({
  id: Number(r.id),
  name: r.name,
  description: r.description,
  permissions: permissionsOf(r),
  builtIn: Boolean(r.built_in),
  version: r.version,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/**
 * Checks a permission list: every name known, no duplicates kept.
 * @returns the names in catalogue order
 * @throws ValidationError listing the unknown names (`details.unknown`)
 */
export function checkPermissions(names: readonly string[]): Permission[] {
  const unknown = [...new Set(names.filter((n) => !isPermission(n)))];
  if (unknown.length) {
    throw new ValidationError(`unknown permission(s): ${unknown.join(', ')}`, {
      field: 'permissions',
      unknown,
      fields: [{ path: 'permissions', message: `unknown: ${unknown.join(', ')}` }],
    });
  }
  return PERMISSION_NAMES.filter((p) => names.includes(p));
}

/** A role by id or by name (case-insensitive, as the unique index compares), if any. */
export async function findRole(db: Knex | Knex.Transaction, ref: { id: number } | { name: string }): Promise<Role | undefined> {
  const row = (await db('roles')
    .where('id' in ref ? { id: ref.id } : { name: ref.name })
    .first()) as RoleRow | undefined;
  return row && toRole(row);
}

/** Whether a permission set keeps the tenant manageable (see the module comment). */
export const isKeeper = (permissions: readonly Permission[]) => KEEPER_PERMISSIONS.every((p) => permissions.includes(p));

/**
 * Locks every role (in id order), then the active keepers (users whose role holds the
 * keeper permissions), as roles would be after `override`.
 * @returns the keeper role ids and the keepers' user ids (as of the locks)
 */
export async function lockKeepers(
  trx: Knex.Transaction,
  override?: { roleId: number; permissions: Permission[] },
): Promise<{ roleIds: Set<number>; userIds: number[] }> {
  const rows = await trx('roles').orderBy('id').forUpdate().select<RoleRow[]>('id', 'name', 'built_in', 'permissions');
  const roleIds = new Set(
    rows.filter((r) => isKeeper(override && Number(r.id) === override.roleId ? override.permissions : permissionsOf(r))).map((r) => Number(r.id)),
  );
  const users = roleIds.size
    ? await trx('users')
        .whereIn('role_id', [...roleIds])
        .where({ active: true })
        .orderBy('id')
        .forUpdate()
        .select<Array<{ id: number }>>('id')
    : [];
  return { roleIds, userIds: users.map((u) => Number(u.id)) };
}

const lastKeeper = () =>
  new ConflictError('no active user would be left who holds users:manage and roles:manage (the last admin)', 'LAST_ADMIN', { required: KEEPER_PERMISSIONS });

/** Hooks of {@link createRolesService}. */
export interface RolesServiceHooks {
  /** Called after the commit of any roles write (to drop this process's cached permissions at once). */
  afterChange?: () => void;
}

/**
 * Role management over a tenant's Knex.
 * @param actorId the acting user, recorded in the activity log (null: the platform)
 */
export function createRolesService(knex: Knex, actorId: number | null = null, hooks: RolesServiceHooks = {}) {
  async function get(id: number, trx?: Knex.Transaction): Promise<Role> {
    const r = await findRole(trx ?? knex, { id });
    if (!r) throw new NotFoundError(`role ${id} not found`, 'ROLE_NOT_FOUND');
    return r;
  }
  const view = (r: Role) => ({ name: r.name, description: r.description, permissions: r.permissions });
  const changed = <T>(v: T) => {
    hooks.afterChange?.();
    return v;
  };

  return {
    get: (id: number) => get(id),

    /** Roles, built-ins first, then by name, paginated. */
    async list(page: number, pageSize: number): Promise<{ data: Role[]; total: number }> {
      const [rows, count] = await Promise.all([
        knex('roles')
          .orderBy([{ column: 'built_in', order: 'desc' }, { column: 'name' }, { column: 'id' }])
          .limit(pageSize)
          .offset(pageOffset(page, pageSize)) as Promise<RoleRow[]>,
        knex('roles').count({ n: '*' }).first(),
      ]);
      return { data: rows.map(toRole), total: Number(count?.n ?? 0) };
    },

    /** @throws ValidationError (unknown permissions); ConflictError `ROLE_EXISTS` */
    async create(raw: z.input<typeof createRoleBody>): Promise<Role> {
      const input = parseInput(createRoleBody, raw);
      const permissions = checkPermissions(input.permissions);
      const created = await knex.transaction(async (trx) => {
        let id: number;
        try {
          [id] = (await trx('roles').insert({ name: input.name, description: input.description ?? null, permissions: JSON.stringify(permissions) })) as [
            number,
          ];
        } catch (err) {
          if (mysqlErrno(err) === MysqlErrno.DUP_ENTRY) throw new ConflictError(`a role named ${input.name} already exists`, 'ROLE_EXISTS', { field: 'name' });
          throw err;
        }
        const role = await get(Number(id), trx);
        await logActivity(trx, { userId: actorId, action: 'create', entity: 'role', entityId: role.id, changes: diff(null, view(role)) });
        return role;
      });
      return changed(created);
    },

    /**
     * Changes a custom role's description and permissions, at the version the client read
     * (`ifMatch`, else the body's `version`). Its users' tokens keep working, with the new permissions.
     * @throws NotFoundError; SiloError 428 `VERSION_REQUIRED`; ConflictError `ROLE_BUILT_IN`, `VERSION_CONFLICT`, `LAST_ADMIN`; ValidationError
     */
    async update(id: number, raw: z.input<typeof updateRoleBody>, ifMatch?: number): Promise<Role> {
      const input = parseInput(updateRoleBody, raw);
      const permissions = input.permissions && checkPermissions(input.permissions);
      const updated = await knex.transaction(async (trx) => {
        const current = await get(id, trx);
        if (current.builtIn) throw new ConflictError(`the built-in role ${current.name} cannot be changed`, 'ROLE_BUILT_IN');
        if (permissions && isKeeper(current.permissions) && !isKeeper(permissions)) {
          // Roles locked first, then keepers (one lock order with users' changes).
          const before = await lockKeepers(trx);
          const after = await lockKeepers(trx, { roleId: id, permissions });
          if (before.userIds.length && !after.userIds.length) throw lastKeeper();
        }
        const row = (await trx('roles').where({ id }).forUpdate().first()) as RoleRow | undefined;
        if (!row) throw new NotFoundError(`role ${id} not found`, 'ROLE_NOT_FOUND');
        assertVersion(ifMatch ?? input.version, row.version, 'role');
        const patch: Record<string, unknown> = { version: row.version + 1 };
        if (input.description !== undefined) patch.description = input.description;
        if (permissions) patch.permissions = JSON.stringify(permissions);
        await trx('roles').where({ id }).update(patch);
        const after = await get(id, trx);
        await logActivity(trx, { userId: actorId, action: 'update', entity: 'role', entityId: id, changes: diff(view(toRole(row)), view(after)) });
        return after;
      });
      return changed(updated);
    },

    /** Deletes a custom role that no user holds. @throws NotFoundError; ConflictError `ROLE_BUILT_IN`, `ROLE_IN_USE` */
    async remove(id: number): Promise<void> {
      await knex.transaction(async (trx) => {
        const row = (await trx('roles').where({ id }).forUpdate().first()) as RoleRow | undefined;
        if (!row) throw new NotFoundError(`role ${id} not found`, 'ROLE_NOT_FOUND');
        if (row.built_in) throw new ConflictError(`the built-in role ${row.name} cannot be deleted`, 'ROLE_BUILT_IN');
        const holders = await trx('users').where({ role_id: id }).count({ n: '*' }).first();
        const n = Number(holders?.n ?? 0);
        if (n > 0) throw new ConflictError(`role ${row.name} is held by ${n} user(s): give them another role first`, 'ROLE_IN_USE', { users: n });
        // The users foreign key refuses too, should a user take the role meanwhile.
        try {
          await trx('roles').where({ id }).delete();
        } catch (err) {
          // ER_ROW_IS_REFERENCED_2
          if (mysqlErrno(err) === 1451) throw new ConflictError(`role ${row.name} is held by a user`, 'ROLE_IN_USE');
          throw err;
        }
        await logActivity(trx, { userId: actorId, action: 'delete', entity: 'role', entityId: id, changes: diff(view(toRole(row)), null) });
      });
      changed(undefined);
    },
  };
}

/** Raised by a user change that would remove the last keeper. */
export { lastKeeper as lastKeeperError };
