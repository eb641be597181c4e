/**
 * Administrator connections to database servers: one small server-level pool per
 * server (for CREATE/DROP/GRANT), and short-lived single-connection Knexes on one
 * tenant database (for migrations and seeding, which need DDL the tenant account lacks).
 */
import type { Knex } from 'knex';
import type { Catalog, Tenant } from '../catalog/index.js';
import type { MysqlUrl } from '../config.js';
import { createMysqlKnex } from '../lib/knex.js';
import { createMysqlAdmin, type MysqlAdmin } from './mysql-admin.js';

/** Server-level admin access. */
export interface ServerAdmin {
  serverId: number;
  url: MysqlUrl;
  knex: Knex;
  sql: MysqlAdmin;
}

/** Cache of admin pools, one per database server. */
export class AdminConnections {
  private readonly servers = new Map<number, Promise<ServerAdmin>>();

  constructor(private readonly catalog: Catalog) {}

  /** Admin access to a database server (pool of at most 4 connections). */
  server(serverId: number): Promise<ServerAdmin> {
    let p = this.servers.get(serverId);
    if (!p) {
      p = (async () => {
        const server = await this.catalog.servers.get(serverId);
        const url = this.catalog.servers.adminUrl(server);
        const knex = createMysqlKnex(url, { min: 0, max: 4 });
        return { serverId, url, knex, sql: createMysqlAdmin(knex) };
      })();
      p.catch(() => this.servers.delete(serverId));
      this.servers.set(serverId, p);
    }
    return p;
  }

  /**
   * Runs `fn` with an admin Knex of one connection on the tenant's database, then closes
   * it. One connection, so session state (`GET_LOCK`) spans everything `fn` does.
   */
  async withTenantDatabase<T>(tenant: Pick<Tenant, 'databaseServerId' | 'databaseName'>, fn: (knex: Knex) => Promise<T>): Promise<T> {
    const { url } = await this.server(tenant.databaseServerId);
    const knex = createMysqlKnex({ ...url, database: tenant.databaseName }, { min: 0, max: 1 });
    try {
      return await fn(knex);
    } finally {
      await knex.destroy();
    }
  }

  /** Closes every admin pool. */
  async destroy(): Promise<void> {
    const all = [...this.servers.values()];
    this.servers.clear();
    await Promise.all(all.map(async (p) => (await p.catch(() => undefined))?.knex.destroy()));
  }
}
