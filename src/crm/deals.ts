/**
 * Deals of a tenant: CRUD with soft delete and restore, moves through the pipeline, win
 * and lose, optimistic locking, filters, sort and stats; every change writes the activity
 * log in its transaction. Money is exact: amounts are DECIMAL(15,2) strings and all
 * arithmetic is in integer cents (BigInt).
 */
import type { Knex } from 'knex';
import type { z } from 'zod';
import { UnprocessableError } from '../lib/errors.js';
import { diff, logActivity } from './activity.js';
import { emitEvent } from '../webhooks/emit.js';
import type { BulkOps } from './bulk.js';
import {
  applyDateRanges,
  applySort,
  definedColumns,
  assertVersion,
  inTransaction,
  loadRow,
  markDeleted,
  markRestored,
  notDeleted,
  paginate,
  type Actor,
} from './common.js';
import {
  DEAL_SEARCH_COLUMNS,
  DEAL_SORT,
  DEAL_STATUSES,
  formatCents,
  toCents,
  toDeal,
  type createDealBody,
  type Deal,
  type DealBucket,
  type DealFilters,
  type DealPatch,
  type DealRow,
  type DealStats,
  type DealStatus,
  type updateDealBody,
} from './deal-model.js';
import { applySearch, fulltextSettings, type FulltextSettings } from './search.js';

// The model (view, money, schemas) lives in its own file; everything stays importable from here.
export * from './deal-model.js';

function invalidReference(field: string, message: string): UnprocessableError {
  return new UnprocessableError(message, 'INVALID_REFERENCE', { field, fields: [{ path: `body.${field}`, message }] });
}

type References = { stageId?: number; companyId?: number | null; contactId?: number | null; ownerId?: number | null };

/**
 * Checks the references being set (locking each row in share mode, so it cannot be deleted
 * before the commit) and that the contact works for the deal's company, if both have one.
 * @param current the deal before the change (for an update)
 * @throws UnprocessableError `INVALID_REFERENCE` naming the field
 */
async function assertReferences(trx: Knex.Transaction, set: References, current?: Deal): Promise<void> {
  if (set.stageId !== undefined && !(await trx('pipeline_stages').where({ id: set.stageId }).forShare().first('id'))) {
    throw invalidReference('stageId', `stageId ${set.stageId} is not a pipeline stage of this tenant`);
  }
  if (set.companyId != null && !(await trx('companies').where({ id: set.companyId }).whereNull('deleted_at').forShare().first('id'))) {
    throw invalidReference('companyId', `companyId ${set.companyId} is not a live company of this tenant`);
  }
  if (set.contactId != null && !(await trx('contacts').where({ id: set.contactId }).whereNull('deleted_at').forShare().first('id'))) {
    throw invalidReference('contactId', `contactId ${set.contactId} is not a live contact of this tenant`);
  }
  if (set.ownerId != null && !(await trx('users').where({ id: set.ownerId, active: true }).forShare().first('id'))) {
    throw invalidReference('ownerId', `ownerId ${set.ownerId} is not an active user of this tenant`);
  }
  if (set.contactId === undefined && set.companyId === undefined) return;
  const contactId = set.contactId !== undefined ? set.contactId : (current?.contactId ?? null);
  const companyId = set.companyId !== undefined ? set.companyId : (current?.companyId ?? null);
  if (contactId === null || companyId === null) return;
  const contact = await trx<{ id: number; company_id: number | null }>('contacts').where({ id: contactId }).first('company_id');
  if (contact && contact.company_id !== null && Number(contact.company_id) !== companyId) {
    const field = set.contactId !== undefined ? 'contactId' : 'companyId';
    throw invalidReference(field, `${field}: contact ${contactId} belongs to company ${contact.company_id}, not to the deal's company ${companyId}`);
  }
}

