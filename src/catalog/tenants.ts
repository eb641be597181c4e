/**
 * Data access for `tenants` and `tenant_domains`. Methods take an optional transaction.
 */
import type { Knex } from 'knex';
import { ConflictError, ValidationError } from '../lib/errors.js';
import { MysqlErrno, mysqlErrno } from '../lib/knex.js';
import type { Tenant, TenantDomain, TenantStatus } from './types.js';

export interface TenantRow {
  id: number;
  slug: string;
  name: string;
  plan: string;
  status: TenantStatus;
  status_reason: string | null;
  database_server_id: number;
  database_name: string;
  db_user: string;
  db_password_enc: string;
  schema_version: string | null;
  admin_email: string | null;
  generation: number;
  auth_version: number;
  unverified_since: Date | null;
  created_at: Date;
  updated_at: Date;
  suspended_at: Date | null;
  deleted_at: Date | null;
}

export function toTenant(r: TenantRow): Tenant {
  return {
    id: r.id,
    slug: r.slug,
    name: r.name,
    plan: r.plan,
    status: r.status,
    statusReason: r.status_reason,
    databaseServerId: r.database_server_id,
    databaseName: r.database_name,
    dbUser: r.db_user,
    dbPasswordEnc: r.db_password_enc,
    schemaVersion: r.schema_version,
    adminEmail: r.admin_email,
    generation: Number(r.generation),
    authVersion: Number(r.auth_version),
    unverifiedSince: r.unverified_since ?? null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    suspendedAt: r.suspended_at,
    deletedAt: r.deleted_at,
  };
}

/** Fields set when a tenant row is first written (status `provisioning`). */
export interface NewTenant {
  slug: string;
  name: string;
  plan: string;
  databaseServerId: number;
  databaseName: string;
  dbUser: string;
  dbPasswordEnc: string;
  adminEmail: string | null;
}

/** Fields a lifecycle step may change. */
export type TenantPatch = Partial<
  Pick<Tenant, 'name' | 'plan' | 'status' | 'statusReason' | 'schemaVersion' | 'adminEmail' | 'suspendedAt' | 'deletedAt' | 'dbPasswordEnc' | 'unverifiedSince'>
>;

const COLUMN: Record<keyof TenantPatch, string> = {
  name: 'name',
  plan: 'plan',
  status: 'status',
  statusReason: 'status_reason',
  schemaVersion: 'schema_version',
  adminEmail: 'admin_email',
  suspendedAt: 'suspended_at',
  deletedAt: 'deleted_at',
  dbPasswordEnc: 'db_password_enc',
  unverifiedSince: 'unverified_since',
};

