/**
 * The catalog: one Knex and the repositories over it.
 */
import type { Knex } from 'knex';
import type { Config } from '../config.js';
import { createCatalogKnex } from './db.js';
import { createBackupsRepository } from './backups.js';
import { createOperationsRepository } from './operations.js';
import { createPlansRepository } from './plans.js';
import { createPlatformUsersRepository } from './platform-users.js';
import { createServersRepository } from './servers.js';
import { createTenantsRepository } from './tenants.js';

export * from './types.js';
export { pickLimits } from './plans.js';

/** The catalog's repositories over one Knex. */
export interface Catalog {
  knex: Knex;
  tenants: ReturnType<typeof createTenantsRepository>;
  operations: ReturnType<typeof createOperationsRepository>;
  servers: ReturnType<typeof createServersRepository>;
  platformUsers: ReturnType<typeof createPlatformUsersRepository>;
  backups: ReturnType<typeof createBackupsRepository>;
  plans: ReturnType<typeof createPlansRepository>;
  /** Closes the catalog's connections. */
  destroy(): Promise<void>;
}

/** Opens the catalog (lazily: no connection is made until the first query). */
export function openCatalog(config: Pick<Config, 'catalog' | 'secrets'>, knex: Knex = createCatalogKnex(config)): Catalog {
  return {
    knex,
    tenants: createTenantsRepository(knex),
    operations: createOperationsRepository(knex),
    servers: createServersRepository(knex, config.secrets),
    platformUsers: createPlatformUsersRepository(knex),
    backups: createBackupsRepository(knex),
    plans: createPlansRepository(knex),
    destroy: () => knex.destroy(),
  };
}
