/**
 * Companies of a tenant: CRUD with soft delete and restore, optimistic locking, search,
 * filters, sort, CSV export; every change writes the activity log in its transaction.
 * Deleting a company soft-deletes its live contacts in the same transaction; deals keep
 * their company reference. Answers carry `logoUrl`, a pre-signed URL of the company's
 * logo attachment (see `attachments.ts`), or null.
 */
import type { Knex } from 'knex';
import { z } from 'zod';
import type { ObjectStore } from '../storage/s3.js';
import { diff, logActivity } from './activity.js';
import { companyLogoUrls, type WarnLogger } from './attachments.js';
import { emitEvent } from '../webhooks/emit.js';
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
import { applySearch, fulltextSettings, type FulltextSettings } from './search.js';

/** A company as stored (what the activity log compares). */
export interface Company {
  id: number;
  name: string;
  industry: string | null;
  country: string | null;
  website: string | null;
  phone: string | null;
  version: number;
  createdAt: Date;
  updatedAt: Date;
  deletedAt: Date | null;
}

/** A company as the API shows it: with the pre-signed URL of its logo, or null. */
export interface CompanyView extends Company {
  logoUrl: string | null;
}

/** Options of {@link createCompaniesService}: the store that signs logo URLs (none: `logoUrl` is null). */
export interface CompaniesServiceOptions {
  store?: ObjectStore;
  /** The tenant whose files prefix logo keys must be under (no logos without it). */
  tenantId?: number;
  /** Where a logo URL that cannot be signed is reported. */
  log?: WarnLogger;
}

const phone = z
  .string()
  .max(40)
  .transform((v) => v.replace(/\D/g, ''))
  .refine((d) => d.length >= 8 && d.length <= 15, 'phone must have 8 to 15 digits');

/** Fields of a company a client may write. */
export const companyFields = {
  name: z.string().trim().min(1).max(200),
  industry: z.string().trim().min(1).max(100).nullable(),
  country: z
    .string()
    .regex(/^[A-Za-z]{2}$/, 'country must be an ISO 3166-1 alpha-2 code such as DE')
    .transform((c) => c.toUpperCase())
    .nullable(),
  website: z
    .url({ protocol: /^https?$/, message: 'website must be an http(s) URL' })
    .max(2048)
    .nullable(),
  phone: phone.nullable(),
};
export const createCompanyBody = z.strictObject({
  name: companyFields.name,
  industry: companyFields.industry.optional(),
  country: companyFields.country.optional(),
  website: companyFields.website.optional(),
  phone: companyFields.phone.optional(),
});
/** The fields of a PATCH (and of a bulk update's `patch`). */
export const companyPatchBody = z.strictObject({
  name: companyFields.name.optional(),
  industry: companyFields.industry.optional(),
  country: companyFields.country.optional(),
  website: companyFields.website.optional(),
  phone: companyFields.phone.optional(),
});
export type CompanyPatch = z.output<typeof companyPatchBody>;
export const updateCompanyBody = companyPatchBody.extend({ version: z.number().int().positive().optional() });

/** Filters of the list. */
export interface CompanyFilters extends ListParams {
  industry?: string;
  country?: string;
}

/** Sortable API fields -> columns (the `sort` allow-list). */
export const COMPANY_SORT = {
  name: 'name',
  industry: 'industry',
  country: 'country',
  website: 'website',
  phone: 'phone',
  createdAt: 'created_at',
  updatedAt: 'updated_at',
};
/** The columns `q` searches: those of the FULLTEXT index `companies_search_ftx`, in its order. */
export const COMPANY_SEARCH_COLUMNS = ['name', 'industry', 'website'] as const;
const SORT = COMPANY_SORT;
const UNIQUE = { companies_live_name_uq: ['COMPANY_NAME_TAKEN', 'a live company already has this name'] as [string, string] };

