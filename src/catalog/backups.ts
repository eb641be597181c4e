/**
 * Data access for `backups`: one row per tenant backup stored in S3. A row is `running`
 * while its dump streams, then `completed` (with size and SHA-256) or `failed` (with the
 * error). Only completed backups can be restored.
 */
import type { Knex } from 'knex';
import type { Backup, BackupKind } from './types.js';

interface BackupRow {
  id: number;
  tenant_id: number;
  operation_id: number | null;
  kind: BackupKind;
  status: Backup['status'];
  storage_key: string;
  size_bytes: number | string | null;
  sha256: string | null;
  schema_version: string | null;
  error: string | null;
  created_at: Date;
  finished_at: Date | null;
}

function toBackup(r: BackupRow): Backup {
  return {
    id: Number(r.id),
    tenantId: r.tenant_id,
    operationId: r.operation_id === null ? null : Number(r.operation_id),
    kind: r.kind,
    status: r.status,
    storageKey: r.storage_key,
    sizeBytes: r.size_bytes === null ? null : Number(r.size_bytes),
    sha256: r.sha256,
    schemaVersion: r.schema_version,
    error: r.error,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
  };
}

/** Repository over `backups`. */
export function createBackupsRepository(knex: Knex) {
  return {
    /**
     * Opens a `running` backup row; the storage key is made from the new id by `keyOf`.
     * @returns the row
     */
    async start(
      b: { tenantId: number; operationId: number | null; kind: BackupKind; schemaVersion: string | null },
      keyOf: (id: number, at: Date) => string,
    ): Promise<Backup> {
      return knex.transaction(async (trx) => {
        const [id] = await trx('backups').insert({
          tenant_id: b.tenantId,
          operation_id: b.operationId,
          kind: b.kind,
          status: 'running',
          storage_key: '',
          schema_version: b.schemaVersion,
        });
        const row = (await trx<BackupRow>('backups').where({ id }).first())!;
        const key = keyOf(Number(id), row.created_at);
        await trx('backups').where({ id }).update({ storage_key: key });
        return toBackup({ ...row, storage_key: key });
      });
    },

    /** Marks a backup completed with its object's size (bytes) and SHA-256 (hex). */
    async complete(id: number, facts: { sizeBytes: number; sha256: string }): Promise<void> {
      await knex('backups')
        .where({ id })
        .update({ status: 'completed', size_bytes: facts.sizeBytes, sha256: facts.sha256, error: null, finished_at: knex.raw('CURRENT_TIMESTAMP(3)') });
    },

    /** Marks a backup failed with the reason. */
    async fail(id: number, error: string): Promise<void> {
      await knex('backups')
        .where({ id })
        .update({ status: 'failed', error: error.slice(0, 60_000), finished_at: knex.raw('CURRENT_TIMESTAMP(3)') });
    },

    /** One backup, or undefined. */
    async get(id: number): Promise<Backup | undefined> {
      const row = await knex<BackupRow>('backups').where({ id }).first();
      return row && toBackup(row);
    },

    /** Backups of a tenant, newest first (`limit` rows, default 100). */
    async list(tenantId: number, filter: { status?: Backup['status']; limit?: number } = {}): Promise<Backup[]> {
      const q = knex<BackupRow>('backups')
        .where({ tenant_id: tenantId })
        .orderBy('id', 'desc')
        .limit(filter.limit ?? 100);
      if (filter.status) q.where({ status: filter.status });
      return (await q).map(toBackup);
    },

    /** The newest completed backup of a tenant, or undefined. */
    async latestCompleted(tenantId: number): Promise<Backup | undefined> {
      const row = await knex<BackupRow>('backups').where({ tenant_id: tenantId, status: 'completed' }).orderBy('id', 'desc').first();
      return row && toBackup(row);
    },

    /** Backups of a tenant still `running` (after a crash: their process is gone when the caller holds the tenant lock). */
    async running(tenantId: number): Promise<Backup[]> {
      return (await knex<BackupRow>('backups').where({ tenant_id: tenantId, status: 'running' }).orderBy('id')).map(toBackup);
    },
  };
}

/** The backups repository type. */
export type BackupsRepository = ReturnType<typeof createBackupsRepository>;
