/**
 * The records that tasks, notes and timelines are about: ONE registry, related type ->
 * table. Adding a kind of record (leads: `lead: 'leads'`) is one line here; the API's
 * enums, the reference checks and the timeline routes all come from it. Every table in
 * it has `id` and `deleted_at`.
 */
import type { Knex } from 'knex';
import { z } from 'zod';
import { UnprocessableError } from '../lib/errors.js';

/** Related type -> table of that record. */
export const RELATED_TABLES = {
  company: 'companies',
  contact: 'contacts',
  deal: 'deals',
  lead: 'leads',
} as const satisfies Record<string, string>;

/** A kind of record tasks and notes can be about. */
export type RelatedType = keyof typeof RELATED_TABLES;

/** The related types, in registry order. */
export const RELATED_TYPES = Object.keys(RELATED_TABLES) as [RelatedType, ...RelatedType[]];

/** `relatedType` as the API takes it. */
export const relatedTypeSchema = z.enum(RELATED_TYPES);

/** A record id as the API takes it (1 .. 2^53 - 1). */
export const recordId = z
  .number()
  .int()
  .positive()
  .max(2 ** 53 - 1);

/** 422 `INVALID_REFERENCE` naming the body field (as deals' references). */
export function invalidReference(field: string, message: string): UnprocessableError {
  return new UnprocessableError(message, 'INVALID_REFERENCE', { field, fields: [{ path: `body.${field}`, message }] });
}

/**
 * Checks that the related record exists and is not soft-deleted, locking it in share mode
 * (so it cannot be deleted before the caller's commit).
 * @throws UnprocessableError `INVALID_REFERENCE` (field `relatedId`)
 */
export async function assertRelated(trx: Knex.Transaction, type: RelatedType, id: number): Promise<void> {
  const row: unknown = await trx(RELATED_TABLES[type]).where({ id }).whereNull('deleted_at').forShare().first('id');
  if (!row) throw invalidReference('relatedId', `relatedId ${id} is not a live ${type} of this tenant`);
}

/**
 * Checks that `userId` is an active user of the tenant (share-locked until the commit).
 * @throws UnprocessableError `INVALID_REFERENCE` naming `field`
 */
export async function assertActiveUser(trx: Knex.Transaction, userId: number, field: string): Promise<void> {
  const row: unknown = await trx('users').where({ id: userId, active: true }).forShare().first('id');
  if (!row) throw invalidReference(field, `${field} ${userId} is not an active user of this tenant`);
}
