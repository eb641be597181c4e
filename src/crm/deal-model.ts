/**
 * Deals' API view, money arithmetic (exact, in integer cents), request schemas and row
 * mapping; the service is `crm/deals.ts`.
 */
import { z } from 'zod';
import type { ListParams } from './common.js';

export const DEAL_STATUSES = ['open', 'won', 'lost'] as const;
export type DealStatus = (typeof DEAL_STATUSES)[number];

/** A deal as the API shows it. `amount` and `expectedRevenue` are decimal strings with 2 places. */
export interface Deal {
  id: number;
  title: string;
  amount: string;
  currency: string;
  stageId: number;
  companyId: number | null;
  contactId: number | null;
  ownerId: number | null;
  expectedCloseDate: string | null;
  status: DealStatus;
  expectedRevenue: string;
  version: number;
  createdAt: Date;
  updatedAt: Date;
  deletedAt: Date | null;
}

/** A non-negative amount that fits DECIMAL(15,2). */
export const AMOUNT_PATTERN = /^\d{1,13}(\.\d{1,2})?$/;

/** `"1200.5"` -> 120050n. The string must match {@link AMOUNT_PATTERN} (or be a MySQL DECIMAL). */
export function toCents(amount: string): bigint {
  const [int = '0', frac = ''] = amount.split('.');
  return BigInt(int) * 100n + BigInt(frac.padEnd(2, '0').slice(0, 2));
}

/** 120050n -> `"1200.50"`. */
export function formatCents(cents: bigint): string {
  const sign = cents < 0n ? '-' : '';
  const abs = cents < 0n ? -cents : cents;
  return `${sign}${abs / 100n}.${String(abs % 100n).padStart(2, '0')}`;
}

/** amount x probability / 100, rounded half up to the cent. */
export function expectedRevenue(amount: string, probability: number): string {
  return formatCents((toCents(amount) * BigInt(probability) + 50n) / 100n);
}

const CURRENCIES = new Set(Intl.supportedValuesOf('currency'));
const CURRENCY_PATTERN = /^[A-Z]{3}$/;
const ref = z
  .number()
  .int()
  .positive()
  .max(2 ** 53 - 1);
/** `YYYY-MM-DD`, a real calendar day in MySQL's DATE range. */
export const isoDay = z.iso.date({ message: 'expected a date as YYYY-MM-DD' }).refine((d) => d >= '1000-01-01', 'dates start at 1000-01-01');
/** An amount as a client sends it, normalised to 2 places (`"1200"` -> `"1200.00"`). */
export const amountSchema = z
  .string()
  .regex(AMOUNT_PATTERN, 'amount must be a non-negative decimal string with up to 13 digits and 2 decimals, e.g. "1200.50"')
  .transform((a) => formatCents(toCents(a)));

/** Fields of a deal a client may write. */
export const dealFields = {
  title: z.string().trim().min(1).max(200),
  amount: amountSchema,
  currency: z
    .string()
    .regex(CURRENCY_PATTERN, 'currency must be 3 upper-case letters (ISO 4217), e.g. EUR')
    .refine((c) => !CURRENCY_PATTERN.test(c) || CURRENCIES.has(c), 'currency is not an ISO 4217 code'),
  stageId: ref,
  companyId: ref.nullable(),
  contactId: ref.nullable(),
  ownerId: ref.nullable(),
  expectedCloseDate: isoDay.nullable(),
  status: z.enum(DEAL_STATUSES),
};
const f = dealFields;
const version = z.number().int().positive().optional();
export const createDealBody = z.strictObject({
  title: f.title,
  amount: f.amount,
  currency: f.currency,
  stageId: f.stageId,
  companyId: f.companyId.optional(),
  contactId: f.contactId.optional(),
  ownerId: f.ownerId.optional().describe('default: the creating user; null for none'),
  expectedCloseDate: f.expectedCloseDate.optional(),
  status: f.status.optional().describe('default: open'),
});
/** The fields of a PATCH (and of a bulk update's `patch`). */
export const dealPatchBody = z.strictObject({
  title: f.title.optional(),
  amount: f.amount.optional(),
  currency: f.currency.optional(),
  stageId: f.stageId.optional(),
  companyId: f.companyId.optional(),
  contactId: f.contactId.optional(),
  ownerId: f.ownerId.optional(),
  expectedCloseDate: f.expectedCloseDate.optional(),
  status: f.status.optional(),
});
export type DealPatch = z.output<typeof dealPatchBody>;
export const updateDealBody = dealPatchBody.extend({ version });
export const moveDealBody = z.strictObject({ stageId: f.stageId, version });
export const versionBody = z.strictObject({ version });

/** Filters of the list. Amount and close-date bounds are inclusive; created/updated ranges are half-open (see `dateRangeQuery`). */
export interface DealFilters extends ListParams {
  stageId?: number;
  status?: DealStatus;
  ownerId?: number;
  companyId?: number;
  minAmount?: string;
  maxAmount?: string;
  closeBefore?: string;
  closeAfter?: string;
}

/** Counts and per-currency amount sums (never summed across currencies). */
export interface DealBucket {
  count: number;
  amountSum: Record<string, string>;
}
export interface DealStats {
  byStage: Array<{ stageId: number; name: string; position: number } & DealBucket>;
  byStatus: Array<{ status: DealStatus } & DealBucket>;
  total: DealBucket;
}

/** Sortable API fields -> columns. */
export const DEAL_SORT = {
  title: 'title',
  amount: 'amount',
  currency: 'currency',
  status: 'status',
  expectedCloseDate: 'expected_close_date',
  createdAt: 'created_at',
  updatedAt: 'updated_at',
};
/** The columns `q` searches: those of the FULLTEXT index `deals_search_ftx`. */
export const DEAL_SEARCH_COLUMNS = ['title'] as const;
const id = (v: unknown) => (v === null || v === undefined ? null : Number(v));
const day = (v: unknown) => (v instanceof Date ? v.toISOString().slice(0, 10) : (v as string | null));

/** A row of a tenant's `deals` table. */
export interface DealRow {
  id: number;
  title: string;
  amount: string;
  currency: string;
  stage_id: number;
  company_id: number | null;
  contact_id: number | null;
  owner_id: number | null;
  expected_close_date: Date | string | null;
  status: DealStatus;
  version: number;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

/** Maps a row (with `stage_probability` of its stage) to the API view. */
export function toDeal(r: DealRow & { stage_probability: number | string }): Deal {
  const amount = formatCents(toCents(String(r.amount)));
  return {
    id: Number(r.id),
    title: r.title,
    amount,
    currency: r.currency,
    stageId: Number(r.stage_id),
    companyId: id(r.company_id),
    contactId: id(r.contact_id),
    ownerId: id(r.owner_id),
    expectedCloseDate: day(r.expected_close_date),
    status: r.status,
    expectedRevenue: expectedRevenue(amount, Number(r.stage_probability)),
    version: r.version,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    deletedAt: r.deleted_at,
  };
}
