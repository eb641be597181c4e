/**
 * Leads' API view, request schemas, filters and row mapping; the service is `crm/leads.ts`.
 */
import { z } from 'zod';
import { emailSchema } from '../lib/validation.js';
import { definedColumns, type ListParams } from './common.js';
import { companyFields } from './companies.js';
import { dealFields } from './deal-model.js';

export const LEAD_SOURCES = ['website', 'referral', 'event', 'cold-call', 'social', 'other'] as const;
export const LEAD_STATUSES = ['new', 'contacted', 'qualified', 'unqualified', 'converted'] as const;
/** Statuses a client may set (`converted` is set by the convert only). */
export const WRITABLE_LEAD_STATUSES = ['new', 'contacted', 'qualified', 'unqualified'] as const;
export type LeadSource = (typeof LEAD_SOURCES)[number];
export type LeadStatus = (typeof LEAD_STATUSES)[number];

/** A lead as the API shows it. `contactId`, `companyId`, `dealId` and `convertedAt` are set by the convert. */
export interface Lead {
  id: number;
  fullName: string;
  email: string | null;
  phone: string | null;
  companyName: string | null;
  source: LeadSource;
  status: LeadStatus;
  score: number;
  ownerId: number | null;
  notes: string | null;
  contactId: number | null;
  companyId: number | null;
  dealId: number | null;
  convertedAt: Date | null;
  version: number;
  createdAt: Date;
  updatedAt: Date;
  deletedAt: Date | null;
}

const ref = z
  .number()
  .int()
  .positive()
  .max(2 ** 53 - 1);

/** Fields of a lead a client may write. */
export const leadFields = {
  fullName: z.string().trim().min(1).max(200),
  email: emailSchema.nullable(),
  phone: companyFields.phone.nullable(),
  companyName: companyFields.name.nullable(),
  source: z.enum(LEAD_SOURCES),
  status: z.enum(WRITABLE_LEAD_STATUSES).describe('converted is set by POST /leads/{id}/convert only'),
  score: z.number().int().min(0).max(100),
  ownerId: ref.nullable(),
  notes: z.string().max(10_000).nullable(),
};
const f = leadFields;
export const createLeadBody = z.strictObject({
  fullName: f.fullName,
  email: f.email.optional(),
  phone: f.phone.optional(),
  companyName: f.companyName.optional(),
  source: f.source.optional().describe('default: other'),
  status: f.status.optional().describe('default: new'),
  score: f.score.optional().describe('default: 0'),
  ownerId: f.ownerId.optional().describe('default: the creating user; null for none'),
  notes: f.notes.optional(),
});
/** The fields of a PATCH (and of a bulk update's `patch`). */
export const leadPatchFields = {
  fullName: f.fullName.optional(),
  email: f.email.optional(),
  phone: f.phone.optional(),
  companyName: f.companyName.optional(),
  source: f.source.optional(),
  status: f.status.optional(),
  score: f.score.optional(),
  ownerId: f.ownerId.optional(),
  notes: f.notes.optional(),
};
export const updateLeadBody = z.strictObject({ ...leadPatchFields, version: z.number().int().positive().optional() });

/** Body of `POST /leads/:id/convert`. */
export const convertLeadBody = z.strictObject({
  createCompany: z.literal(true).optional().describe("reuse the live company of the lead's companyName (case-insensitive), or create it"),
  deal: z
    .strictObject({ title: dealFields.title, amount: dealFields.amount, currency: dealFields.currency, stageId: dealFields.stageId })
    .optional()
    .describe("create a deal of the new contact (and company), owned by the lead's owner"),
});

/** Filters of the list; score and date bounds are inclusive. */
export interface LeadFilters extends ListParams {
  status?: LeadStatus;
  source?: LeadSource;
  ownerId?: number;
  scoreMin?: number;
  scoreMax?: number;
  createdAfter?: Date;
  createdBefore?: Date;
  updatedAfter?: Date;
  updatedBefore?: Date;
}

/** API fields -> columns of what a create or update writes. */
const WRITABLE = {
  fullName: 'full_name',
  email: 'email',
  phone: 'phone',
  companyName: 'company_name',
  source: 'source',
  status: 'status',
  score: 'score',
  ownerId: 'owner_id',
  notes: 'notes',
} as const;

/** Sortable API fields -> columns: every field of a lead. */
export const LEAD_SORT = {
  id: 'id',
  ...WRITABLE,
  contactId: 'contact_id',
  companyId: 'company_id',
  dealId: 'deal_id',
  convertedAt: 'converted_at',
  version: 'version',
  createdAt: 'created_at',
  updatedAt: 'updated_at',
  deletedAt: 'deleted_at',
};
/** The columns of the FULLTEXT index `leads_search_ft`, in its order. */
export const LEAD_SEARCH_COLUMNS = ['full_name', 'email', 'company_name'] as const;

/** A row of a tenant's `leads` table. */
export interface LeadRow {
  id: number;
  full_name: string;
  email: string | null;
  phone: string | null;
  company_name: string | null;
  source: LeadSource;
  status: LeadStatus;
  score: number;
  owner_id: number | null;
  notes: string | null;
  contact_id: number | null;
  company_id: number | null;
  deal_id: number | null;
  converted_at: Date | null;
  version: number;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

const id = (v: unknown) => (v === null || v === undefined ? null : Number(v));

/** Maps a row to the API view. */
export function toLead(r: LeadRow): Lead {
  return {
    id: Number(r.id),
    fullName: r.full_name,
    email: r.email,
    phone: r.phone,
    companyName: r.company_name,
    source: r.source,
    status: r.status,
    score: Number(r.score),
    ownerId: id(r.owner_id),
    notes: r.notes,
    contactId: id(r.contact_id),
    companyId: id(r.company_id),
    dealId: id(r.deal_id),
    convertedAt: r.converted_at,
    version: r.version,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    deletedAt: r.deleted_at,
  };
}

/** API fields -> columns of what a create or update writes. */
export function leadColumns(input: Partial<Record<keyof typeof leadPatchFields, unknown>>): Record<string, unknown> {
  return definedColumns<keyof typeof WRITABLE>(input, WRITABLE);
}
