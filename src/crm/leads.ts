/**
 * Leads of a tenant: CRUD with soft delete and restore, optimistic locking, FULLTEXT
 * search (src/crm/search.ts), filters, sort, CSV export, activity log; and the convert
 * (`convert`): in ONE transaction, the contact, the company (reused by name when a live one
 * has it) and the deal, linked to the lead, which becomes `converted`. A converted lead is
 * read-only: update, delete and convert answer 409 `LEAD_CONVERTED`.
 */
import type { Knex } from 'knex';
import type { z } from 'zod';
import { ConflictError, UnprocessableError } from '../lib/errors.js';
import { emitEvent } from '../webhooks/emit.js';
import { diff, logActivity } from './activity.js';
import type { BulkOps } from './bulk.js';
import { applySort, assertVersion, inTransaction, loadRow, markDeleted, markRestored, notDeleted, paginate, type Actor } from './common.js';
import { createCompaniesService } from './companies.js';
import { createContactsService } from './contacts.js';
import { createDealsService } from './deals.js';
import {
  LEAD_SEARCH_COLUMNS,
  LEAD_SORT,
  leadColumns,
  toLead,
  type convertLeadBody,
  type createLeadBody,
  type Lead,
  type LeadFilters,
  type LeadRow,
  type leadPatchFields,
  type updateLeadBody,
} from './lead-model.js';
import { reserveQuota } from './quotas.js';
import { applySearch, fulltextSettings, type FulltextSettings } from './search.js';

export * from './lead-model.js';

/** The fields of a PATCH without `version` (what a bulk update sets). */
export type LeadPatch = { [K in keyof typeof leadPatchFields]?: z.output<(typeof leadPatchFields)[K]> };

/** What the convert made: the lead (now converted) and the ids of the rows it made or reused. */
export interface LeadConversion {
  lead: Lead;
  contactId: number;
  companyId: number | null;
  /** Whether the company existed (a live one of the lead's company name) and was reused. */
  companyReused: boolean;
  dealId: number | null;
}

function converted(id: number): ConflictError {
  return new ConflictError(`lead ${id} is converted: it is read-only`, 'LEAD_CONVERTED');
}

/** @throws UnprocessableError `INVALID_REFERENCE` unless `ownerId` is an active user (locked in share mode until the commit) */
async function assertOwner(trx: Knex.Transaction, ownerId: number | null | undefined): Promise<void> {
  if (ownerId == null) return;
  if (await trx('users').where({ id: ownerId, active: true }).forShare().first('id')) return;
  const message = `ownerId ${ownerId} is not an active user of this tenant`;
  throw new UnprocessableError(message, 'INVALID_REFERENCE', { field: 'ownerId', fields: [{ path: 'body.ownerId', message }] });
}

/**
 * The leads service over a tenant's Knex, acting as `actor`.
 * @param opts.maxContacts the plan's limit of live contacts (null or absent: unlimited), checked by the convert
 */
