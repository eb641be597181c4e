/**
 * CSV import of companies and contacts (`POST /api/v1/{companies,contacts}/import`): the
 * export's columns, every row checked (field rules of a create, uniqueness within the
 * file and against the live rows, company references) before anything is written, then
 * all rows and one activity row each inserted in ONE transaction (multi-row inserts).
 * Any row error: nothing is written (422 `IMPORT_INVALID` with the report). A dry run
 * answers the same report and writes nothing.
 *
 * Columns are the export's; `id`, `createdAt`, `updatedAt`, `version`, `deletedAt` (and
 * `logoUrl`) are accepted and ignored: new rows get new ids and timestamps, so an export
 * imports into another tenant as it is. Contacts name their company by `companyId` (an
 * id of this tenant: another tenant's export refers to its own ids) or by `companyName`
 * (also `company`; a live company of this tenant, matched as MySQL compares names).
 */
import type { Knex } from 'knex';
import type { z } from 'zod';
import { SiloError } from '../lib/errors.js';
import { diff } from './activity.js';
import { inTransaction, mapUniqueViolation, type Actor } from './common.js';
import { createCompanyBody } from './companies.js';
import { createContactBody } from './contacts.js';
import {
  chunks,
  collationKey,
  MAX_REPORTED_ERRORS,
  readImportFile,
  type ImportColumns,
  type ImportResult,
  type ImportRow,
  type ImportRowError,
} from './csv-import.js';
import { reserveQuota } from './quotas.js';

const IGNORED = ['id', 'createdat', 'updatedat', 'version', 'deletedat', 'logourl'] as const;
/** Columns of a companies file. */
export const COMPANY_IMPORT_COLUMNS: ImportColumns = {
  fields: { name: 'name', industry: 'industry', country: 'country', website: 'website', phone: 'phone' },
  ignored: IGNORED,
  required: ['name'],
};
/** Columns of a contacts file. */
export const CONTACT_IMPORT_COLUMNS: ImportColumns = {
  fields: {
    fullname: 'fullName',
    email: 'email',
    phone: 'phone',
    jobtitle: 'jobTitle',
    companyid: 'companyId',
    companyname: 'companyName',
    company: 'companyName',
  },
  ignored: IGNORED,
  required: ['fullName'],
};

/** Rows per multi-row INSERT and per `IN (...)` lookup. */
const BATCH = 1_000;

/** Options of an import. */
export interface ImportOptions {
  dryRun: boolean;
  /** The plan's limit of live contacts (null: unlimited). */
  maxContacts?: number | null;
}

/** A valid row, ready to insert: its line, the table's columns, the activity view. */
interface Prepared {
  row: number;
  columns: Record<string, unknown>;
  view: Record<string, unknown>;
}

/** Row errors of a zod failure, named by the file's headers. */
function zodErrors(r: ImportRow, error: z.ZodError): ImportRowError[] {
  return error.issues.map((i) => {
    const field = String(i.path[0] ?? '');
    return { row: r.row, ...(r.headers[field] ? { column: r.headers[field] } : {}), code: 'INVALID_VALUE', detail: i.message };
  });
}

/** Inserts prepared rows and their activity rows; ids come from the multi-row insert when the server hands out consecutive ones. */
async function insertAll(trx: Knex.Transaction, table: string, entity: 'company' | 'contact', rows: Prepared[], actor: Actor): Promise<void> {
  const [vars] = (await trx.raw('SELECT @@innodb_autoinc_lock_mode AS mode, @@auto_increment_increment AS step')) as [Array<{ mode: number; step: number }>];
  // Modes 0 and 1 give a multi-row INSERT ... VALUES consecutive ids (MySQL 8.4 §17.6.1.6); mode 2 may interleave.
  const consecutive = Number(vars[0]!.mode) <= 1;
  const step = Number(vars[0]!.step);
  for (const batch of chunks(rows, consecutive ? BATCH : 1)) {
    const [first] = await trx(table).insert<number[]>(batch.map((p) => p.columns));
    const activity = batch.map((p, i) => {
      const id = Number(first) + i * step;
      return {
        user_id: actor.userId,
        action: 'create',
        entity,
        entity_id: id,
        changes: JSON.stringify({ ...diff(null, { id, ...p.view }), import: { old: null, new: `line ${p.row}` } }),
      };
    });
    await trx('activity_log').insert(activity);
  }
}

