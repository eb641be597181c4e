/**
 * Adding users from the operator's side: tenant users (in the tenant database, through
 * the tenant's own DML-only account) and platform users (in the catalog).
 */
import { z } from 'zod';
import type { SiloContext } from '../context.js';
import { roleName } from '../crm/roles.js';
import { createUsersService } from '../crm/users-service.js';
import { ConflictError } from '../lib/errors.js';
import { assertAcceptablePassword, hashPassword } from '../lib/passwords.js';
import { generatePassword } from '../lib/secrets.js';
import { emailSchema, parseInput } from '../lib/validation.js';
import { withTenantAccount } from './tenant-account.js';
import { getTenant } from './tenants-service.js';

const tenantUserInput = z.object({
  email: emailSchema,
  /** admin, manager, staff or a custom role of the tenant (checked by the users service). */
  role: roleName,
  password: z.string().optional(),
  fullName: z.string().trim().min(1).max(200).optional(),
});

/** A user just added; `generatedPassword` is set (and shown once) when none was given. */
export interface AddedUser {
  id: number;
  email: string;
  role: string;
  generatedPassword?: string;
}

/**
 * Adds a user to a tenant, through the tenant's own DML-only account and the same service
 * as `POST /api/v1/users` (see {@link createUsersService}), activity log included, and
 * within the plan's limit of active users.
 * @throws ValidationError (email, password, a role the tenant does not have); NotFoundError; ConflictError `USER_EXISTS` or `INVALID_STATE`; QuotaExceededError
 */
export async function addTenantUser(ctx: SiloContext, slug: string, raw: z.input<typeof tenantUserInput>): Promise<AddedUser> {
  const input = parseInput(tenantUserInput, raw);
  if (input.password !== undefined) assertAcceptablePassword(input.password);
  const tenant = await getTenant(ctx, slug);
  if (!['active', 'suspended', 'maintenance'].includes(tenant.status)) {
    throw new ConflictError(`tenant "${slug}" is ${tenant.status}; run repair first`, 'INVALID_STATE');
  }
  const generated = input.password ? undefined : generatePassword(18);
  const maxUsers = (await ctx.catalog.plans.find(tenant.plan))?.maxUsers ?? null;
  return withTenantAccount(ctx, tenant, async (knex) => {
    // The service of `POST /api/v1/users`, acting as the platform (no user id): the same
    // checks, the same `USER_EXISTS`, and the activity entry in the same transaction.
    const { id } = await createUsersService(knex, null, {}, maxUsers).create({
      email: input.email,
      role: input.role,
      ...(input.fullName === undefined ? {} : { fullName: input.fullName }),
      password: input.password ?? generated!,
    });
    return { id, email: input.email, role: input.role, ...(generated ? { generatedPassword: generated } : {}) };
  });
}

const platformUserInput = z.object({
  email: emailSchema,
  role: z.enum(['operator', 'support'], { message: 'role must be operator or support' }),
  password: z.string().optional(),
});

/**
 * Adds a platform user (operator or support) to the catalog.
 * @throws ValidationError; ConflictError `USER_EXISTS`
 */
export async function addPlatformUser(ctx: SiloContext, raw: z.input<typeof platformUserInput>): Promise<AddedUser> {
  const input = parseInput(platformUserInput, raw);
  if (input.password !== undefined) assertAcceptablePassword(input.password);
  const generated = input.password ? undefined : generatePassword(18);
  const id = await ctx.catalog.platformUsers.insert({
    email: input.email,
    role: input.role,
    passwordHash: await hashPassword(input.password ?? generated!),
  });
  return { id, email: input.email, role: input.role, ...(generated ? { generatedPassword: generated } : {}) };
}
