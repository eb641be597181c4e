/**
 * Data access for `database_servers`, and placement of new tenants.
 */
import type { Knex } from 'knex';
import type { MysqlUrl } from '../config.js';
import { SiloError } from '../lib/errors.js';
import { decryptSecret, encryptSecret, type SecretKeyring } from '../lib/secrets.js';
import type { DatabaseServer } from './types.js';

interface ServerRow {
  id: number;
  name: string;
  host: string;
  port: number;
  admin_user: string;
  admin_password_enc: string;
  status: DatabaseServer['status'];
}

const toServer = (r: ServerRow): DatabaseServer => ({
  id: r.id,
  name: r.name,
  host: r.host,
  port: r.port,
  adminUser: r.admin_user,
  adminPasswordEnc: r.admin_password_enc,
  status: r.status,
});

/** Name under which `SILO_TENANT_DB_URL` is registered. */
export const DEFAULT_SERVER_NAME = 'default';

/** Repository over `database_servers`; admin passwords are encrypted with `secrets` (`Config.secrets`). */
export function createServersRepository(knex: Knex, secrets: SecretKeyring) {
  return {
    /**
     * Registers (or updates) the server named `name` with admin credentials (password stored encrypted).
     * @returns its id
     */
    async upsert(name: string, url: MysqlUrl, trx?: Knex.Transaction): Promise<number> {
      const db = trx ?? knex;
      const values = { host: url.host, port: url.port, admin_user: url.user, admin_password_enc: encryptSecret(url.password, secrets) };
      const existing = await db<ServerRow>('database_servers').where({ name }).first();
      if (existing) {
        await db('database_servers').where({ id: existing.id }).update(values);
        return existing.id;
      }
      const [id] = await db('database_servers').insert({ name, ...values });
      return Number(id);
    },

    /** All servers, by id. */
    async list(trx?: Knex.Transaction): Promise<DatabaseServer[]> {
      return (await (trx ?? knex)<ServerRow>('database_servers').orderBy('id')).map(toServer);
    },

    /** The server with this id. @throws SiloError `SERVER_NOT_FOUND` */
    async get(id: number, trx?: Knex.Transaction): Promise<DatabaseServer> {
      const row = await (trx ?? knex)<ServerRow>('database_servers').where({ id }).first();
      if (!row) throw new SiloError(`database server ${id} is not in the catalog`, { code: 'SERVER_NOT_FOUND', status: 500 });
      return toServer(row);
    },

    /** Admin connection parameters of a server (password decrypted; no database). */
    adminUrl(server: DatabaseServer): MysqlUrl {
      return { host: server.host, port: server.port, user: server.adminUser, password: decryptSecret(server.adminPasswordEnc, secrets), database: '' };
    },
  };
}

/** The servers repository type. */
export type ServersRepository = ReturnType<typeof createServersRepository>;
