/**
 * Plans and a tenant's plan: one implementation for `silo plans ...`, `silo tenants
 * set-plan` and the platform API. Limits are whole numbers or null (unlimited); a plan's
 * name follows the pattern `tenants create --plan` has always taken. Every API process
 * applies a change within one change-poll interval (src/tenancy/plan-limits.ts).
 */
import { z } from 'zod';
import type { Plan, Tenant } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { NotFoundError, ValidationError } from '../lib/errors.js';
import { MAX_BYTES } from '../lib/sizes.js';
import { parseInput } from '../lib/validation.js';
import { runOperation } from './operation.js';
import { getTenant } from './tenant-lookup.js';

/** A plan's name: 1-32 of a-z 0-9 -, not starting with `-`. */
export const planNameSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'must be 1-32 lower-case letters, digits or hyphens');

/** Largest count limit (INT UNSIGNED holds more; a billion records is past any plan). */
const MAX_COUNT = 1_000_000_000;

const count = z.number().int('must be a whole number').min(0).max(MAX_COUNT).nullable();
const bytes = z.number().int('must be a whole number of bytes').min(0).max(MAX_BYTES).nullable();

/** The limits as the API and the CLI take them: null is unlimited, absent is "unchanged" (or unlimited for a new plan). */
export const planLimitsInput = z.strictObject({
  maxUsers: count.optional().describe('active users; null: unlimited'),
  maxContacts: count.optional().describe('live (not deleted) contacts; null: unlimited'),
  maxAttachmentBytes: bytes.optional().describe('bytes of all attachments together; null: unlimited'),
  requestsPerMinute: z.number().int('must be a whole number').min(1).max(MAX_COUNT).nullable().optional().describe('API requests per minute; null: unlimited'),
});
export type PlanLimitsInput = z.input<typeof planLimitsInput>;

/** Body of `POST /platform/v1/plans`. */
export const newPlanInput = planLimitsInput.extend({ name: planNameSchema });

/** A plan with the number of tenants (not deleted) on it. */
export interface PlanWithTenants extends Plan {
  tenants: number;
}

/** Every plan, by name, with how many tenants use it. */
export async function listPlans(ctx: SiloContext): Promise<PlanWithTenants[]> {
  const [plans, counts] = await Promise.all([ctx.catalog.plans.list(), ctx.catalog.plans.tenantCounts()]);
  return plans.map((p) => ({ ...p, tenants: counts.get(p.name) ?? 0 }));
}

/**
 * One plan.
 * @throws NotFoundError `PLAN_NOT_FOUND`
 */
export async function getPlan(ctx: SiloContext, name: string): Promise<Plan> {
  const plan = await ctx.catalog.plans.find(name);
  if (!plan) throw new NotFoundError(`plan "${name}" not found`, 'PLAN_NOT_FOUND', { plan: name });
  return plan;
}

/**
 * Adds a plan; limits not given are unlimited.
 * @throws ValidationError (name, limits: nothing is written); ConflictError `PLAN_EXISTS`
 */
export async function addPlan(ctx: SiloContext, raw: z.input<typeof newPlanInput>): Promise<Plan> {
  const input = parseInput(newPlanInput, raw);
  await ctx.catalog.plans.insert(input);
  ctx.events.emit('plansChanged');
  return (await ctx.catalog.plans.find(input.name))!;
}

/**
 * Changes limits of a plan (null: unlimited; absent: unchanged). Every tenant on the plan
 * gets the new limits.
 * @throws ValidationError when nothing is given or a limit is bad (nothing is written); NotFoundError `PLAN_NOT_FOUND`
 */
export async function updatePlan(ctx: SiloContext, name: string, raw: PlanLimitsInput): Promise<Plan> {
  parseInput(planNameSchema, name);
  const patch = parseInput(planLimitsInput, raw);
  if (!Object.values(patch).some((v) => v !== undefined))
    throw new ValidationError('give at least one limit to change (maxUsers, maxContacts, maxAttachmentBytes, requestsPerMinute)', {
      fields: [{ path: '(root)', message: 'no limit given' }],
    });
  if (!(await ctx.catalog.plans.update(name, patch))) throw new NotFoundError(`plan "${name}" not found`, 'PLAN_NOT_FOUND', { plan: name });
  ctx.events.emit('plansChanged');
  return (await ctx.catalog.plans.find(name))!;
}

/**
 * Throws unless the plan exists: what a tenant create checks before it writes anything.
 * @throws ValidationError `UNKNOWN_PLAN`
 */
export async function assertPlanExists(ctx: SiloContext, name: string): Promise<void> {
  if (!(await ctx.catalog.plans.find(name)))
    throw new ValidationError(`plan "${name}" does not exist (see silo plans list)`, { fields: [{ path: 'plan', message: 'no such plan' }] }, 'UNKNOWN_PLAN');
}

/** Result of {@link setTenantPlan}. */
export interface SetPlanResult {
  tenant: Tenant;
  previousPlan: string;
  operationId: number;
}

/**
 * Puts a tenant on a plan, journaled as a `set-plan` operation. The tenant row's
 * `updated_at` moves, so every API process reads it again within one poll interval.
 * @throws ValidationError (slug, plan name) or `UNKNOWN_PLAN` (nothing is written); NotFoundError `TENANT_NOT_FOUND`
 */
export async function setTenantPlan(ctx: SiloContext, slug: string, plan: string, actor: string): Promise<SetPlanResult> {
  parseInput(planNameSchema, plan);
  const tenant = await getTenant(ctx, slug);
  await assertPlanExists(ctx, plan);
  const operationId = await ctx.catalog.operations.start({ kind: 'set-plan', tenantId: tenant.id, actor, details: { slug, from: tenant.plan, to: plan } });
  await runOperation(ctx, { existingId: operationId, kind: 'set-plan' }, async (op) => {
    await ctx.catalog.tenants.update(tenant.id, { plan });
    await op.step('plan');
  });
  ctx.events.emit('tenantChanged', slug);
  return { tenant: (await ctx.catalog.tenants.findById(tenant.id))!, previousPlan: tenant.plan, operationId };
}
