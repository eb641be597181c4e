/**
 * Tenant permissions: `resource:action` pairs, the one catalogue every route, role and
 * document reads. A route checks one permission (`app.requirePermission('contacts:read')`);
 * a role is a set of them; a user has one role.
 *
 * The built-in roles (`admin`, `manager`, `staff`) hold exactly the rights the role lists
 * of the routes gave them before permissions existed:
 * - `ROLES.read` (every role) -> `<resource>:read`; `ROLES.create` (every role) -> `<resource>:create`;
 * - `ROLES.update` (admin, manager) -> `<resource>:update`;
 * - `ROLES.remove` (admin) -> `<resource>:delete` and `<resource>:restore`;
 * - `['admin']` -> the admin-only permissions (users, roles, invitations, stages writes,
 *   history, usage, webhooks, `records:read-deleted`); attachments' delete was admin and manager.
 * Built-in roles' permissions are defined here, not in the database (the seeded copy in
 * `roles.permissions` is informative): a permission added to the catalogue in a later
 * change reaches the built-ins it is granted to without a data migration.
 */

/** Every permission, with what it allows (rendered into the OpenAPI description). */
export const PERMISSIONS = [
  { name: 'companies:read', description: 'list, get and export companies' },
  { name: 'companies:create', description: 'create companies' },
  { name: 'companies:update', description: 'update companies' },
  { name: 'companies:delete', description: 'soft-delete companies' },
  { name: 'companies:restore', description: 'restore soft-deleted companies' },
  { name: 'companies:import', description: 'import companies from CSV (reserved for the import routes)' },
  { name: 'contacts:read', description: 'list, get and export contacts' },
  { name: 'contacts:create', description: 'create contacts' },
  { name: 'contacts:update', description: 'update contacts' },
  { name: 'contacts:delete', description: 'soft-delete contacts' },
  { name: 'contacts:restore', description: 'restore soft-deleted contacts' },
  { name: 'contacts:import', description: 'import contacts from CSV (reserved for the import routes)' },
  { name: 'deals:read', description: 'list and get deals' },
  { name: 'deals:create', description: 'create deals' },
  { name: 'deals:update', description: 'update deals, move them between stages, win or lose them' },
  { name: 'deals:delete', description: 'soft-delete deals' },
  { name: 'deals:restore', description: 'restore soft-deleted deals' },
  { name: 'stages:read', description: 'list and get pipeline stages' },
  { name: 'stages:create', description: 'create pipeline stages' },
  { name: 'stages:update', description: 'update pipeline stages' },
  { name: 'stages:delete', description: 'delete pipeline stages' },
  { name: 'attachments:read', description: 'list attachments, get them and their download URLs' },
  { name: 'attachments:create', description: 'upload attachments (and company logos)' },
  { name: 'attachments:delete', description: 'delete attachments and their files' },
  { name: 'leads:read', description: 'list and get leads (reserved for the leads routes)' },
  { name: 'leads:create', description: 'create leads' },
  { name: 'leads:update', description: 'update and convert leads' },
  { name: 'leads:delete', description: 'soft-delete leads' },
  { name: 'leads:restore', description: 'restore soft-deleted leads' },
  { name: 'tasks:read', description: 'list and get tasks (reserved for the tasks routes)' },
  { name: 'tasks:create', description: 'create tasks' },
  { name: 'tasks:update', description: 'update and complete tasks' },
  { name: 'tasks:delete', description: 'soft-delete tasks' },
  { name: 'tasks:restore', description: 'restore soft-deleted tasks' },
  { name: 'notes:read', description: 'list and get notes (reserved for the notes routes)' },
  { name: 'notes:create', description: 'create notes' },
  { name: 'notes:update', description: 'update notes' },
  { name: 'notes:delete', description: 'soft-delete notes' },
  { name: 'notes:restore', description: 'restore soft-deleted notes' },
  { name: 'notes:manage', description: "change and delete other authors' notes (an author changes their own with notes:create)" },
  { name: 'activity:read', description: 'read the activity log' },
  { name: 'records:read-deleted', description: 'read soft-deleted records (`includeDeleted=true`)' },
  { name: 'users:read', description: 'list and get users, and read roles' },
  { name: 'users:manage', description: 'create, update and deactivate users, and change their roles' },
  { name: 'roles:manage', description: 'create, update and delete roles' },
  { name: 'invitations:manage', description: 'invite users, list and revoke invitations' },
  { name: 'history:read', description: "read the tenant's request history and its statistics" },
  { name: 'usage:read', description: "read the tenant's usage and plan limits" },
  { name: 'webhooks:manage', description: 'manage webhooks and their deliveries (reserved for the webhooks routes)' },
] as const satisfies ReadonlyArray<{ name: `${string}:${string}`; description: string }>;

/** A permission name. */
export type Permission = (typeof PERMISSIONS)[number]['name'];

/** Every permission name, in catalogue order. */
export const PERMISSION_NAMES: readonly Permission[] = PERMISSIONS.map((p) => p.name);

const KNOWN = new Set<string>(PERMISSION_NAMES);

/** Whether `name` is in the catalogue. */
export function isPermission(name: string): name is Permission {
  return KNOWN.has(name);
}

/** The names of the built-in roles. */
export type BuiltInRole = 'admin' | 'manager' | 'staff';
/** The built-in roles, in seed order. */
export const BUILT_IN_ROLES: readonly BuiltInRole[] = ['admin', 'manager', 'staff'];

/** Permissions `<resource>:<action>` of one `resource` for each of `actions`. */
const each = (resources: readonly string[], actions: readonly string[]) => resources.flatMap((r) => actions.map((a) => `${r}:${a}`)) as Permission[];
const RECORDS = ['companies', 'contacts', 'deals', 'leads', 'tasks', 'notes'] as const;

const STAFF: Permission[] = [...each(RECORDS, ['read', 'create']), 'stages:read', 'attachments:read', 'attachments:create', 'activity:read'];
const MANAGER: Permission[] = [...STAFF, ...each(RECORDS, ['update']), 'attachments:delete', 'companies:import', 'contacts:import'];

/** What each built-in role may do (admin: everything), in catalogue order. */
export const BUILT_IN_PERMISSIONS: Readonly<Record<BuiltInRole, readonly Permission[]>> = {
  admin: PERMISSION_NAMES,
  manager: PERMISSION_NAMES.filter((p) => MANAGER.includes(p)),
  staff: PERMISSION_NAMES.filter((p) => STAFF.includes(p)),
};

/** Whether `name` is a built-in role's name. */
export function isBuiltInRole(name: string): name is BuiltInRole {
  return (BUILT_IN_ROLES as readonly string[]).includes(name);
}

/**
 * The permissions that keep a tenant manageable: while any user is active, at least one
 * active user holds both (the "last admin" rule, for any role).
 */
export const KEEPER_PERMISSIONS: readonly Permission[] = ['users:manage', 'roles:manage'];

/** The catalogue as a Markdown list (for the OpenAPI description). */
export function permissionsMarkdown(): string {
  const table = PERMISSIONS.map((p) => `- \`${p.name}\`: ${p.description}`).join('\n');
  const roles = BUILT_IN_ROLES.map((r) => `- \`${r}\`: ${r === 'admin' ? 'every permission' : BUILT_IN_PERMISSIONS[r].map((p) => `\`${p}\``).join(', ')}`).join(
    '\n',
  );
  return `Permissions (\`resource:action\`):\n${table}\n\nBuilt-in roles:\n${roles}`;
}
