import type { Knex } from 'knex';

/** What umzug passes to a migration's `up`/`down`: the Knex of the database being migrated. */
export interface MigrationParams {
  name: string;
  context: Knex;
}

/**
 * The shape of a migration file (`migrations/{main,tenant}/NNNN-verb-object.ts`).
 * `creates`/`drops` name the tables the migration adds or removes; `silo tenants status`
 * uses them to report drift. `down` undoes any prefix of `up` (a crash can stop `up`
 * after any statement, and the runner then runs `down` before `up` again): see
 * `migrations/TEMPLATE.ts.txt`.
 */
export interface MigrationModule {
  up(params: MigrationParams): Promise<void>;
  down(params: MigrationParams): Promise<void>;
  creates?: readonly string[];
  drops?: readonly string[];
}

/** Thrown by the `down` of a migration that cannot be undone. */
export class IrreversibleMigrationError extends Error {
  constructor(name: string, why: string) {
    super(`migration ${name} cannot be undone: ${why}`);
    this.name = 'IrreversibleMigrationError';
  }
}
