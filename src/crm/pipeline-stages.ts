/**
 * Pipeline stages of a tenant: the ordered steps a deal moves through, each with a win
 * probability (%). Names are unique (`pipeline_stages_name_uq`). A stage is deleted for
 * good, and only while no deal refers to it; every change writes the activity log in
 * its transaction.
 */
import type { Knex } from 'knex';
import { z } from 'zod';
import { ConflictError } from '../lib/errors.js';
import { mysqlErrno } from '../lib/knex.js';
import { diff, logActivity } from './activity.js';
import { assertVersion, inTransaction, mapUniqueViolation, notFound, paginate, type Actor } from './common.js';

/** A pipeline stage as the API shows it. */
export interface PipelineStage {
  id: number;
  name: string;
  position: number;
  probability: number;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

/** Fields of a stage a client may write. */
export const stageFields = {
  name: z.string().trim().min(1).max(100),
  position: z.number().int().min(0).max(1_000_000),
  probability: z.number().int().min(0).max(100).describe('chance of winning a deal in this stage, in percent'),
};
export const createStageBody = z.strictObject({
  name: stageFields.name,
  position: stageFields.position.optional().describe('default: after the last stage'),
  probability: stageFields.probability,
});
export const updateStageBody = z.strictObject({
  name: stageFields.name.optional(),
  position: stageFields.position.optional(),
  probability: stageFields.probability.optional(),
  version: z.number().int().positive().optional(),
});

const UNIQUE = { pipeline_stages_name_uq: ['STAGE_NAME_TAKEN', 'a pipeline stage already has this name'] as [string, string] };
/** ER_ROW_IS_REFERENCED_2: a foreign key still points at the row. */
const ROW_IS_REFERENCED = 1451;

/** A row of a tenant's `pipeline_stages` table. */
export interface StageRow {
  id: number;
  name: string;
  position: number;
  probability: number;
  version: number;
  created_at: Date;
  updated_at: Date;
}

/** Maps a row to the API view. */
export function toStage(r: StageRow): PipelineStage {
  return {
    id: Number(r.id),
    name: r.name,
    position: r.position,
    probability: r.probability,
    version: r.version,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** The pipeline stages service over a tenant's Knex, acting as `actor`. */
export function createPipelineStagesService(knex: Knex, actor: Actor) {
  async function load(id: number, trx: Knex | Knex.Transaction = knex, lock = false): Promise<PipelineStage> {
    const q = trx<StageRow>('pipeline_stages').where({ id });
    if (lock) q.forUpdate();
    const row = await q.first();
    if (!row) throw notFound('stage', id);
    return toStage(row);
  }

  return {
    /** A page of stages, in pipeline order (position, then id). */
    list(p: { page: number; pageSize: number }) {
      return paginate(knex('pipeline_stages'), p, (q) => void q.orderBy('position', 'asc').orderBy('id', 'asc'), toStage);
    },

    /** @throws NotFoundError `STAGE_NOT_FOUND` */
    get: (id: number) => load(id),

    /** @throws ConflictError `STAGE_NAME_TAKEN` */
    async create(input: z.output<typeof createStageBody>, outer?: Knex.Transaction): Promise<PipelineStage> {
      try {
        return await inTransaction(knex, outer, async (trx) => {
          let position = input.position;
          if (position === undefined) {
            const last = await trx('pipeline_stages').max({ p: 'position' }).first();
            position = Math.min(Number(last?.p ?? 0) + 1, 1_000_000);
          }
          const [id] = await trx('pipeline_stages').insert({ name: input.name, position, probability: input.probability });
          const created = await load(Number(id), trx);
          await logActivity(trx, { userId: actor.userId, action: 'create', entity: 'pipeline_stage', entityId: created.id, changes: diff(null, created) });
          return created;
        });
      } catch (err) {
        throw mapUniqueViolation(err, UNIQUE);
      }
    },

    /** @throws NotFoundError; SiloError 428 `VERSION_REQUIRED`; ConflictError `VERSION_CONFLICT`, `STAGE_NAME_TAKEN` */
    async update(id: number, input: z.output<typeof updateStageBody>, version: number | undefined): Promise<PipelineStage> {
      try {
        return await knex.transaction(async (trx) => {
          const before = await load(id, trx, true);
          assertVersion(version ?? input.version, before.version, 'stage');
          const patch: Record<string, unknown> = {};
          for (const k of ['name', 'position', 'probability'] as const) if (input[k] !== undefined) patch[k] = input[k];
          await trx('pipeline_stages')
            .where({ id })
            .update({ ...patch, version: before.version + 1 });
          const after = await load(id, trx);
          await logActivity(trx, { userId: actor.userId, action: 'update', entity: 'pipeline_stage', entityId: id, changes: diff(before, after) });
          return after;
        });
      } catch (err) {
        throw mapUniqueViolation(err, UNIQUE);
      }
    },

    /**
     * Deletes a stage that no deal refers to. Deleted deals count too: they keep their
     * stage so that they can be restored.
     * @throws NotFoundError; ConflictError `STAGE_IN_USE`
     */
    async remove(id: number): Promise<void> {
      try {
        await knex.transaction(async (trx) => {
          // The exclusive lock waits for deal writes that hold a shared lock on the stage.
          const before = await load(id, trx, true);
          const rows: Array<{ live: number; n: number }> = await trx('deals')
            .where({ stage_id: id })
            .select(trx.raw('deleted_at IS NULL AS live'))
            .count({ n: '*' })
            .groupByRaw('deleted_at IS NULL');
          const live = Number(rows.find((r) => Number(r.live) === 1)?.n ?? 0);
          const deleted = Number(rows.find((r) => Number(r.live) === 0)?.n ?? 0);
          if (live)
            throw new ConflictError(`stage ${id} is used by ${live} live deal(s): move them to another stage first`, 'STAGE_IN_USE', {
              liveDeals: live,
              deletedDeals: deleted,
            });
          if (deleted)
            throw new ConflictError(`stage ${id} is still referred to by ${deleted} deleted deal(s), which keep it for a restore`, 'STAGE_IN_USE', {
              liveDeals: 0,
              deletedDeals: deleted,
            });
          await trx('pipeline_stages').where({ id }).delete();
          await logActivity(trx, { userId: actor.userId, action: 'delete', entity: 'pipeline_stage', entityId: id, changes: diff(before, null) });
        });
      } catch (err) {
        if (mysqlErrno(err) === ROW_IS_REFERENCED) throw new ConflictError(`stage ${id} is used by deals`, 'STAGE_IN_USE');
        throw err;
      }
    },
  };
}
