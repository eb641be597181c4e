/**
 * `rotate-credentials`: a new MySQL password for tenant accounts, with no failed request
 * in running API processes. Journaled as an operation, under the tenant's lock; steps:
 *
 * 1. `converge` (only after an interrupted rotation, `db_password_prev_enc` set): the
 *    server gets the catalog's current password, the previous one is forgotten.
 * 2. `catalog`: the new password, encrypted, becomes `db_password_enc` and the old one
 *    moves to `db_password_prev_enc` (compare-and-set). Recorded before the server is
 *    told, so the new password is never only on the server; an API process whose new
 *    connection is refused with one of the two passwords tries the other.
 * 3. `server`: `ALTER USER ... IDENTIFIED BY ?` (`RETAIN CURRENT PASSWORD` on MySQL 8.0.14+).
 * 4. `verify`: a connection as the tenant account with the new password.
 * 5. `discard`: `DISCARD OLD PASSWORD` (MySQL 8.0.14+), the previous password forgotten.
 *
 * A crash after any step converges under `silo tenants repair` (whose `user` step sets the
 * server's password from `db_password_enc` and forgets the previous one) or a new
 * rotation (step 1). No password is ever logged, printed or written to an operation.
 */
import type { Tenant } from '../catalog/index.js';
import { createTenantCredentialsRepository } from '../catalog/tenant-credentials.js';
import type { SiloContext } from '../context.js';
import { ConflictError, ValidationError } from '../lib/errors.js';
import { createMysqlKnex } from '../lib/knex.js';
import { generatePassword } from '../lib/secrets.js';
import { discardOldPassword, serverFlavor, setAccountPassword } from './account-passwords.js';
import { runOperation } from './operation.js';
import { tenantAccount } from './steps.js';
import { getTenant } from './tenants-service.js';

/** Statuses whose account may be rotated (others: repair first). */
const ROTATABLE: ReadonlySet<Tenant['status']> = new Set(['active', 'suspended']);

/** The outcome for one tenant. */
export interface CredentialRotation {
  slug: string;
  outcome: 'rotated' | 'skipped' | 'failed';
  operationId?: number;
  /** The server kept the old password as secondary while the rotation ran (MySQL 8.0.14+). */
  dualPasswords?: boolean;
  /** Why it was skipped or failed (never a password). */
  reason?: string;
}

/**
 * Rotates the MySQL password of one tenant's account (see the module comment for the steps).
 * @throws ConflictError `TENANT_BUSY` when another operation runs on the tenant; `INVALID_STATE`
 *         when the tenant is not active or suspended; `CREDENTIALS_CHANGED` when its stored password
 *         changed under the rotation
 * @throws OperationFailedError when a step fails (the operation says which; repair converges)
 */
export async function rotateTenantCredentials(ctx: SiloContext, slug: string, actor: string): Promise<{ operationId: number; dualPasswords: boolean }> {
  const tenant = await getTenant(ctx, slug);
  const creds = createTenantCredentialsRepository(ctx.catalog.knex);
  return ctx.locks.withLock(tenant, async () => {
    const fresh = (await ctx.catalog.tenants.findById(tenant.id))!;
    if (!ROTATABLE.has(fresh.status)) {
      throw new ConflictError(
        `tenant "${slug}" is ${fresh.status}; only an active or suspended tenant's credentials are rotated (run \`silo tenants repair ${slug}\` first)`,
        'INVALID_STATE',
        { status: fresh.status },
      );
    }
    const operationId = await ctx.catalog.operations.start({ kind: 'rotate-credentials', tenantId: tenant.id, actor, details: { slug } });
    const dualPasswords = await runOperation(ctx, { existingId: operationId, kind: 'rotate-credentials' }, async (op) => {
      // Whoever holds the lock knows that an operation still `running` here was interrupted.
      const closed = await ctx.catalog.operations.closeInterrupted(tenant.id, operationId);
      if (closed.length) await op.note({ interruptedOperations: closed });
      const { knex: admin, url } = await ctx.admin.server(fresh.databaseServerId);
      const account = tenantAccount(ctx, fresh);
      const flavor = await serverFlavor(admin);
      await op.note({ serverVersion: flavor.version, dualPasswords: flavor.dualPasswords });

      let stored = (await creds.get(tenant.id))!;
      if (stored.dbPasswordPrevEnc) {
        await setAccountPassword(admin, account, ctx.config.secrets.decrypt(stored.dbPasswordEnc), flavor, { retainCurrent: false });
        await discardOldPassword(admin, account, flavor);
        await creds.clearPrevious(tenant.id);
        stored = (await creds.get(tenant.id))!;
        await op.step('converge');
      }

      const next = generatePassword();
      if (!(await creds.begin(tenant.id, stored.dbPasswordEnc, ctx.config.secrets.encrypt(next)))) {
        throw new ConflictError(`the stored password of tenant "${slug}" changed during the rotation; run it again`, 'CREDENTIALS_CHANGED');
      }
      ctx.events.emit('tenantChanged', slug);
      await op.step('catalog');

      await setAccountPassword(admin, account, next, flavor, { retainCurrent: true });
      await op.step('server');

      const probe = createMysqlKnex({ host: url.host, port: url.port, user: account.user, password: next, database: fresh.databaseName }, { min: 0, max: 1 });
      try {
        await probe.raw('SELECT 1');
      } finally {
        await probe.destroy();
      }
      await op.step('verify');

      await discardOldPassword(admin, account, flavor);
      await creds.clearPrevious(tenant.id);
      ctx.events.emit('tenantChanged', slug);
      await op.step('discard');
      return flavor.dualPasswords;
    });
    return { operationId, dualPasswords };
  });
}

/**
 * Rotates the credentials of the named tenants, or of every active and suspended tenant
 * with `all`, one at a time; a tenant that fails is reported and the others go on.
 * @throws ValidationError when neither slugs nor `all` are given, or both
 * @throws NotFoundError `TENANT_NOT_FOUND` for an unknown slug (before anything changes)
 */
export async function rotateCredentials(
  ctx: SiloContext,
  actor: string,
  opts: { slugs?: string[]; all?: boolean },
): Promise<{ tenants: CredentialRotation[] }> {
  if (!opts.all && !opts.slugs?.length) throw new ValidationError('name at least one tenant, or use --all');
  if (opts.all && opts.slugs?.length) throw new ValidationError('name tenants or use --all, not both');
  // Fails before anything changes without a key (ConfigError naming SILO_SECRET_KEY).
  void ctx.config.secrets.currentKeyId;
  const slugs = opts.all ? (await ctx.catalog.tenants.list({ statuses: ['active', 'suspended'] })).map((t) => t.slug) : [...new Set(opts.slugs)];
  if (!opts.all) for (const s of slugs) await getTenant(ctx, s);
  const tenants: CredentialRotation[] = [];
  for (const slug of slugs) {
    try {
      const r = await rotateTenantCredentials(ctx, slug, actor);
      tenants.push({ slug, outcome: 'rotated', operationId: r.operationId, dualPasswords: r.dualPasswords });
    } catch (err) {
      const skipped = err instanceof ConflictError && err.code === 'INVALID_STATE';
      const operationId = (err as { details?: { operationId?: unknown } }).details?.operationId;
      tenants.push({
        slug,
        outcome: skipped ? 'skipped' : 'failed',
        reason: (err as Error).message,
        ...(typeof operationId === 'number' ? { operationId } : {}),
      });
    }
  }
  return { tenants };
}