/** Ends an import: 422 with the report when a row is wrong, else the count. */
function finish(errors: ImportRowError[], created: number, dryRun: boolean): ImportResult {
  errors.sort((a, b) => a.row - b.row);
  const shown = errors.slice(0, MAX_REPORTED_ERRORS);
  if (errors.length && !dryRun)
    throw new SiloError(`${errors.length} row(s) of the file are not valid: nothing was imported`, {
      code: 'IMPORT_INVALID',
      status: 422,
      members: { created: 0, dryRun: false, rowErrors: shown, errorCount: errors.length },
    });
  return { created: errors.length ? 0 : created, dryRun, errors: shown };
}

/**
 * The import service over a tenant's Knex, acting as `actor`.
 */
export function createImportService(knex: Knex, actor: Actor) {
  return {
    /**
     * Imports companies from CSV bytes. A name must be unique among live companies and
     * within the file (case and accents ignored, as MySQL compares them).
     * @param outer the transaction of an idempotent request (see crm/idempotency)
     * @throws ValidationError / SiloError of {@link readImportFile}; SiloError 422 `IMPORT_INVALID`; ConflictError `COMPANY_NAME_TAKEN` (a duplicate only MySQL saw)
     */
    async companies(bytes: Buffer, opts: ImportOptions, outer?: Knex.Transaction): Promise<ImportResult> {
      const rows = readImportFile(bytes, COMPANY_IMPORT_COLUMNS);
      const errors: ImportRowError[] = [];
      const prepared: Prepared[] = [];
      const firstOf = new Map<string, number>();
      for (const r of rows) {
        const parsed = createCompanyBody.safeParse(r.values);
        if (!parsed.success) {
          errors.push(...zodErrors(r, parsed.error));
          continue;
        }
        const c = parsed.data;
        const key = collationKey(c.name);
        const first = firstOf.get(key);
        if (first !== undefined) {
          errors.push({ row: r.row, column: r.headers.name, code: 'DUPLICATE_IN_FILE', detail: `the name ${JSON.stringify(c.name)} is also on line ${first}` });
          continue;
        }
        firstOf.set(key, r.row);
        const columns = { name: c.name, industry: c.industry ?? null, country: c.country ?? null, website: c.website ?? null, phone: c.phone ?? null };
        prepared.push({ row: r.row, columns, view: { ...columns } });
      }
      try {
        return await inTransaction(knex, outer, async (trx) => {
          for (const batch of chunks(prepared, BATCH)) {
            const taken = await trx<{ name: string }>('companies')
              .whereNull('deleted_at')
              .whereIn(
                'name',
                batch.map((p) => p.columns.name as string),
              )
              .forShare()
              .pluck('name');
            const takenKeys = new Set(taken.map(collationKey));
            for (const p of batch)
              if (takenKeys.has(collationKey(p.columns.name as string)))
                errors.push({
                  row: p.row,
                  column: 'name',
                  code: 'COMPANY_NAME_TAKEN',
                  detail: `a live company is already named ${JSON.stringify(p.columns.name)}`,
                });
          }
          if (!errors.length && !opts.dryRun) await insertAll(trx, 'companies', 'company', prepared, actor);
          return finish(errors, prepared.length, opts.dryRun);
        });
      } catch (err) {
        throw mapUniqueViolation(err, { companies_live_name_uq: ['COMPANY_NAME_TAKEN', 'a live company already has a name of the file'] });
      }
    },

    /**
     * Imports contacts from CSV bytes. An email must be unique per company among live
     * contacts and within the file; the company (by id or name) must be live. Counts
     * against the plan's contacts limit (checked first, also in a dry run).
     * @param outer the transaction of an idempotent request (it must not have read anything: see crm/quotas)
     * @throws as {@link companies}; QuotaExceededError; ConflictError `CONTACT_EMAIL_TAKEN` (a duplicate only MySQL saw)
     */
    async contacts(bytes: Buffer, opts: ImportOptions, outer?: Knex.Transaction): Promise<ImportResult> {
      const rows = readImportFile(bytes, CONTACT_IMPORT_COLUMNS);
      try {
        return await inTransaction(knex, outer, async (trx) => {
          await reserveQuota(trx, 'contacts', opts.maxContacts ?? null, rows.length);
          const errors: ImportRowError[] = [];
          // Companies named by the file, locked in share mode (not deleted before the commit).
          const names = [...new Set(rows.map((r) => r.values.companyName).filter((v): v is string => v !== undefined))];
          const ids = [...new Set(rows.map((r) => r.values.companyId).filter((v): v is string => v !== undefined && /^\d{1,15}$/.test(v)))].map(Number);
          const byName = new Map<string, number>();
          const liveIds = new Set<number>();
          for (const batch of chunks(names, BATCH))
            for (const c of await trx<{ id: number; name: string }>('companies').whereNull('deleted_at').whereIn('name', batch).forShare().select('id', 'name'))
              byName.set(collationKey(c.name), Number(c.id));
          for (const batch of chunks(ids, BATCH))
            for (const id of (await trx('companies').whereNull('deleted_at').whereIn('id', batch).forShare().pluck('id')) as number[]) liveIds.add(Number(id));

          const prepared: Prepared[] = [];
          const firstOf = new Map<string, number>();
          for (const r of rows) {
            const { companyName, companyId: rawId, ...rest } = r.values;
            let companyId: number | null = null;
            if (rawId !== undefined) {
              if (!/^\d{1,15}$/.test(rawId) || !liveIds.has(Number(rawId))) {
                errors.push({
                  row: r.row,
                  column: r.headers.companyId,
                  code: 'INVALID_REFERENCE',
                  detail: `companyId ${rawId} is not a live company of this tenant`,
                });
                continue;
              }
              companyId = Number(rawId);
            }
            if (companyName !== undefined) {
              const id = byName.get(collationKey(companyName));
              if (id === undefined) {
                errors.push({
                  row: r.row,
                  column: r.headers.companyName,
                  code: 'COMPANY_NOT_FOUND',
                  detail: `no live company is named ${JSON.stringify(companyName)}`,
                });
                continue;
              }
              if (companyId !== null && companyId !== id) {
                errors.push({
                  row: r.row,
                  column: r.headers.companyName,
                  code: 'COMPANY_MISMATCH',
                  detail: `companyId ${companyId} is not the company named ${JSON.stringify(companyName)}`,
                });
                continue;
              }
              companyId = id;
            }
            const parsed = createContactBody.safeParse(rest);
            if (!parsed.success) {
              errors.push(...zodErrors(r, parsed.error));
              continue;
            }
            const c = parsed.data;
            if (c.email) {
              const key = `${companyId ?? 0}|${collationKey(c.email)}`;
              const first = firstOf.get(key);
              if (first !== undefined) {
                errors.push({
                  row: r.row,
                  column: r.headers.email,
                  code: 'DUPLICATE_IN_FILE',
                  detail: `the email ${c.email} is also on line ${first}, for the same company`,
                });
                continue;
              }
              firstOf.set(key, r.row);
            }
            const columns = { company_id: companyId, full_name: c.fullName, email: c.email ?? null, phone: c.phone ?? null, job_title: c.jobTitle ?? null };
            prepared.push({
              row: r.row,
              columns,
              view: { companyId, fullName: c.fullName, email: columns.email, phone: columns.phone, jobTitle: columns.job_title },
            });
          }
          const withEmail = prepared.filter((p) => p.columns.email !== null);
          for (const batch of chunks(withEmail, BATCH)) {
            const taken = await trx<{ company_key: number; email: string }>('contacts')
              .where('live', 1)
              .whereIn(
                'email',
                batch.map((p) => p.columns.email as string),
              )
              .forShare()
              .select('company_key', 'email');
            const takenKeys = new Set(taken.map((t) => `${Number(t.company_key)}|${collationKey(t.email)}`));
            for (const p of batch)
              if (takenKeys.has(`${(p.columns.company_id as number | null) ?? 0}|${collationKey(p.columns.email as string)}`))
                errors.push({
                  row: p.row,
                  column: 'email',
                  code: 'CONTACT_EMAIL_TAKEN',
                  detail: `a live contact of this company already has the email ${String(p.columns.email)}`,
                });
          }
          if (!errors.length && !opts.dryRun) await insertAll(trx, 'contacts', 'contact', prepared, actor);
          return finish(errors, prepared.length, opts.dryRun);
        });
      } catch (err) {
        throw mapUniqueViolation(err, {
          contacts_live_email_uq: ['CONTACT_EMAIL_TAKEN', 'a live contact of the same company already has an email of the file'],
        });
      }
    },
  };
}
