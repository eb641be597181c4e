/**
 * Notes of a tenant: free text (1..10,000 characters) about one record (see
 * `related.ts`), written by the signed-in user (the author). Listed by record, newest
 * first; changed and soft-deleted by their author, or by a user whose role has
 * `notes:manage` (built-in: admins), with optimistic
 * locking; every change writes the activity log (entity `note`) in its transaction. A
 * record's soft delete leaves its notes alone.
 */
import type { Knex } from 'knex';
import { z } from 'zod';
import { ForbiddenError } from '../lib/errors.js';
import { emitEvent } from '../webhooks/emit.js';
import { diff, logActivity } from './activity.js';
import { assertVersion, inTransaction, loadRow, markDeleted, paginate, type Actor } from './common.js';
import { assertRelated, recordId, relatedTypeSchema, type RelatedType } from './related.js';

/** A note as the API shows it. */
export interface Note {
  id: number;
  relatedType: RelatedType;
  relatedId: number;
  text: string;
  /** The user who wrote it. */
  authorId: number;
  version: number;
  createdAt: Date;
  updatedAt: Date;
  deletedAt: Date | null;
}

/** A row of a tenant's `notes` table. */
export interface NoteRow {
  id: number;
  related_type: RelatedType;
  related_id: number;
  text: string;
  author_id: number;
  version: number;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

/** Maps a row to the API view. */
export function toNote(r: NoteRow): Note {
  return {
    id: Number(r.id),
    relatedType: r.related_type,
    relatedId: Number(r.related_id),
    text: r.text,
    authorId: Number(r.author_id),
    version: r.version,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    deletedAt: r.deleted_at,
  };
}

/** 1..10,000 characters (UTF-16 code units, as zod counts), kept as sent. */
const noteText = z.string().min(1).max(10_000);

export const createNoteBody = z.strictObject({
  relatedType: relatedTypeSchema,
  relatedId: recordId.describe('a live record of relatedType, else 422 INVALID_REFERENCE'),
  text: noteText,
});
export const updateNoteBody = z.strictObject({ text: noteText, version: z.number().int().positive().optional() });

/** Filters of the list: a related type, and with it a record id (none: every note). */
export interface NoteFilters {
  relatedType?: RelatedType;
  relatedId?: number;
  page: number;
  pageSize: number;
  includeDeleted?: boolean;
}

/** The notes service over a tenant's Knex, acting as `actor` (the author of what it creates). */
export function createNotesService(knex: Knex, actor: Actor, may: (permission: 'notes:manage') => boolean = () => false) {
  const load = async (id: number, db: Knex | Knex.Transaction = knex, o: { includeDeleted?: boolean; lock?: boolean } = {}) =>
    toNote(await loadRow<NoteRow>(db, 'notes', 'note', id, o));

  /** @throws ForbiddenError `NOT_NOTE_AUTHOR` unless the actor wrote the note or its role may change others' (`notes:manage`) */
  const assertMayChange = (n: Note, permission: 'notes:manage') => {
    if (n.authorId !== actor.userId && !may(permission))
      throw new ForbiddenError(`only the author of a note or a role with ${permission} may change it`, 'NOT_NOTE_AUTHOR');
  };

  return {
    /** Notes newest first (of one record with both filters). @throws ValidationError `PAGE_TOO_DEEP` */
    list(f: NoteFilters): Promise<{ data: Note[]; total: number }> {
      const q = knex('notes');
      if (f.relatedType) q.where('related_type', f.relatedType);
      if (f.relatedId !== undefined) q.where('related_id', f.relatedId);
      if (!f.includeDeleted) q.whereNull('deleted_at');
      return paginate(q, f, (p) => void p.orderBy('created_at', 'desc').orderBy('id', 'desc'), toNote);
    },

    /** @throws NotFoundError `NOTE_NOT_FOUND` (also for a deleted one unless includeDeleted) */
    get: (id: number, includeDeleted = false): Promise<Note> => load(id, knex, { includeDeleted }),

    /** @throws UnprocessableError `INVALID_REFERENCE` (relatedId) */
    create(input: z.output<typeof createNoteBody>, outer?: Knex.Transaction): Promise<Note> {
      return inTransaction(knex, outer, async (trx) => {
        await assertRelated(trx, input.relatedType, input.relatedId);
        const [id] = await trx('notes').insert({
          related_type: input.relatedType,
          related_id: input.relatedId,
          text: input.text,
          author_id: actor.userId,
        });
        const created = await load(Number(id), trx);
        await logActivity(trx, {
          userId: actor.userId,
          action: 'create',
          entity: 'note',
          entityId: created.id,
          changes: diff(null, { ...created, deletedAt: undefined }),
        });
        await emitEvent(trx, 'note.created', created);
        return created;
      });
    },

    /**
     * Replaces the text.
     * @throws NotFoundError; ForbiddenError `NOT_NOTE_AUTHOR`; SiloError 428 `VERSION_REQUIRED`; ConflictError `VERSION_CONFLICT`
     */
    update(id: number, input: z.output<typeof updateNoteBody>, version: number | undefined): Promise<Note> {
      return knex.transaction(async (trx) => {
        const before = await load(id, trx, { lock: true });
        assertMayChange(before, 'notes:manage');
        assertVersion(version ?? input.version, before.version, 'note');
        await trx('notes')
          .where({ id })
          .update({ text: input.text, version: before.version + 1 });
        const after = await load(id, trx);
        await logActivity(trx, { userId: actor.userId, action: 'update', entity: 'note', entityId: id, changes: diff(before, after) });
        await emitEvent(trx, 'note.updated', after);
        return after;
      });
    },

    /** Soft-deletes the note. @throws NotFoundError `NOTE_NOT_FOUND`; ForbiddenError `NOT_NOTE_AUTHOR` */
    async remove(id: number): Promise<void> {
      await knex.transaction(async (trx) => {
        const before = await load(id, trx, { lock: true });
        assertMayChange(before, 'notes:manage');
        await markDeleted(trx, { table: 'notes', entity: 'note', id, version: before.version }, actor.userId);
        await emitEvent(trx, 'note.deleted', () => load(id, trx, { includeDeleted: true }));
      });
    },
  };
}
