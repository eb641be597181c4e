/** Records of the catalog, as the services see them (camelCase; dates are `Date` in UTC). */

/** A tenant's lifecycle state (ARCHITECTURE.md, "Tenant lifecycle"). */
export type TenantStatus = 'pending' | 'provisioning' | 'active' | 'suspended' | 'maintenance' | 'failed' | 'deleted';
export const TENANT_STATUSES: readonly TenantStatus[] = ['pending', 'provisioning', 'active', 'suspended', 'maintenance', 'failed', 'deleted'];

/** A row of `tenants`. `dbPasswordEnc` is AES-256-GCM ciphertext, never the password. */
export interface Tenant {
  id: number;
  slug: string;
  name: string;
  plan: string;
  status: TenantStatus;
  statusReason: string | null;
  databaseServerId: number;
  databaseName: string;
  dbUser: string;
  dbPasswordEnc: string;
  schemaVersion: string | null;
  adminEmail: string | null;
  /**
   * Token epoch: every tenant token carries the generation it was issued in; a token of
   * another generation is refused. Bumped by recreate, restore, delete and revoke-tokens.
   */
  generation: number;
  /** Bumped whenever a user's `token_version` changes in the tenant database (see `src/http/plugins/auth.ts`). */
  authVersion: number;
  /** When a signup made this tenant and its admin's email is not verified yet; null for operator-made and verified tenants. */
  unverifiedSince: Date | null;
  createdAt: Date;
  updatedAt: Date;
  suspendedAt: Date | null;
  deletedAt: Date | null;
}

/**
 * What a tenant on a plan may use; null means unlimited. Counts are of live records
 * (active users, contacts not soft-deleted); bytes are the sum of attachment sizes.
 */
export interface PlanLimits {
  maxUsers: number | null;
  maxContacts: number | null;
  maxAttachmentBytes: number | null;
  /** API requests of the tenant per minute (all its API processes together with Redis). */
  requestsPerMinute: number | null;
}

/** A row of `plans`. */
export interface Plan extends PlanLimits {
  name: string;
  createdAt: Date;
  updatedAt: Date;
}

/** A row of `database_servers`. */
export interface DatabaseServer {
  id: number;
  name: string;
  host: string;
  port: number;
  adminUser: string;
  adminPasswordEnc: string;
  status: 'active' | 'draining' | 'disabled';
}

/** Lifecycle actions recorded as operations. */
export type OperationKind =
  | 'create'
  | 'migrate'
  | 'rollback'
  | 'repair'
  | 'suspend'
  | 'resume'
  | 'recreate'
  | 'delete'
  | 'backup'
  | 'restore'
  | 'domain-add'
  | 'domain-remove'
  | 'revoke-tokens'
  | 'rotate-credentials'
  | 'rename'
  | 'signup'
  | 'set-plan';

/** A row of `operations`. */
export interface Operation {
  id: number;
  kind: OperationKind;
  tenantId: number | null;
  tenantSlug?: string | null;
  actor: string;
  step: string | null;
  status: 'running' | 'succeeded' | 'failed';
  error: string | null;
  details: Record<string, unknown> | null;
  startedAt: Date;
  finishedAt: Date | null;
}

/** A row of `tenant_domains`. */
export interface TenantDomain {
  id: number;
  tenantId: number;
  domain: string;
  createdAt: Date;
}

/** Roles of platform users. */
export type PlatformRole = 'operator' | 'support';

/** A row of `platform_users` (the hash stays inside the catalog module). */
export interface PlatformUser {
  id: number;
  email: string;
  role: PlatformRole;
  active: boolean;
  createdAt: Date;
}

/** Why a backup was taken: by hand, or before a destructive action. */
export type BackupKind = 'manual' | 'pre-recreate' | 'pre-delete' | 'pre-restore';
export const BACKUP_KINDS: readonly BackupKind[] = ['manual', 'pre-recreate', 'pre-delete', 'pre-restore'];

/**
 * A row of `backups`: a gzip-compressed logical dump of one tenant database in S3.
 * `sizeBytes` and `sha256` describe the stored object (the compressed bytes).
 */
export interface Backup {
  id: number;
  tenantId: number;
  operationId: number | null;
  kind: BackupKind;
  status: 'running' | 'completed' | 'failed';
  storageKey: string;
  sizeBytes: number | null;
  /** Hex SHA-256 of the stored object. */
  sha256: string | null;
  /** Newest tenant migration applied in the dumped database. */
  schemaVersion: string | null;
  error: string | null;
  createdAt: Date;
  finishedAt: Date | null;
}
