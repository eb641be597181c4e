/**
 * Data access for a tenant account's stored passwords during a credential rotation:
 * `tenants.db_password_enc` (the current one) and `tenants.db_password_prev_enc` (the one
 * before it, kept until the server has the new one). Values are ciphertext
 * (`Config.secrets`), never passwords.
 */
import type { Knex } from 'knex';

/** The stored passwords of a tenant account (ciphertext). */
export interface StoredCredentials {
  dbPasswordEnc: string;
  /** Set while a rotation is under way (or was interrupted). */
  dbPasswordPrevEnc: string | null;
}

/** Repository over the password columns of `tenants`. */
export function createTenantCredentialsRepository(knex: Knex) {
  return {
    /** The stored passwords of a tenant, or undefined when the tenant does not exist. */
    async get(tenantId: number, trx?: Knex.Transaction): Promise<StoredCredentials | undefined> {
      const row = await (trx ?? knex)<{ id: number; db_password_enc: string; db_password_prev_enc: string | null }>('tenants')
        .where({ id: tenantId })
        .first('db_password_enc', 'db_password_prev_enc');
      return row && { dbPasswordEnc: row.db_password_enc, dbPasswordPrevEnc: row.db_password_prev_enc ?? null };
    },

    /**
     * Records a new password before the server gets it: `db_password_enc` becomes `nextEnc`
     * and the value it held moves to `db_password_prev_enc`, only if it still is `currentEnc`
     * (compare-and-set).
     * @returns true when the row changed
     */
    async begin(tenantId: number, currentEnc: string, nextEnc: string, trx?: Knex.Transaction): Promise<boolean> {
      const n = await (trx ?? knex)('tenants')
        .where({ id: tenantId, db_password_enc: currentEnc })
        .update({ db_password_prev_enc: currentEnc, db_password_enc: nextEnc });
      return n > 0;
    },

    /** Forgets the previous password (the server has the current one). */
    async clearPrevious(tenantId: number, trx?: Knex.Transaction): Promise<void> {
      await (trx ?? knex)('tenants').where({ id: tenantId }).whereNotNull('db_password_prev_enc').update({ db_password_prev_enc: null });
    },
  };
}

/** The tenant credentials repository type. */
export type TenantCredentialsRepository = ReturnType<typeof createTenantCredentialsRepository>;