function columns(input: Partial<z.output<typeof updateDealBody>>): Record<string, unknown> {
  const map = {
    title: 'title',
    amount: 'amount',
    currency: 'currency',
    stageId: 'stage_id',
    companyId: 'company_id',
    contactId: 'contact_id',
    ownerId: 'owner_id',
    expectedCloseDate: 'expected_close_date',
    status: 'status',
  } as const;
  return definedColumns<keyof typeof map>(input, map);
}

/** Adds `count` deals worth `cents` in `currency` to a bucket. */
function add(bucket: { count: number; cents: Map<string, bigint> }, count: number, currency: string, cents: bigint): void {
  bucket.count += count;
  bucket.cents.set(currency, (bucket.cents.get(currency) ?? 0n) + cents);
}
const bucket = () => ({ count: 0, cents: new Map<string, bigint>() });
const out = (b: ReturnType<typeof bucket>): DealBucket => ({
  count: b.count,
  amountSum: Object.fromEntries([...b.cents].sort(([a], [c]) => a.localeCompare(c)).map(([k, v]) => [k, formatCents(v)])),
});

/** The deals service over a tenant's Knex, acting as `actor`. */
export function createDealsService(knex: Knex, actor: Actor) {
  const filtered = (ft: FulltextSettings, fl: DealFilters) => {
    // Deals with their stage's probability, as one derived table that filters, sorts and counts like a table.
    const withStage = knex('deals').join('pipeline_stages as s', 's.id', 'deals.stage_id').select('deals.*', 's.probability as stage_probability');
    // The search goes inside, on the table itself, where MATCH can use the FULLTEXT index.
    applySearch(
      withStage,
      ft,
      DEAL_SEARCH_COLUMNS.map((c) => `deals.${c}`),
      fl.q,
    );
    const q = knex.queryBuilder().from(withStage.as('d'));
    if (!fl.includeDeleted) q.whereNull('deleted_at');
    if (fl.stageId) q.where('stage_id', fl.stageId);
    if (fl.status) q.where('status', fl.status);
    if (fl.ownerId) q.where('owner_id', fl.ownerId);
    if (fl.companyId) q.where('company_id', fl.companyId);
    if (fl.minAmount !== undefined) q.whereRaw('amount >= CAST(? AS DECIMAL(15,2))', [fl.minAmount]);
    if (fl.maxAmount !== undefined) q.whereRaw('amount <= CAST(? AS DECIMAL(15,2))', [fl.maxAmount]);
    if (fl.closeAfter) q.where('expected_close_date', '>=', fl.closeAfter);
    if (fl.closeBefore) q.where('expected_close_date', '<=', fl.closeBefore);
    applyDateRanges(q, fl);
    return q;
  };

  async function load(dealId: number, trx: Knex | Knex.Transaction = knex, opts: { includeDeleted?: boolean; lock?: boolean } = {}): Promise<Deal> {
    const row = await loadRow<DealRow>(trx, 'deals', 'deal', dealId, opts);
    const stage = await trx<{ id: number; probability: number }>('pipeline_stages').where({ id: row.stage_id }).first('probability');
    return toDeal({ ...row, stage_probability: stage?.probability ?? 0 });
  }

  /**
   * In `trx`: locks the live deal, checks its version (null: no check, for bulk), applies
   * `patchOf`'s columns and logs the change.
   */
  async function changeIn(
    trx: Knex.Transaction,
    dealId: number,
    sentVersion: number | undefined | null,
    patchOf: (before: Deal, trx: Knex.Transaction) => Promise<Record<string, unknown>>,
  ): Promise<Deal> {
    const before = await load(dealId, trx, { lock: true });
    if (sentVersion !== null) assertVersion(sentVersion, before.version, 'deal');
    const patch = await patchOf(before, trx);
    if (!Object.keys(patch).length) return before;
    await trx('deals')
      .where({ id: dealId })
      .update({ ...patch, version: before.version + 1 });
    const after = await load(dealId, trx);
    await logActivity(trx, { userId: actor.userId, action: 'update', entity: 'deal', entityId: dealId, changes: diff(before, after) });
    await emitEvent(trx, 'deal.updated', after);
    // deal.won / deal.lost when the status changes to it (by win, lose or an update of status).
    if (after.status !== before.status && after.status !== 'open') await emitEvent(trx, after.status === 'won' ? 'deal.won' : 'deal.lost', after);
    return after;
  }

  /** {@link changeIn} in a transaction of its own. */
  function change(
    dealId: number,
    sentVersion: number | undefined,
    patchOf: (before: Deal, trx: Knex.Transaction) => Promise<Record<string, unknown>>,
  ): Promise<Deal> {
    return knex.transaction((trx) => changeIn(trx, dealId, sentVersion, patchOf));
  }

  /** PATCH in `trx` (version: as {@link changeIn}). */
  const updateIn = (trx: Knex.Transaction, dealId: number, input: DealPatch, sentVersion: number | undefined | null) =>
    changeIn(trx, dealId, sentVersion, async (before, t) => {
      await assertReferences(t, input, before);
      return columns(input);
    });

  /** DELETE in `trx`. @throws NotFoundError */
  const removeIn = async (trx: Knex.Transaction, dealId: number): Promise<void> => {
    const before = await load(dealId, trx, { lock: true });
    await markDeleted(trx, { table: 'deals', entity: 'deal', id: dealId, version: before.version }, actor.userId);
    await emitEvent(trx, 'deal.deleted', () => load(dealId, trx, { includeDeleted: true }));
  };

  /** Restore in `trx`. @param mustBeDeleted a live deal is an error (bulk). @throws NotFoundError; ConflictError `NOT_DELETED` */
  const restoreIn = async (trx: Knex.Transaction, dealId: number, mustBeDeleted: boolean): Promise<Deal> => {
    const before = await load(dealId, trx, { includeDeleted: true, lock: true });
    if (!before.deletedAt) {
      if (mustBeDeleted) throw notDeleted('deal', dealId);
      return before;
    }
    await markRestored(trx, { table: 'deals', entity: 'deal', id: dealId, version: before.version, deletedAt: before.deletedAt }, actor.userId);
    const after = await load(dealId, trx);
    await emitEvent(trx, 'deal.restored', after);
    return after;
  };

  /** Sets the outcome, moving the deal to the stage of that name when the pipeline has one. */
  const close = (dealId: number, sentVersion: number | undefined, status: 'won' | 'lost', stageName: string) =>
    change(dealId, sentVersion, async (before, trx) => {
      const stage = await trx<{ id: number; name: string }>('pipeline_stages').where({ name: stageName }).forShare().first('id');
      const patch: Record<string, unknown> = {};
      if (before.status !== status) patch.status = status;
      if (stage && Number(stage.id) !== before.stageId) patch.stage_id = Number(stage.id);
      return patch;
    });

  return {
    /** A page of deals. @throws ValidationError `INVALID_SORT`, `INVALID_DATE_RANGE` */
    async list(fl: DealFilters) {
      return paginate(filtered(await fulltextSettings(knex), fl), fl, (q) => applySort(q, fl.sort, DEAL_SORT), toDeal);
    },

    /** @throws NotFoundError `DEAL_NOT_FOUND` (also for a deleted one unless includeDeleted) */
    get: (dealId: number, includeDeleted = false) => load(dealId, knex, { includeDeleted }),

    /** @throws UnprocessableError `INVALID_REFERENCE` */
    create(input: z.output<typeof createDealBody>, outer?: Knex.Transaction): Promise<Deal> {
      return inTransaction(knex, outer, async (trx) => {
        const values = { ...input, ownerId: input.ownerId === undefined ? actor.userId : input.ownerId };
        await assertReferences(trx, values);
        const [newId] = await trx('deals').insert(columns(values));
        const created = await load(Number(newId), trx);
        await logActivity(trx, {
          userId: actor.userId,
          action: 'create',
          entity: 'deal',
          entityId: created.id,
          changes: diff(null, { ...created, deletedAt: undefined }),
        });
        await emitEvent(trx, 'deal.created', created);
        return created;
      });
    },

    /** @throws NotFoundError; SiloError 428 `VERSION_REQUIRED`; ConflictError `VERSION_CONFLICT`; UnprocessableError `INVALID_REFERENCE` */
    update(dealId: number, input: z.output<typeof updateDealBody>, ifMatch: number | undefined): Promise<Deal> {
      return knex.transaction((trx) => updateIn(trx, dealId, input, ifMatch ?? input.version));
    },

    /** Moves the deal to another stage. @throws as {@link update} */
    move(dealId: number, stageId: number, sentVersion: number | undefined): Promise<Deal> {
      return change(dealId, sentVersion, async (before, trx) => {
        await assertReferences(trx, { stageId });
        return stageId === before.stageId ? {} : { stage_id: stageId };
      });
    },

    /** Status `won`, and the stage named "Won" if there is one. @throws as {@link update} */
    win: (dealId: number, sentVersion: number | undefined) => close(dealId, sentVersion, 'won', 'Won'),

    /** Status `lost`, and the stage named "Lost" if there is one. @throws as {@link update} */
    lose: (dealId: number, sentVersion: number | undefined) => close(dealId, sentVersion, 'lost', 'Lost'),

    /** Soft delete. @throws NotFoundError */
    async remove(dealId: number): Promise<void> {
      await knex.transaction((trx) => removeIn(trx, dealId));
    },

    /** @throws NotFoundError */
    restore(dealId: number): Promise<Deal> {
      return knex.transaction((trx) => restoreIn(trx, dealId, false));
    },

    /** The single-row operations in a caller's transaction, for bulk actions (src/crm/bulk.ts). */
    bulkOps: {
      remove: removeIn,
      restore: async (trx, id) => void (await restoreIn(trx, id, true)),
      update: async (trx, id, patch) => void (await updateIn(trx, id, patch, null)),
    } satisfies BulkOps<DealPatch>,

    /** Live deals counted and summed (per currency) by stage, in pipeline order, and by status; from one query. */
    async stats(): Promise<DealStats> {
      const rows: Array<{
        stage_id: number;
        name: string;
        position: number;
        status: DealStatus | null;
        currency: string | null;
        n: number;
        total: string | null;
      }> = await knex('pipeline_stages as s')
        .leftJoin('deals as d', (j) => j.on('d.stage_id', 's.id').onNull('d.deleted_at'))
        .groupBy('s.id', 's.name', 's.position', 'd.status', 'd.currency')
        .orderBy([{ column: 's.position' }, { column: 's.id' }])
        .select('s.id as stage_id', 's.name', 's.position', 'd.status', 'd.currency')
        .count({ n: 'd.id' })
        .sum({ total: 'd.amount' });
      const stages = new Map<number, { name: string; position: number; b: ReturnType<typeof bucket> }>();
      const statuses = new Map(DEAL_STATUSES.map((s) => [s, bucket()]));
      const total = bucket();
      for (const r of rows) {
        const stageId = Number(r.stage_id);
        if (!stages.has(stageId)) stages.set(stageId, { name: r.name, position: r.position, b: bucket() });
        if (!r.status || !r.currency) continue;
        const n = Number(r.n);
        const cents = toCents(String(r.total ?? '0'));
        add(stages.get(stageId)!.b, n, r.currency, cents);
        add(statuses.get(r.status)!, n, r.currency, cents);
        add(total, n, r.currency, cents);
      }
      return {
        byStage: [...stages].map(([stageId, s]) => ({ stageId, name: s.name, position: s.position, ...out(s.b) })),
        byStatus: [...statuses].map(([status, b]) => ({ status, ...out(b) })),
        total: out(total),
      };
    },
  };
}
