/**
 * What a tenant uses, next to its plan's limits: live records (src/crm/quotas.ts counts
 * them as the quotas do), attachment bytes, the database's size and the requests of the
 * last 24 h. The same document for `silo tenants usage`, `GET /platform/v1/tenants/{slug}/usage`
 * and the tenant admins' `GET /api/v1/usage`.
 */
import type { Knex } from 'knex';
import { pickLimits, type PlanLimits, type Tenant } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { recordUsage } from '../crm/quotas.js';
import { tenantRequestCount } from '../history/tenant-requests.js';
import { withTenantAccount } from './tenant-account.js';

/** Window of `requestsLast24h`, ms. */
const DAY_MS = 86_400_000;

/** The usage document. Bytes are bytes. */
export interface TenantUsage {
  tenant: string;
  plan: string;
  /** The plan's limits (null: unlimited). */
  limits: PlanLimits;
  usage: {
    /** Active users. */
    users: number;
    /** Contacts, companies and deals not soft-deleted. */
    contacts: number;
    companies: number;
    deals: number;
    /** Sum of the sizes of all attachments. */
    attachmentBytes: number;
    /** `DATA_LENGTH + INDEX_LENGTH` of the tenant database's tables (`information_schema.TABLES`; InnoDB's estimate, in pages). */
    databaseBytes: number;
    /** Requests of the tenant recorded in the request history in the last 24 h. */
    requestsLast24h: number;
  };
  /** When it was measured. */
  at: Date;
}

/**
 * Measures a tenant's usage.
 * @param tenantKnex a Knex on the tenant database as its own account (the API's lease);
 *   absent: a short-lived connection of the tenant's account is opened
 * @throws the MySQL error when the tenant database cannot be read (e.g. while its account is fenced)
 */
export async function tenantUsage(ctx: SiloContext, tenant: Tenant, tenantKnex?: Knex): Promise<TenantUsage> {
  const at = new Date();
  const [records, databaseBytes, requestsLast24h, plan] = await Promise.all([
    tenantKnex ? recordUsage(tenantKnex) : withTenantAccount(ctx, tenant, recordUsage),
    databaseSize(ctx, tenant),
    tenantRequestCount(ctx.catalog.knex, tenant.id, new Date(at.getTime() - DAY_MS), at),
    ctx.catalog.plans.find(tenant.plan),
  ]);
  const limits = plan ? pickLimits(plan) : { maxUsers: null, maxContacts: null, maxAttachmentBytes: null, requestsPerMinute: null };
  return { tenant: tenant.slug, plan: tenant.plan, limits, usage: { ...records, databaseBytes, requestsLast24h }, at };
}

/** `DATA_LENGTH + INDEX_LENGTH` of the tenant database, read through the admin connection of its server. */
async function databaseSize(ctx: SiloContext, tenant: Pick<Tenant, 'databaseServerId' | 'databaseName'>): Promise<number> {
  const { knex } = await ctx.admin.server(tenant.databaseServerId);
  const [rows] = (await knex.raw('SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?', [
    tenant.databaseName,
  ])) as [Array<{ n: number | string }>];
  return Number(rows[0]?.n ?? 0);
}
