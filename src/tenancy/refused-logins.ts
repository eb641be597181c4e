/**
 * Refused logins of a tenant account after a password rotation: see {@link retryRefusedLogins}.
 */
import type { createTenantCredentialsRepository } from '../catalog/tenant-credentials.js';
import type { Config } from '../config.js';
import { MysqlErrno, mysqlErrno } from '../lib/knex.js';
import { decryptSecret } from '../lib/secrets.js';

/** What the retry needs of a tenant's account: its tenant, its password, its credentials fingerprint, and the fingerprints it moved past. */
export interface RotatableAccount {
  tenantId: number;
  /** `<server>/<database>/<user>`: the fingerprint without the password. */
  target: string;
  /** The password logins use now (decrypted; never logged). */
  password: string;
  /** Credentials fingerprint: `<server>/<database>/<user>/<encrypted password>`. */
  key: string;
  /** Fingerprints this account moved past after a refused login (a stale cached row keeps the newer password). */
  superseded: Set<string>;
}

/**
 * A tenant's password can change under a running API (`silo tenants rotate-credentials`).
 * MariaDB keeps the sessions already authenticated but refuses a new one (a connection or
 * a COM_CHANGE_USER) with the old password (ER_ACCESS_DENIED_ERROR, 1045). Then the
 * tenant's stored passwords are read again from the catalog (the current one and, while a
 * rotation is under way, the previous one) and `login` is tried again with each that
 * differs from the refused one; the account keeps the one that worked. No statement had
 * run on the refused session, so nothing is repeated.
 * @param login authenticates with the given password (opens a connection); rejects with mysql2's error
 * @throws the last refusal (or the first error that is not a refusal)
 */
export async function retryRefusedLogins<T>(
  account: RotatableAccount,
  credentials: ReturnType<typeof createTenantCredentialsRepository>,
  secrets: Config['secrets'],
  login: (password: string) => Promise<T>,
): Promise<T> {
  try {
    return await login(account.password);
  } catch (err) {
    if (mysqlErrno(err) !== MysqlErrno.ACCESS_DENIED) throw err;
    const refused = account.password;
    const stored = await credentials.get(account.tenantId);
    let last: unknown = err;
    for (const enc of [stored?.dbPasswordEnc, stored?.dbPasswordPrevEnc]) {
      if (!enc) continue;
      const password = decryptSecret(enc, secrets);
      if (password === refused) continue;
      try {
        const out = await login(password);
        account.password = password;
        if (enc === stored?.dbPasswordEnc && account.key !== `${account.target}/${enc}`) {
          account.superseded.add(account.key);
          account.key = `${account.target}/${enc}`;
        }
        return out;
      } catch (retryErr) {
        last = retryErr;
        if (mysqlErrno(retryErr) !== MysqlErrno.ACCESS_DENIED) break;
      }
    }
    throw last;
  }
}
