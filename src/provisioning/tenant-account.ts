/**
 * A short-lived connection to a tenant database as the tenant's own MySQL account (DML
 * only), for platform-side work that must obey the same grants as the API: adding a user
 * from the CLI, purging expired rows.
 */
import type { Knex } from 'knex';
import type { Tenant } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { createMysqlKnex } from '../lib/knex.js';
import { decryptSecret } from '../lib/secrets.js';

/**
 * Runs `fn` with a one-connection Knex authenticated as the tenant's account on its own
 * database and server, then closes it.
 * @throws ConfigError when no secret key can decrypt the stored password; the MySQL error
 *         when the server refuses the connection (e.g. 4151 while the account is fenced)
 */
export async function withTenantAccount<T>(
  ctx: SiloContext,
  tenant: Pick<Tenant, 'databaseServerId' | 'databaseName' | 'dbUser' | 'dbPasswordEnc'>,
  fn: (knex: Knex) => Promise<T>,
): Promise<T> {
  const server = await ctx.catalog.servers.get(tenant.databaseServerId);
  const password = decryptSecret(tenant.dbPasswordEnc, ctx.config.secrets);
  const knex = createMysqlKnex({ host: server.host, port: server.port, user: tenant.dbUser, password, database: tenant.databaseName }, { min: 0, max: 1 });
  try {
    return await fn(knex);
  } finally {
    await knex.destroy();
  }
}
