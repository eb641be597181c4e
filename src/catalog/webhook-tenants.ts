/**
 * Data access for `webhook_tenants` (catalog migration 0015): which tenants have active
 * webhooks, so the webhook dispatcher sweeps only their outboxes.
 */
import type { Knex } from 'knex';
import { toTenant, type TenantRow } from './tenants.js';
import type { Tenant } from './types.js';

/** The repository over the catalog's Knex. */
export function createWebhookTenantsRepository(knex: Knex) {
  return {
    /** Records that `tenantId` has `activeWebhooks` active webhooks (0 removes its row). */
    async set(tenantId: number, activeWebhooks: number): Promise<void> {
      if (activeWebhooks <= 0) await knex('webhook_tenants').where({ tenant_id: tenantId }).delete();
      else
        await knex.raw(
          'INSERT INTO webhook_tenants (tenant_id, active_webhooks) VALUES (?, ?) ON DUPLICATE KEY UPDATE active_webhooks = VALUES(active_webhooks)',
          [tenantId, activeWebhooks],
        );
    },

    /** Active tenants with at least one active webhook. */
    async activeTenants(): Promise<Tenant[]> {
      const rows: TenantRow[] = await knex('webhook_tenants as w').join('tenants as t', 't.id', 'w.tenant_id').where('t.status', 'active').select('t.*');
      return rows.map(toTenant);
    },
  };
}