/** Repository over `tenants` and `tenant_domains`. */
export function createTenantsRepository(knex: Knex) {
  return {
    /** The tenant with this slug (any status), or undefined. */
    async findBySlug(slug: string, trx?: Knex.Transaction): Promise<Tenant | undefined> {
      const row = await (trx ?? knex)<TenantRow>('tenants').where({ slug }).first();
      return row && toTenant(row);
    },

    /** The tenant with this id (any status), or undefined. */
    async findById(id: number, trx?: Knex.Transaction): Promise<Tenant | undefined> {
      const row = await (trx ?? knex)<TenantRow>('tenants').where({ id }).first();
      return row && toTenant(row);
    },

    /** Tenants ordered by slug, optionally of some statuses only. */
    async list(filter: { statuses?: readonly TenantStatus[]; slugs?: readonly string[] } = {}, trx?: Knex.Transaction): Promise<Tenant[]> {
      const q = (trx ?? knex)<TenantRow>('tenants').orderBy('slug');
      if (filter.statuses) q.whereIn('status', filter.statuses as TenantStatus[]);
      if (filter.slugs) q.whereIn('slug', filter.slugs as string[]);
      return (await q).map(toTenant);
    },

    /**
     * Inserts a tenant in status `provisioning`.
     * @returns the new tenant's id
     * @throws ConflictError `TENANT_EXISTS` when the slug is taken (also by a deleted tenant)
     */
    async insert(t: NewTenant, trx?: Knex.Transaction): Promise<number> {
      try {
        const [id] = await (trx ?? knex)('tenants').insert({
          slug: t.slug,
          name: t.name,
          plan: t.plan,
          status: 'provisioning',
          database_server_id: t.databaseServerId,
          database_name: t.databaseName,
          db_user: t.dbUser,
          db_password_enc: t.dbPasswordEnc,
          admin_email: t.adminEmail,
        });
        return Number(id);
      } catch (err) {
        if (mysqlErrno(err) === MysqlErrno.DUP_ENTRY) {
          throw new ConflictError(`tenant "${t.slug}" already exists (slugs of deleted tenants stay reserved)`, 'TENANT_EXISTS', { slug: t.slug });
        }
        throw unknownPlan(err, t.plan);
      }
    },

    /**
     * Checks, inside the caller's transaction, that `slug` is not reserved by a rename of
     * another tenant (`slug_reservations`, {@link reserveSlug}); a reservation that has run
     * out, or one held by `tenantId` itself (renaming back), is removed. The reservation's
     * row is read with a locking read (`FOR UPDATE`: the newest committed state, and a gap
     * lock when there is none, MySQL 8.4 §17.7.2.4), so a rename committing meanwhile
     * cannot be missed. Call it after writing the slug to `tenants` (whose unique key
     * then waits for a concurrent rename away from that slug to commit).
     * @throws ConflictError `TENANT_EXISTS` when another tenant's reservation holds the slug
     */
    async assertSlugNotReserved(slug: string, tenantId: number, trx: Knex.Transaction): Promise<void> {
      const row = await trx('slug_reservations')
        .where({ slug })
        .forUpdate()
        .first<{ tenant_id: number; reserved_until: Date; live: number | string } | undefined>(
          'tenant_id',
          'reserved_until',
          trx.raw('reserved_until > CURRENT_TIMESTAMP(3) AS live'),
        );
      if (!row) return;
      if (Number(row.live) === 1 && row.tenant_id !== tenantId) {
        throw new ConflictError(
          `tenant "${slug}" already exists (the slug is reserved after a rename until ${row.reserved_until.toISOString()})`,
          'TENANT_EXISTS',
          {
            slug,
            reservedUntil: row.reserved_until.toISOString(),
          },
        );
      }
      await trx('slug_reservations').where({ slug }).delete();
    },

    /**
     * Reserves `slug` (given up by tenant `tenantId`) for `days` days, replacing an older
     * reservation of the same slug.
     */
    async reserveSlug(slug: string, tenantId: number, days: number, trx: Knex.Transaction): Promise<void> {
      await trx.raw(
        'INSERT INTO slug_reservations (slug, tenant_id, reserved_until) VALUES (?, ?, CURRENT_TIMESTAMP(3) + INTERVAL ? DAY) ON DUPLICATE KEY UPDATE tenant_id = VALUES(tenant_id), reserved_until = VALUES(reserved_until)',
        [slug, tenantId, days],
      );
    },

    /** Slugs reserved by renames of tenant `tenantId` and still live, with their end. */
    async reservedSlugs(tenantId: number, trx?: Knex.Transaction): Promise<Array<{ slug: string; reservedUntil: Date }>> {
      const rows: Array<{ slug: string; reserved_until: Date }> = await (trx ?? knex)('slug_reservations')
        .where({ tenant_id: tenantId })
        .where('reserved_until', '>', knex.raw('CURRENT_TIMESTAMP(3)'))
        .orderBy('slug')
        .select('slug', 'reserved_until');
      return rows.map((r) => ({ slug: r.slug, reservedUntil: r.reserved_until }));
    },

    /** Deletes reservations that ran out. @returns how many */
    async purgeSlugReservations(trx?: Knex.Transaction): Promise<number> {
      return Number(await (trx ?? knex)('slug_reservations').where('reserved_until', '<=', knex.raw('CURRENT_TIMESTAMP(3)')).delete());
    },

    /**
     * Sets a tenant's slug (the caller checks it and reserves the old one); touches
     * `updated_at`, so every API process's watcher reports the tenant under its new slug.
     * @throws ConflictError `TENANT_EXISTS` when another tenant has the slug
     */
    async setSlug(id: number, slug: string, trx: Knex.Transaction): Promise<void> {
      try {
        await trx('tenants')
          .where({ id })
          .update({ slug, updated_at: trx.raw('CURRENT_TIMESTAMP(3)') });
      } catch (err) {
        if (mysqlErrno(err) === MysqlErrno.DUP_ENTRY) {
          throw new ConflictError(`tenant "${slug}" already exists (slugs of deleted tenants stay reserved)`, 'TENANT_EXISTS', { slug });
        }
        throw err;
      }
    },

    /**
     * Updates some fields of a tenant.
     * @throws ValidationError `UNKNOWN_PLAN` when `plan` names no plan (the catalog's foreign key)
     */
    async update(id: number, patch: TenantPatch, trx?: Knex.Transaction): Promise<void> {
      const row: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(patch)) {
        if (v !== undefined) row[COLUMN[k as keyof TenantPatch]] = v;
      }
      if (!Object.keys(row).length) return;
      try {
        await (trx ?? knex)('tenants').where({ id }).update(row);
      } catch (err) {
        throw unknownPlan(err, patch.plan);
      }
    },

    /**
     * Sets the status only if it is currently one of `from` (compare-and-set).
     * @returns true when the row changed
     */
    async transition(id: number, from: readonly TenantStatus[], to: TenantStatus, reason: string | null = null, trx?: Knex.Transaction): Promise<boolean> {
      const n = await (trx ?? knex)('tenants')
        .where({ id })
        .whereIn('status', from as TenantStatus[])
        .update({ status: to, status_reason: reason });
      return n > 0;
    },

    /**
     * Starts a new token generation: every token issued before is refused from now on
     * (also moves `updated_at`, so every API process re-reads the row).
     */
    async bumpGeneration(id: number, trx?: Knex.Transaction): Promise<void> {
      await (trx ?? knex)('tenants').where({ id }).increment('generation', 1);
    },

    /**
     * Records that a user's `token_version` changed in the tenant database: every API
     * process re-reads the row (`updated_at` moves) and re-checks older tokens of the tenant.
     */
    async bumpAuthVersion(id: number, trx?: Knex.Transaction): Promise<void> {
      await (trx ?? knex)('tenants').where({ id }).increment('auth_version', 1);
    },

    /** Number of live tenants per database server id. */
    async countByServer(trx?: Knex.Transaction): Promise<Map<number, number>> {
      const rows: Array<{ database_server_id: number; n: number }> = await (trx ?? knex)('tenants')
        .whereNot('status', 'deleted')
        .groupBy('database_server_id')
        .select('database_server_id', knex.raw('COUNT(*) AS n'));
      return new Map(rows.map((r) => [r.database_server_id, Number(r.n)]));
    },

    /** Custom domains of a tenant, by name. */
    async listDomains(tenantId: number, trx?: Knex.Transaction): Promise<TenantDomain[]> {
      const rows = await (trx ?? knex)<{ id: number; tenant_id: number; domain: string; created_at: Date }>('tenant_domains')
        .where({ tenant_id: tenantId })
        .orderBy('domain');
      return rows.map((r) => ({ id: r.id, tenantId: r.tenant_id, domain: r.domain, createdAt: r.created_at }));
    },

    /**
     * Adds a custom domain, and touches the tenant's `updated_at` in the same transaction
     * (so every API process's change watcher sees the new domain).
     * @throws ConflictError `DOMAIN_TAKEN` when any tenant already has it
     */
    async addDomain(tenantId: number, domain: string, trx?: Knex.Transaction): Promise<void> {
      try {
        await inTransaction(knex, trx, async (t) => {
          await t('tenant_domains').insert({ tenant_id: tenantId, domain });
          await touch(t, tenantId);
        });
      } catch (err) {
        if (mysqlErrno(err) === MysqlErrno.DUP_ENTRY) throw new ConflictError(`domain ${domain} is already in use`, 'DOMAIN_TAKEN', { domain });
        throw err;
      }
    },

    /** Removes a custom domain of a tenant (touching its `updated_at`, as {@link addDomain}). @returns true when it existed */
    async removeDomain(tenantId: number, domain: string, trx?: Knex.Transaction): Promise<boolean> {
      return inTransaction(knex, trx, async (t) => {
        const removed = (await t('tenant_domains').where({ tenant_id: tenantId, domain }).delete()) > 0;
        if (removed) await touch(t, tenantId);
        return removed;
      });
    },

    /** The slug of the tenant owning a custom domain, or undefined. */
    async slugByDomain(domain: string, trx?: Knex.Transaction): Promise<string | undefined> {
      const row = await (trx ?? knex)('tenant_domains as d')
        .join('tenants as t', 't.id', 'd.tenant_id')
        .where('d.domain', domain)
        .first<{ slug: string } | undefined>('t.slug');
      return row?.slug;
    },
  };
}

/** A refused foreign key on `tenants.plan` as ValidationError `UNKNOWN_PLAN`; other errors as they are. */
function unknownPlan(err: unknown, plan: string | undefined): unknown {
  if (mysqlErrno(err) !== MysqlErrno.NO_REFERENCED_ROW || plan === undefined) return err;
  return new ValidationError(`plan "${plan}" does not exist (see silo plans list)`, { fields: [{ path: 'plan', message: 'no such plan' }] }, 'UNKNOWN_PLAN');
}

/** Runs `fn` in the caller's transaction, or in a new one. */
function inTransaction<T>(knex: Knex, trx: Knex.Transaction | undefined, fn: (t: Knex.Transaction) => Promise<T>): Promise<T> {
  return trx ? fn(trx) : knex.transaction(fn);
}

/** Sets a tenant's `updated_at` to now: the change watcher of every API process reports the tenant. */
async function touch(t: Knex.Transaction, tenantId: number): Promise<void> {
  await t('tenants')
    .where({ id: tenantId })
    .update({ updated_at: t.raw('CURRENT_TIMESTAMP(3)') });
}

/** The tenants repository type. */
export type TenantsRepository = ReturnType<typeof createTenantsRepository>;
