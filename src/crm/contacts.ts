/**
 * Contacts of a tenant, optionally of a company: CRUD with soft delete and restore,
 * optimistic locking, search, filters, sort, CSV export, activity log. An email is
 * unique per company among live contacts, enforced by MySQL (`contacts_live_email_uq`).
 */
import type { Knex } from 'knex';
import { z } from 'zod';
import { ConflictError, UnprocessableError } from '../lib/errors.js';
import { emailSchema } from '../lib/validation.js';
import { diff, logActivity } from './activity.js';
import type { BulkOps } from './bulk.js';
import {
  applyDateRanges,
  applySort,
  assertVersion,
  inTransaction,
  loadRow,
  mapUniqueViolation,
  markDeleted,
  markRestored,
  notDeleted,
  paginate,
  type Actor,
  type ListParams,
} from './common.js';
import { companyFields } from './companies.js';
import { checkQuota, lockQuota, reserveQuota } from './quotas.js';
import { emitEvent } from '../webhooks/emit.js';
import { applySearch, fulltextSettings, type FulltextSettings } from './search.js';

/** A contact as the API shows it. */
export interface Contact {
  id: number;
  companyId: number | null;
  fullName: string;
  email: string | null;
  phone: string | null;
  jobTitle: string | null;
  version: number;
  createdAt: Date;
  updatedAt: Date;
  deletedAt: Date | null;
}

const fields = {
  companyId: z.number().int().positive().nullable(),
  fullName: z.string().trim().min(1).max(200),
  email: emailSchema.nullable(),
  phone: companyFields.phone,
  jobTitle: z.string().trim().min(1).max(200).nullable(),
};
export const createContactBody = z.strictObject({
  companyId: fields.companyId.optional(),
  fullName: fields.fullName,
  email: fields.email.optional(),
  phone: fields.phone.optional(),
  jobTitle: fields.jobTitle.optional(),
});
/** The fields of a PATCH (and of a bulk update's `patch`). */
export const contactPatchBody = z.strictObject({
  companyId: fields.companyId.optional(),
  fullName: fields.fullName.optional(),
  email: fields.email.optional(),
  phone: fields.phone.optional(),
  jobTitle: fields.jobTitle.optional(),
});
export type ContactPatch = z.output<typeof contactPatchBody>;
export const updateContactBody = contactPatchBody.extend({ version: z.number().int().positive().optional() });

/** Filters of the list. */
export interface ContactFilters extends ListParams {
  companyId?: number;
  email?: string;
}

/** Sortable API fields -> columns (the `sort` allow-list). */
export const CONTACT_SORT = {
  fullName: 'full_name',
  email: 'email',
  phone: 'phone',
  jobTitle: 'job_title',
  companyId: 'company_id',
  createdAt: 'created_at',
  updatedAt: 'updated_at',
};
/** The columns `q` searches: those of the FULLTEXT index `contacts_search_ftx`, in its order. */
export const CONTACT_SEARCH_COLUMNS = ['full_name', 'email', 'job_title'] as const;
const SORT = CONTACT_SORT;
const UNIQUE = { contacts_live_email_uq: ['CONTACT_EMAIL_TAKEN', 'a live contact of this company already has this email'] as [string, string] };