export function createLeadsService(knex: Knex, actor: Actor, opts: { maxContacts?: number | null } = {}) {
  const maxContacts = opts.maxContacts ?? null;

  /** The filtered query; the server's FULLTEXT settings when `f.q` is set. */
  const filtered = (f: LeadFilters, settings: FulltextSettings | undefined) => {
    const q = knex('leads');
    if (!f.includeDeleted) q.whereNull('deleted_at');
    if (f.status) q.where('status', f.status);
    if (f.source) q.where('source', f.source);
    if (f.ownerId) q.where('owner_id', f.ownerId);
    if (f.scoreMin !== undefined) q.where('score', '>=', f.scoreMin);
    if (f.scoreMax !== undefined) q.where('score', '<=', f.scoreMax);
    if (f.createdAfter) q.where('created_at', '>=', f.createdAfter);
    if (f.createdBefore) q.where('created_at', '<=', f.createdBefore);
    if (f.updatedAfter) q.where('updated_at', '>=', f.updatedAfter);
    if (f.updatedBefore) q.where('updated_at', '<=', f.updatedBefore);
    if (f.q && settings) applySearch(q, settings, LEAD_SEARCH_COLUMNS, f.q);
    return q;
  };

  const searchSettings = (f: LeadFilters) => (f.q ? fulltextSettings(knex) : Promise.resolve(undefined));

  const load = async (id: number, trx: Knex | Knex.Transaction = knex, o: { includeDeleted?: boolean; lock?: boolean } = {}) =>
    toLead(await loadRow<LeadRow>(trx, 'leads', 'lead', id, o));

  /** PATCH in `trx`. @param version as sent (undefined: 428), or null: no check (bulk) */
  const updateIn = async (trx: Knex.Transaction, id: number, input: LeadPatch, version: number | undefined | null): Promise<Lead> => {
    const before = await load(id, trx, { lock: true });
    if (before.status === 'converted') throw converted(id);
    if (version !== null) assertVersion(version, before.version, 'lead');
    await assertOwner(trx, input.ownerId);
    await trx('leads')
      .where({ id })
      .update({ ...leadColumns(input), version: before.version + 1 });
    const after = await load(id, trx);
    await logActivity(trx, { userId: actor.userId, action: 'update', entity: 'lead', entityId: id, changes: diff(before, after) });
    await emitEvent(trx, 'lead.updated', after);
    return after;
  };

  /** DELETE in `trx`. @throws NotFoundError; ConflictError `LEAD_CONVERTED` */
  const removeIn = async (trx: Knex.Transaction, id: number): Promise<void> => {
    const before = await load(id, trx, { lock: true });
    if (before.status === 'converted') throw converted(id);
    await markDeleted(trx, { table: 'leads', entity: 'lead', id, version: before.version }, actor.userId);
    await emitEvent(trx, 'lead.deleted', () => load(id, trx, { includeDeleted: true }));
  };

  /** Restore in `trx`. @param mustBeDeleted a live lead is an error (bulk). @throws NotFoundError; ConflictError `NOT_DELETED` */
  const restoreIn = async (trx: Knex.Transaction, id: number, mustBeDeleted: boolean): Promise<Lead> => {
    const before = await load(id, trx, { includeDeleted: true, lock: true });
    if (!before.deletedAt) {
      if (mustBeDeleted) throw notDeleted('lead', id);
      return before;
    }
    await markRestored(trx, { table: 'leads', entity: 'lead', id, version: before.version, deletedAt: before.deletedAt }, actor.userId);
    const after = await load(id, trx);
    await emitEvent(trx, 'lead.restored', after);
    return after;
  };

  return {
    /** A page of leads. @throws ValidationError `INVALID_SORT`, `PAGE_TOO_DEEP` */
    async list(f: LeadFilters): Promise<{ data: Lead[]; total: number }> {
      return paginate(filtered(f, await searchSettings(f)), f, (q) => applySort(q, f.sort, LEAD_SORT), toLead);
    },

    /** Query for a CSV export of the filtered list (streamed by the caller; wrapped, as a query is thenable). @throws ValidationError `INVALID_SORT` */
    async exportQuery(f: LeadFilters): Promise<{ query: Knex.QueryBuilder }> {
      const query = filtered(f, await searchSettings(f)).select('*');
      applySort(query, f.sort, LEAD_SORT);
      return { query };
    },

    /** @throws NotFoundError `LEAD_NOT_FOUND` (also for a deleted one unless includeDeleted) */
    get: (id: number, includeDeleted = false) => load(id, knex, { includeDeleted }),

    /** Creates a lead (owner: the acting user unless given). @throws UnprocessableError `INVALID_REFERENCE` */
    create(input: z.output<typeof createLeadBody>, outer?: Knex.Transaction): Promise<Lead> {
      return inTransaction(knex, outer, async (trx) => {
        const values = { ...input, ownerId: input.ownerId === undefined ? actor.userId : input.ownerId };
        await assertOwner(trx, values.ownerId);
        const [newId] = await trx('leads').insert(leadColumns(values));
        const created = await load(Number(newId), trx);
        await logActivity(trx, {
          userId: actor.userId,
          action: 'create',
          entity: 'lead',
          entityId: created.id,
          changes: diff(null, { ...created, deletedAt: undefined }),
        });
        await emitEvent(trx, 'lead.created', created);
        return created;
      });
    },

    /** @throws NotFoundError; SiloError 428 `VERSION_REQUIRED`; ConflictError `VERSION_CONFLICT`, `LEAD_CONVERTED`; UnprocessableError `INVALID_REFERENCE` */
    update(id: number, input: z.output<typeof updateLeadBody>, version: number | undefined): Promise<Lead> {
      return knex.transaction((trx) => updateIn(trx, id, input, version ?? input.version));
    },

    /** Soft delete. @throws NotFoundError; ConflictError `LEAD_CONVERTED` */
    async remove(id: number): Promise<void> {
      await knex.transaction((trx) => removeIn(trx, id));
    },

    /** Restores a soft-deleted lead (a live one is answered as it is). @throws NotFoundError */
    restore(id: number): Promise<Lead> {
      return knex.transaction((trx) => restoreIn(trx, id, false));
    },

    /**
     * Converts a live lead, in one transaction: locks the lead (`FOR UPDATE`: of concurrent
     * converts one wins, the others then find it converted), creates the contact (the
     * lead's name, email, phone), with `createCompany` reuses the live company whose name
     * equals the lead's company name (case-insensitive: the collation's) or creates it,
     * with `deal` creates the deal (the contact's and company's, owned by the lead's owner),
     * then sets the lead `converted` with their ids. Each row is logged. Any failure
     * leaves nothing created.
     * @throws NotFoundError `LEAD_NOT_FOUND`; ConflictError `LEAD_CONVERTED`, `CONTACT_EMAIL_TAKEN`, `COMPANY_NAME_TAKEN`;
     *   UnprocessableError `LEAD_COMPANY_NAME_MISSING` (createCompany without a company name), `INVALID_REFERENCE` (the deal's stage); QuotaExceededError
     */
    convert(id: number, input: z.output<typeof convertLeadBody>): Promise<LeadConversion> {
      return knex.transaction(async (trx) => {
        // The contacts quota first thing (its count must be the transaction's first consistent read: src/crm/quotas.ts).
        await reserveQuota(trx, 'contacts', maxContacts, 1);
        const before = await load(id, trx, { lock: true });
        if (before.status === 'converted') throw converted(id);
        let companyId: number | null = null;
        let companyReused = false;
        if (input.createCompany) {
          if (!before.companyName)
            throw new UnprocessableError(`lead ${id} has no companyName to make a company of`, 'LEAD_COMPANY_NAME_MISSING', { field: 'createCompany' });
          // `live_name` is the name of live companies only (unique, indexed); the collation compares case-insensitively.
          const existing = await trx<{ id: number }>('companies').where('live_name', before.companyName).forUpdate().first('id');
          if (existing) {
            companyId = Number(existing.id);
            companyReused = true;
          } else {
            companyId = (await createCompaniesService(knex, actor).create({ name: before.companyName }, trx)).id;
          }
        }
        const contact = await createContactsService(knex, actor, { maxContacts }).create(
          { companyId, fullName: before.fullName, email: before.email, phone: before.phone },
          trx,
        );
        let dealId: number | null = null;
        if (input.deal) {
          const deal = await createDealsService(knex, actor).create({ ...input.deal, companyId, contactId: contact.id, ownerId: before.ownerId }, trx);
          dealId = deal.id;
        }
        await trx('leads')
          .where({ id })
          .update({
            status: 'converted',
            contact_id: contact.id,
            company_id: companyId,
            deal_id: dealId,
            converted_at: new Date(),
            version: before.version + 1,
          });
        const after = await load(id, trx);
        await logActivity(trx, { userId: actor.userId, action: 'update', entity: 'lead', entityId: id, changes: diff(before, after) });
        await emitEvent(trx, 'lead.converted', after);
        return { lead: after, contactId: contact.id, companyId, companyReused, dealId };
      });
    },

    /** The single-row operations in a caller's transaction, for bulk actions (src/crm/bulk.ts). */
    bulkOps: {
      remove: removeIn,
      restore: async (trx, id) => void (await restoreIn(trx, id, true)),
      update: async (trx, id, patch) => void (await updateIn(trx, id, patch, null)),
    } satisfies BulkOps<LeadPatch>,
  };
}
