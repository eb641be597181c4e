/**
 * Refused logins of a tenant pool after a password rotation: see {@link retryRefusedLogins}.
 */
import type { Knex } from 'knex';
import type { createTenantCredentialsRepository } from '../catalog/tenant-credentials.js';
import type { Config } from '../config.js';
import { MysqlErrno, mysqlErrno } from '../lib/knex.js';
import { decryptSecret } from '../lib/secrets.js';

/** What the retry needs of a pool: its tenant, its credentials fingerprint, and the fingerprints it moved past. */
export interface RotatablePool {
  tenantId: number;
  knex: Knex;
  /** Credentials fingerprint: `<server>/<database>/<user>/<encrypted password>`. */
  key: string;
  /** Fingerprints this pool moved past after a refused login (a stale cached row keeps the pool). */
  superseded: Set<string>;
}

/**
 * A tenant's password can change under a running API (`silo tenants rotate-credentials`).
 * MariaDB keeps the sessions already authenticated but refuses a new one with the old
 * password (ER_ACCESS_DENIED_ERROR, 1045). Then the tenant's stored passwords are read
 * again from the catalog (the current one and, while a rotation is under way, the
 * previous one) and the connection is tried again with each that differs from the
 * refused one; the pool keeps the one that worked. No statement had run on the refused
 * connection, so nothing is repeated.
 * @param target `<server>/<database>/<user>`, the fingerprint without the password
 */
export function retryRefusedLogins(
  entry: RotatablePool,
  target: string,
  credentials: ReturnType<typeof createTenantCredentialsRepository>,
  secrets: Config['secrets'],
): void {
  const client = entry.knex.client as { connectionSettings: { password?: string }; acquireRawConnection(): Promise<unknown> };
  const connect = client.acquireRawConnection.bind(client);
  client.acquireRawConnection = async () => {
    try {
      return await connect();
    } catch (err) {
      if (mysqlErrno(err) !== MysqlErrno.ACCESS_DENIED) throw err;
      const refused = client.connectionSettings.password;
      const stored = await credentials.get(entry.tenantId);
      let last: unknown = err;
      for (const enc of [stored?.dbPasswordEnc, stored?.dbPasswordPrevEnc]) {
        if (!enc) continue;
        const password = decryptSecret(enc, secrets);
        if (password === refused) continue;
        client.connectionSettings = { ...client.connectionSettings, password };
        try {
          const raw = await connect();
          if (enc === stored?.dbPasswordEnc && entry.key !== `${target}/${enc}`) {
            entry.superseded.add(entry.key);
            entry.key = `${target}/${enc}`;
          }
          return raw;
        } catch (retryErr) {
          last = retryErr;
          if (mysqlErrno(retryErr) !== MysqlErrno.ACCESS_DENIED) break;
        }
      }
      throw last;
    }
  };
}