/** A row of a tenant's `contacts` table. */
export interface ContactRow {
  id: number;
  company_id: number | null;
  full_name: string;
  email: string | null;
  phone: string | null;
  job_title: string | null;
  version: number;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

/** Maps a row to the API view. */
export function toContact(r: ContactRow): Contact {
  return {
    id: Number(r.id),
    companyId: r.company_id === null ? null : Number(r.company_id),
    fullName: r.full_name,
    email: r.email,
    phone: r.phone,
    jobTitle: r.job_title,
    version: r.version,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    deletedAt: r.deleted_at,
  };
}

/** @throws UnprocessableError `INVALID_REFERENCE` unless the company is live (locks it against a concurrent delete) */
async function assertLiveCompany(trx: Knex.Transaction, companyId: number | null | undefined): Promise<void> {
  if (companyId === null || companyId === undefined) return;
  const row = await trx<{ id: number; deleted_at: Date | null }>('companies').where({ id: companyId }).whereNull('deleted_at').forShare().first('id');
  if (!row) throw new UnprocessableError(`companyId ${companyId} is not a live company of this tenant`, 'INVALID_REFERENCE', { field: 'companyId' });
}

/**
 * The contacts service over a tenant's Knex, acting as `actor`.
 * @param opts.maxContacts the plan's limit of live contacts (null or absent: unlimited), checked by create and restore
 */
export function createContactsService(knex: Knex, actor: Actor, opts: { maxContacts?: number | null } = {}) {
  const maxContacts = opts.maxContacts ?? null;
  const filtered = (ft: FulltextSettings, f: ContactFilters) => {
    const q = knex('contacts');
    if (!f.includeDeleted) q.whereNull('deleted_at');
    if (f.companyId) q.where('company_id', f.companyId);
    if (f.email) q.where('email', f.email.trim().toLowerCase());
    applyDateRanges(q, f);
    applySearch(q, ft, CONTACT_SEARCH_COLUMNS, f.q);
    return q;
  };

  const load = async (id: number, trx: Knex | Knex.Transaction = knex, opts: { includeDeleted?: boolean; lock?: boolean } = {}) =>
    toContact(await loadRow<ContactRow>(trx, 'contacts', 'contact', id, opts));

  const columns = (input: Partial<z.output<typeof updateContactBody>>) => {
    const row: Record<string, unknown> = {};
    if (input.companyId !== undefined) row.company_id = input.companyId;
    if (input.fullName !== undefined) row.full_name = input.fullName;
    if (input.email !== undefined) row.email = input.email;
    if (input.phone !== undefined) row.phone = input.phone;
    if (input.jobTitle !== undefined) row.job_title = input.jobTitle;
    return row;
  };

  /**
   * PATCH in `trx`. @param version the version the client sent (undefined: none, 428), or null: no check (bulk)
   * @throws as {@link update}
   */
  const updateIn = async (trx: Knex.Transaction, id: number, input: ContactPatch, version: number | undefined | null): Promise<Contact> => {
    try {
      const before = await load(id, trx, { lock: true });
      if (version !== null) assertVersion(version, before.version, 'contact');
      await assertLiveCompany(trx, input.companyId);
      await trx('contacts')
        .where({ id })
        .update({ ...columns(input), version: before.version + 1 });
      const after = await load(id, trx);
      await logActivity(trx, { userId: actor.userId, action: 'update', entity: 'contact', entityId: id, changes: diff(before, after) });
      await emitEvent(trx, 'contact.updated', after);
      return after;
    } catch (err) {
      throw mapUniqueViolation(err, UNIQUE);
    }
  };

  /** DELETE in `trx`. @throws NotFoundError */
  const removeIn = async (trx: Knex.Transaction, id: number): Promise<void> => {
    const before = await load(id, trx, { lock: true });
    await markDeleted(trx, { table: 'contacts', entity: 'contact', id, version: before.version }, actor.userId);
    await emitEvent(trx, 'contact.deleted', () => load(id, trx, { includeDeleted: true }));
  };

  /**
   * Restore in `trx`, the contacts quota locked already when `limited`.
   * @param mustBeDeleted a live contact is an error (bulk) instead of answered as it is
   * @throws as {@link restore}; ConflictError `NOT_DELETED`
   */
  const restoreIn = async (trx: Knex.Transaction, id: number, limited: boolean, mustBeDeleted: boolean): Promise<Contact> => {
    try {
      const before = await load(id, trx, { includeDeleted: true, lock: true });
      if (!before.deletedAt) {
        if (mustBeDeleted) throw notDeleted('contact', id);
        return before;
      }
      if (limited) await checkQuota(trx, 'contacts', maxContacts, 1);
      if (before.companyId !== null) {
        const company = await trx<{ id: number; deleted_at: Date | null }>('companies')
          .where({ id: before.companyId })
          .whereNull('deleted_at')
          .forShare()
          .first('id');
        if (!company) throw new ConflictError(`company ${before.companyId} is deleted: restore it first`, 'COMPANY_DELETED');
      }
      await markRestored(trx, { table: 'contacts', entity: 'contact', id, version: before.version, deletedAt: before.deletedAt }, actor.userId);
      const after = await load(id, trx);
      await emitEvent(trx, 'contact.restored', after);
      return after;
    } catch (err) {
      throw mapUniqueViolation(err, UNIQUE);
    }
  };

  return {
    /** A page of contacts. @throws ValidationError `INVALID_SORT`, `INVALID_DATE_RANGE` */
    async list(f: ContactFilters) {
      return paginate(filtered(await fulltextSettings(knex), f), f, (q) => applySort(q, f.sort, SORT), toContact);
    },

    /** Query (wrapped: a builder is thenable) for a CSV export of the filtered list. @throws ValidationError `INVALID_SORT`, `INVALID_DATE_RANGE` */
    async exportQuery(f: ContactFilters): Promise<{ query: Knex.QueryBuilder }> {
      const q = filtered(await fulltextSettings(knex), f).select('*');
      applySort(q, f.sort, SORT);
      return { query: q };
    },

    get: (id: number, includeDeleted = false) => load(id, knex, { includeDeleted }),

    /**
     * Creates a contact. The limit is checked first thing in the transaction (`outer`, when
     * given, must not have read anything yet: see src/crm/quotas.ts).
     * @throws UnprocessableError `INVALID_REFERENCE`; ConflictError `CONTACT_EMAIL_TAKEN`; QuotaExceededError
     */
    async create(input: z.output<typeof createContactBody>, outer?: Knex.Transaction): Promise<Contact> {
      try {
        return await inTransaction(knex, outer, async (trx) => {
          await reserveQuota(trx, 'contacts', maxContacts, 1);
          await assertLiveCompany(trx, input.companyId);
          const [id] = await trx('contacts').insert(columns(input));
          const created = await load(Number(id), trx);
          await logActivity(trx, {
            userId: actor.userId,
            action: 'create',
            entity: 'contact',
            entityId: created.id,
            changes: diff(null, { ...created, deletedAt: undefined }),
          });
          await emitEvent(trx, 'contact.created', created);
          return created;
        });
      } catch (err) {
        throw mapUniqueViolation(err, UNIQUE);
      }
    },

    /** @throws NotFoundError; 428 `VERSION_REQUIRED`; ConflictError `VERSION_CONFLICT`, `CONTACT_EMAIL_TAKEN`; UnprocessableError `INVALID_REFERENCE` */
    update(id: number, input: z.output<typeof updateContactBody>, version: number | undefined): Promise<Contact> {
      return knex.transaction((trx) => updateIn(trx, id, input, version ?? input.version));
    },

    /** Soft delete. @throws NotFoundError */
    async remove(id: number): Promise<void> {
      await knex.transaction((trx) => removeIn(trx, id));
    },

    /**
     * Restores a soft-deleted contact (a live contact again: checked against the limit).
     * @throws NotFoundError; ConflictError `COMPANY_DELETED` (restore the company first), `CONTACT_EMAIL_TAKEN`; QuotaExceededError
     */
    restore(id: number): Promise<Contact> {
      return knex.transaction(async (trx) => {
        const limited = await lockQuota(trx, 'contacts', maxContacts);
        return restoreIn(trx, id, limited, false);
      });
    },

    /**
     * The single-row operations in a caller's transaction, for bulk actions (src/crm/bulk.ts).
     * A bulk restore locks the contacts quota before its first row (see src/crm/quotas.ts).
     */
    bulkOps: {
      remove: removeIn,
      restore: async (trx, id) => void (await restoreIn(trx, id, await lockQuota(trx, 'contacts', maxContacts), true)),
      update: async (trx, id, patch) => void (await updateIn(trx, id, patch, null)),
    } satisfies BulkOps<ContactPatch>,
  };
}
