/** How the CLI shows catalog records: never the encrypted password. */
import type { Operation, Tenant, TenantDomain } from '../src/catalog/index.js';

/** Public fields of a tenant (JSON output). */
export function tenantView(t: Tenant, domains?: TenantDomain[]) {
  return {
    id: t.id,
    slug: t.slug,
    name: t.name,
    plan: t.plan,
    status: t.status,
    statusReason: t.statusReason,
    databaseServerId: t.databaseServerId,
    databaseName: t.databaseName,
    dbUser: t.dbUser,
    schemaVersion: t.schemaVersion,
    adminEmail: t.adminEmail,
    createdAt: t.createdAt,
    updatedAt: t.updatedAt,
    suspendedAt: t.suspendedAt,
    deletedAt: t.deletedAt,
    ...(domains ? { domains: domains.map((d) => d.domain) } : {}),
  };
}

/** An operation for JSON output. */
export function operationView(o: Operation) {
  const durationMs = o.finishedAt ? o.finishedAt.getTime() - o.startedAt.getTime() : null;
  return { ...o, durationMs };
}
