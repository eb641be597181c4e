/**
 * The timeline of one record (a company, contact or deal; any type of `related.ts`): its
 * notes, tasks, activity-log entries and attachments merged newest first.
 *
 * Pagination is by cursor, not page number. With offsets, page p of a merge of 4 sources
 * needs the first p x pageSize rows of EVERY source (a source cannot skip rows without
 * knowing how the others interleave), so the work grows with the depth, and a row
 * written between two requests shifts every later page (a gap or a duplicate). A cursor
 * is the position of the last item shown: the key (at, rank of its kind, id), compared
 * lexicographically, newest first. Each source then reads at most pageSize + 1 rows
 * after the cursor, from an index on (record, created_at) whose entries end in the
 * primary key, so a page costs 4 bounded index range reads whatever its depth; the
 * merged first pageSize rows are exactly the next page (every one of them is among the
 * first pageSize of its own source), and new rows (newer than the cursor) never move
 * the pages that follow. `at` is the item's `createdAt` (ms precision, UTC).
 *
 * Deleted notes and tasks are not shown. A soft-deleted record has no timeline (404)
 * unless an admin asks with includeDeleted, as for the record itself.
 */
import type { Knex } from 'knex';
import { ValidationError } from '../lib/errors.js';
import { toActivity, type Activity } from './activity.js';
import { toAttachment, type Attachment, type AttachmentRow } from './attachment-model.js';
import { loadRow } from './common.js';
import { toNote, type Note, type NoteRow } from './notes.js';
import { RELATED_TABLES, type RelatedType } from './related.js';
import { toTask, type Task, type TaskRow } from './task-model.js';

/** One item of a timeline: the kind, its time (`createdAt`) and the item's own fields. */
export type TimelineItem =
  | ({ kind: 'note'; at: Date } & Note)
  | ({ kind: 'task'; at: Date } & Task)
  | ({ kind: 'activity'; at: Date } & Activity)
  | ({ kind: 'attachment'; at: Date } & Attachment);
export type TimelineKind = TimelineItem['kind'];

/** Rank of each kind among items of the same millisecond (higher comes first). */
const RANK: Record<TimelineKind, number> = { note: 3, task: 2, activity: 1, attachment: 0 };

/** A position in a timeline: the key of the last item of the previous page. */
interface Cursor {
  at: Date;
  rank: number;
  id: number;
}

/** Opaque cursor: base64url of `[at ms, rank, id]`. */
export function encodeCursor(item: TimelineItem): string {
  return Buffer.from(JSON.stringify([item.at.getTime(), RANK[item.kind], item.id])).toString('base64url');
}

/** @throws ValidationError `INVALID_CURSOR` */
export function decodeCursor(raw: string): Cursor {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    v = undefined;
  }
  const ok =
    Array.isArray(v) &&
    v.length === 3 &&
    v.every((x) => Number.isSafeInteger(x) && (x as number) >= 0) &&
    (v[1] as number) <= 3 &&
    !Number.isNaN(new Date(v[0] as number).getTime());
  if (!ok) throw new ValidationError('cursor is not one this API gave out', { field: 'cursor' }, 'INVALID_CURSOR');
  const [at, rank, id] = v as [number, number, number];
  return { at: new Date(at), rank, id };
}

/** Restricts a source of kind `kind` to the items after `c` (newest first, see the header). */
function after(q: Knex.QueryBuilder, kind: TimelineKind, c: Cursor | undefined): void {
  if (!c) return;
  const rank = RANK[kind];
  if (rank > c.rank) q.where('created_at', '<', c.at);
  else if (rank < c.rank) q.where('created_at', '<=', c.at);
  else q.where((w) => void w.where('created_at', '<', c.at).orWhere((e) => void e.where('created_at', '=', c.at).andWhere('id', '<', c.id)));
}

/** Items first by time, then kind rank, then id, all descending. */
function compare(a: TimelineItem, b: TimelineItem): number {
  return b.at.getTime() - a.at.getTime() || RANK[b.kind] - RANK[a.kind] || b.id - a.id;
}

/**
 * A page of the timeline of record (`type`, `id`).
 * @param p.pageSize items per page (1..100); p.cursor the `nextCursor` of the previous page
 * @returns the items and the cursor of the next page (null after the last)
 * @throws NotFoundError `<TYPE>_NOT_FOUND` (also for a deleted record unless includeDeleted); ValidationError `INVALID_CURSOR`
 */
export async function timeline(
  knex: Knex,
  type: RelatedType,
  id: number,
  p: { pageSize: number; cursor?: string; includeDeleted?: boolean },
): Promise<{ data: TimelineItem[]; nextCursor: string | null }> {
  const cursor = p.cursor === undefined ? undefined : decodeCursor(p.cursor);
  await loadRow(knex, RELATED_TABLES[type], type, id, { includeDeleted: p.includeDeleted });
  const n = p.pageSize + 1;
  const source = (kind: TimelineKind, table: string, where: Record<string, unknown>, live: boolean) => {
    const q = knex(table).where(where);
    if (live) q.whereNull('deleted_at');
    after(q, kind, cursor);
    return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(n).select('*');
  };
  const [notes, tasks, acts, files] = (await Promise.all([
    source('note', 'notes', { related_type: type, related_id: id }, true),
    source('task', 'tasks', { related_type: type, related_id: id }, true),
    source('activity', 'activity_log', { entity: type, entity_id: id }, false),
    source('attachment', 'attachments', { entity_type: type, entity_id: id }, false),
  ])) as [NoteRow[], TaskRow[], Array<Record<string, unknown>>, AttachmentRow[]];
  const items: TimelineItem[] = [
    ...notes.map((r) => toNote(r)).map((x) => ({ kind: 'note' as const, at: x.createdAt, ...x })),
    ...tasks.map((r) => toTask(r)).map((x) => ({ kind: 'task' as const, at: x.createdAt, ...x })),
    ...acts.map((r) => toActivity(r)).map((x) => ({ kind: 'activity' as const, at: x.createdAt, ...x })),
    ...files.map((r) => toAttachment(r)).map((x) => ({ kind: 'attachment' as const, at: x.createdAt, ...x })),
  ].sort(compare);
  const data = items.slice(0, p.pageSize);
  return { data, nextCursor: items.length > p.pageSize ? encodeCursor(data[data.length - 1]!) : null };
}
