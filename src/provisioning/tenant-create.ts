/**
 * Creating a tenant: catalog row (`provisioning`) -> database -> account + grant ->
 * migrations -> first admin -> `active`, as one journaled operation (see `steps.ts`).
 * The row commits only once this process holds the tenant's lock, so no other runner
 * (`repair --all`, orphan pruning) ever sees a tenant whose create is still running
 * without its lock being held.
 */
import { z } from 'zod';
import type { Tenant } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { MAX_ERROR_TEXT, safeErrorText } from '../lib/error-text.js';
import { SiloError } from '../lib/errors.js';
import { faultPoint } from '../lib/faults.js';
import { assertValidSlug, opaqueTenantName, pendingSlug } from '../lib/identifiers.js';
import { assertAcceptablePassword } from '../lib/passwords.js';
import { encryptSecret, generatePassword } from '../lib/secrets.js';
import { emailSchema, parseInput } from '../lib/validation.js';
import { runOperation } from './operation.js';
import { assertPlanExists } from './plans-service.js';
import { defaultAdminEmail, provision, type SeedOutcome } from './steps.js';

/** Input of {@link createTenant}. */
export const createTenantInput = z
  .object({
    slug: z.string(),
    name: z.string().trim().min(1).max(200).optional(),
    plan: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'must be 1-32 lower-case letters, digits or hyphens')
      .default('standard'),
    adminEmail: emailSchema.optional(),
    adminPassword: z.string().optional(),
  })
  .strict();
export type CreateTenantInput = z.input<typeof createTenantInput>;

/** Result of create/recreate: the tenant, its operation, and the admin's password when generated now (shown once). */
export interface ProvisionResult {
  tenant: Tenant;
  operationId: number;
  admin: SeedOutcome;
}

/** Picks the active database server with the fewest live tenants. */
async function pickServer(ctx: SiloContext): Promise<number> {
  const servers = (await ctx.catalog.servers.list()).filter((s) => s.status === 'active');
  if (!servers.length)
    throw new SiloError('no active database server in the catalog: run `silo catalog migrate` first', { code: 'NO_DATABASE_SERVER', status: 503 });
  const counts = await ctx.catalog.tenants.countByServer();
  servers.sort((a, b) => (counts.get(a.id) ?? 0) - (counts.get(b.id) ?? 0) || a.id - b.id);
  return servers[0]!.id;
}

/** onFailure hook of create and recreate: the tenant becomes `failed` with the step and reason. */
export function markFailed(ctx: SiloContext, tenant: Tenant) {
  return async (err: unknown, step: string | null) => {
    const reason = `failed after step ${step ?? '(none)'}: ${safeErrorText(err)}`.slice(0, MAX_ERROR_TEXT);
    await ctx.catalog.tenants.update(tenant.id, { status: 'failed', statusReason: reason });
    ctx.events.emit('tenantChanged', tenant.slug);
  };
}

/**
 * Creates a tenant. Its database and account get an opaque name ({@link opaqueTenantName}),
 * so the slug can change later. The catalog row is inserted in a transaction that
 * commits only once the tenant's lock is held (and under the names lock, see
 * `TenantLocks.withNamesLock`), together with the `create` operation.
 * @throws ValidationError before anything is written (bad slug, email, password, plan; `UNKNOWN_PLAN` for a plan not in the catalog)
 * @throws ConflictError `TENANT_EXISTS` when the slug is taken or reserved by a rename (nothing is written)
 * @throws OperationFailedError when a step fails: the tenant is `failed` and `repair` resumes it
 */
export async function createTenant(ctx: SiloContext, raw: CreateTenantInput, actor: string): Promise<ProvisionResult> {
  const input = parseInput(createTenantInput, raw);
  assertValidSlug(input.slug);
  if (input.adminPassword !== undefined) assertAcceptablePassword(input.adminPassword);
  const adminEmail = input.adminEmail ?? defaultAdminEmail(input.slug);
  return insertAndProvision(
    ctx,
    { slug: input.slug, name: input.name ?? input.slug, plan: input.plan, adminEmail },
    { email: adminEmail, ...(input.adminPassword ? { password: input.adminPassword } : {}) },
    actor,
  );
}

/**
 * Provisions one pending tenant: database, account, migrations (with the default
 * pipeline stages), no admin, under a placeholder slug no request can name
 * ({@link pendingSlug}); it ends `pending`, waiting for a signup to claim it
 * (`src/provisioning/pending-tenants.ts`). A crash leaves it `provisioning` or `failed`
 * under that slug; `repair` finishes it as `pending`.
 * @throws OperationFailedError when a step fails (the tenant is `failed`)
 */
export async function createPendingTenant(ctx: SiloContext, actor: string, plan = 'standard'): Promise<ProvisionResult> {
  return insertAndProvision(ctx, { slug: null, name: 'pending', plan, adminEmail: null }, { email: '' }, actor);
}

async function insertAndProvision(
  ctx: SiloContext,
  row: { slug: string | null; name: string; plan: string; adminEmail: string | null },
  admin: { email: string; password?: string },
  actor: string,
): Promise<ProvisionResult> {
  await assertPlanExists(ctx, row.plan);
  const { tenantDbPrefix: prefix } = ctx.config;
  const databaseServerId = await pickServer(ctx);
  const databaseName = opaqueTenantName(prefix);
  const slug = row.slug ?? pendingSlug(prefix, databaseName);
  const trx = await ctx.catalog.knex.transaction();
  let committed = false;
  try {
    const tenantId = await ctx.catalog.tenants.insert(
      {
        slug,
        name: row.name,
        plan: row.plan,
        databaseServerId,
        databaseName,
        dbUser: databaseName,
        dbPasswordEnc: encryptSecret(generatePassword(), ctx.config.secrets),
        adminEmail: row.adminEmail,
      },
      trx,
    );
    if (row.slug) await ctx.catalog.tenants.assertSlugNotReserved(slug, tenantId, trx);
    // Other sessions cannot see the row before the commit below, which runs with the lock held.
    let operationId = 0;
    const seeded = await ctx.locks.withLock({ id: tenantId, slug }, async () => {
      const details = row.slug ? { slug, adminEmail: row.adminEmail } : { slug, pending: true };
      operationId = await ctx.catalog.operations.start({ kind: 'create', tenantId, actor, details }, trx);
      await ctx.catalog.operations.step(operationId, 'catalog', trx);
      await ctx.locks.withNamesLock(() => trx.commit());
      committed = true;
      faultPoint(ctx.config, 'create', 'catalog');
      const tenant = (await ctx.catalog.tenants.findById(tenantId))!;
      return runOperation(ctx, { existingId: operationId, kind: 'create' }, (op) => provision(ctx, op, tenant, admin), markFailed(ctx, tenant));
    });
    return { tenant: (await ctx.catalog.tenants.findById(tenantId))!, operationId, admin: seeded };
  } finally {
    if (!committed) await trx.rollback().catch(() => undefined);
  }
}