/** A row of a tenant's `companies` table. */
export interface CompanyRow {
  id: number;
  name: string;
  industry: string | null;
  country: string | null;
  website: string | null;
  phone: string | null;
  version: number;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

/** Maps a row to the API view. */
export function toCompany(r: CompanyRow): Company {
  return {
    id: Number(r.id),
    name: r.name,
    industry: r.industry,
    country: r.country,
    website: r.website,
    phone: r.phone,
    version: r.version,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    deletedAt: r.deleted_at,
  };
}

/** The companies service over a tenant's Knex, acting as `actor`. */
export function createCompaniesService(knex: Knex, actor: Actor, opts: CompaniesServiceOptions = {}) {
  /** Adds `logoUrl` to each company (one query for all of them). */
  const withLogos = async (companies: Company[]): Promise<CompanyView[]> => {
    const urls = await companyLogoUrls(
      knex,
      opts.store,
      opts.tenantId,
      companies.map((c) => c.id),
      opts.log,
    );
    return companies.map((c) => ({ ...c, logoUrl: urls.get(c.id) ?? null }));
  };
  const withLogo = async (c: Company): Promise<CompanyView> => (await withLogos([c]))[0]!;

  const filtered = (ft: FulltextSettings, f: CompanyFilters) => {
    const q = knex('companies');
    if (!f.includeDeleted) q.whereNull('deleted_at');
    if (f.industry) q.where('industry', f.industry);
    if (f.country) q.where('country', f.country.toUpperCase());
    applyDateRanges(q, f);
    applySearch(q, ft, COMPANY_SEARCH_COLUMNS, f.q);
    return q;
  };

  const load = async (id: number, trx: Knex | Knex.Transaction = knex, opts: { includeDeleted?: boolean; lock?: boolean } = {}) =>
    toCompany(await loadRow<CompanyRow>(trx, 'companies', 'company', id, opts));

  /**
   * PATCH in `trx`. @param version the version the client sent (undefined: none, 428), or null: no check (bulk)
   * @throws as {@link update}
   */
  const updateIn = async (trx: Knex.Transaction, id: number, input: CompanyPatch, version: number | undefined | null): Promise<Company> => {
    try {
      const before = await load(id, trx, { lock: true });
      if (version !== null) assertVersion(version, before.version, 'company');
      const patch: Record<string, unknown> = {};
      for (const k of ['name', 'industry', 'country', 'website', 'phone'] as const) if (input[k] !== undefined) patch[k] = input[k];
      await trx('companies')
        .where({ id })
        .update({ ...patch, version: before.version + 1 });
      const after = await load(id, trx);
      await logActivity(trx, { userId: actor.userId, action: 'update', entity: 'company', entityId: id, changes: diff(before, after) });
      await emitEvent(trx, 'company.updated', after);
      return after;
    } catch (err) {
      throw mapUniqueViolation(err, UNIQUE);
    }
  };

  /** DELETE in `trx`: the company and its live contacts (each logged). @throws NotFoundError */
  const removeIn = async (trx: Knex.Transaction, id: number): Promise<void> => {
    const before = await load(id, trx, { lock: true });
    const now = await markDeleted(trx, { table: 'companies', entity: 'company', id, version: before.version }, actor.userId);
    await emitEvent(trx, 'company.deleted', () => load(id, trx, { includeDeleted: true }));
    const contacts: Array<{ id: number; version: number }> = await trx('contacts')
      .where({ company_id: id })
      .whereNull('deleted_at')
      .forUpdate()
      .select('id', 'version');
    if (contacts.length) {
      await trx('contacts')
        .whereIn(
          'id',
          contacts.map((c) => c.id),
        )
        .update({ deleted_at: now, version: trx.raw('version + 1') });
      for (const c of contacts) {
        await logActivity(trx, {
          userId: actor.userId,
          action: 'delete',
          entity: 'contact',
          entityId: Number(c.id),
          changes: { deletedAt: { old: null, new: now.toISOString() }, cascadeFrom: { old: null, new: `company ${id}` } },
        });
        // Loaded lazily (contacts.ts imports this module at its top level).
        await emitEvent(trx, 'contact.deleted', async () => {
          const { toContact } = await import('./contacts.js');
          return toContact(await loadRow(trx, 'contacts', 'contact', Number(c.id), { includeDeleted: true }));
        });
      }
    }
  };

  /**
   * Restore in `trx`. @param mustBeDeleted a live company is an error (bulk) instead of answered as it is
   * @throws NotFoundError; ConflictError `COMPANY_NAME_TAKEN`, `NOT_DELETED`
   */
  const restoreIn = async (trx: Knex.Transaction, id: number, mustBeDeleted: boolean): Promise<Company> => {
    try {
      const before = await load(id, trx, { includeDeleted: true, lock: true });
      if (!before.deletedAt) {
        if (mustBeDeleted) throw notDeleted('company', id);
        return before;
      }
      await markRestored(trx, { table: 'companies', entity: 'company', id, version: before.version, deletedAt: before.deletedAt }, actor.userId);
      const after = await load(id, trx);
      await emitEvent(trx, 'company.restored', after);
      return after;
    } catch (err) {
      throw mapUniqueViolation(err, UNIQUE);
    }
  };

  return {
    /** A page of companies. @throws ValidationError `INVALID_SORT` */
    async list(f: CompanyFilters): Promise<{ data: CompanyView[]; total: number }> {
      const r = await paginate(filtered(await fulltextSettings(knex), f), f, (q) => applySort(q, f.sort, SORT), toCompany);
      return { data: await withLogos(r.data), total: r.total };
    },

    /** Query (wrapped: a builder is thenable) for a CSV export of the filtered list (streamed by the caller). @throws ValidationError `INVALID_SORT`, `INVALID_DATE_RANGE` */
    async exportQuery(f: CompanyFilters): Promise<{ query: Knex.QueryBuilder }> {
      const q = filtered(await fulltextSettings(knex), f).select('*');
      applySort(q, f.sort, SORT);
      return { query: q };
    },

    /** @throws NotFoundError `COMPANY_NOT_FOUND` (also for a deleted one unless includeDeleted) */
    get: async (id: number, includeDeleted = false): Promise<CompanyView> => withLogo(await load(id, knex, { includeDeleted })),

    /** @throws ConflictError `COMPANY_NAME_TAKEN` */
    async create(input: z.output<typeof createCompanyBody>, outer?: Knex.Transaction): Promise<CompanyView> {
      try {
        return await inTransaction(knex, outer, async (trx) => {
          const [id] = await trx('companies').insert({
            name: input.name,
            industry: input.industry ?? null,
            country: input.country ?? null,
            website: input.website ?? null,
            phone: input.phone ?? null,
          });
          const created = await load(Number(id), trx);
          await logActivity(trx, {
            userId: actor.userId,
            action: 'create',
            entity: 'company',
            entityId: created.id,
            changes: diff(null, { ...created, deletedAt: undefined }),
          });
          await emitEvent(trx, 'company.created', created);
          return { ...created, logoUrl: null };
        });
      } catch (err) {
        throw mapUniqueViolation(err, UNIQUE);
      }
    },

    /** @throws NotFoundError; SiloError 428 `VERSION_REQUIRED`; ConflictError `VERSION_CONFLICT`, `COMPANY_NAME_TAKEN` */
    async update(id: number, input: z.output<typeof updateCompanyBody>, version: number | undefined): Promise<CompanyView> {
      return withLogo(await knex.transaction((trx) => updateIn(trx, id, input, version ?? input.version)));
    },

    /** Soft-deletes the company and its live contacts. @throws NotFoundError */
    async remove(id: number): Promise<void> {
      await knex.transaction((trx) => removeIn(trx, id));
    },

    /** Restores a deleted company (not its contacts). @throws NotFoundError; ConflictError `COMPANY_NAME_TAKEN` */
    async restore(id: number): Promise<CompanyView> {
      return withLogo(await knex.transaction((trx) => restoreIn(trx, id, false)));
    },

    /** The single-row operations in a caller's transaction, for bulk actions (src/crm/bulk.ts). */
    bulkOps: {
      remove: removeIn,
      restore: async (trx, id) => void (await restoreIn(trx, id, true)),
      update: async (trx, id, patch) => void (await updateIn(trx, id, patch, null)),
    } satisfies BulkOps<CompanyPatch>,
  };
}
