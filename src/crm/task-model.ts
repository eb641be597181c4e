/**
 * Tasks' API view, request schemas, filters and row mapping; the service is
 * `crm/tasks.ts`. Times are UTC: `dueAt`, `completedAt` and the timestamps are
 * DATETIME(3) in the database and `Date` here (ISO 8601 on the wire).
 */
import { z } from 'zod';
import type { ListParams } from './common.js';
import { recordId, relatedTypeSchema, type RelatedType } from './related.js';

export const TASK_PRIORITIES = ['low', 'normal', 'high'] as const;
export type TaskPriority = (typeof TASK_PRIORITIES)[number];
export const TASK_STATUSES = ['open', 'done', 'cancelled'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
/** `?due=`: see {@link dueRange}. */
export const TASK_DUE = ['overdue', 'today', 'week'] as const;
export type TaskDue = (typeof TASK_DUE)[number];

/** A task as the API shows it. */
export interface Task {
  id: number;
  title: string;
  description: string | null;
  dueAt: Date | null;
  priority: TaskPriority;
  status: TaskStatus;
  /** A tenant user id. */
  assigneeId: number | null;
  relatedType: RelatedType | null;
  relatedId: number | null;
  /** When the task was last marked done; null unless `status` is `done`. */
  completedAt: Date | null;
  /** The user who created it. */
  createdBy: number | null;
  version: number;
  createdAt: Date;
  updatedAt: Date;
  deletedAt: Date | null;
}

/** A row of a tenant's `tasks` table. */
export interface TaskRow {
  id: number;
  title: string;
  description: string | null;
  due_at: Date | null;
  priority: TaskPriority;
  status: TaskStatus;
  assignee_id: number | null;
  related_type: RelatedType | null;
  related_id: number | null;
  completed_at: Date | null;
  created_by: number | null;
  version: number;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

const num = (v: number | string | null): number | null => (v === null ? null : Number(v));

/** Maps a row to the API view. */
export function toTask(r: TaskRow): Task {
  return {
    id: Number(r.id),
    title: r.title,
    description: r.description,
    dueAt: r.due_at,
    priority: r.priority,
    status: r.status,
    assigneeId: num(r.assignee_id),
    relatedType: r.related_type,
    relatedId: num(r.related_id),
    completedAt: r.completed_at,
    createdBy: num(r.created_by),
    version: r.version,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    deletedAt: r.deleted_at,
  };
}

/** An ISO 8601 date-time with `Z` or an offset, within MySQL's DATETIME range, as a `Date`. */
export const isoDateTime = z.iso
  .datetime({ offset: true, message: 'expected an ISO 8601 date-time such as 2030-01-31T17:00:00Z' })
  .transform((s) => new Date(s))
  .refine((d) => d.getUTCFullYear() >= 1000 && d.getUTCFullYear() <= 9999, 'date-times are between the years 1000 and 9999');

/** Fields of a task a client may write. */
export const taskFields = {
  title: z.string().trim().min(1).max(200),
  description: z.string().max(10_000).nullable(),
  dueAt: isoDateTime.nullable(),
  priority: z.enum(TASK_PRIORITIES),
  status: z.enum(TASK_STATUSES),
  assigneeId: recordId.nullable().describe('an active user of the tenant, else 422 INVALID_REFERENCE'),
  relatedType: relatedTypeSchema.nullable(),
  relatedId: recordId.nullable().describe('a live record of relatedType, else 422 INVALID_REFERENCE'),
};

/** relatedType and relatedId go together: both set, or both null/absent. */
const bothOrNeither = (b: { relatedType?: unknown; relatedId?: unknown }) => (b.relatedType == null) === (b.relatedId == null);
const pairMessage = { message: 'relatedType and relatedId go together', path: ['relatedId'] };

export const createTaskBody = z
  .strictObject({
    title: taskFields.title,
    description: taskFields.description.optional(),
    dueAt: taskFields.dueAt.optional(),
    priority: taskFields.priority.default('normal'),
    status: taskFields.status.default('open'),
    assigneeId: taskFields.assigneeId.optional(),
    relatedType: taskFields.relatedType.optional(),
    relatedId: taskFields.relatedId.optional(),
  })
  .refine(bothOrNeither, pairMessage);

export const updateTaskBody = z
  .strictObject({
    title: taskFields.title.optional(),
    description: taskFields.description.optional(),
    dueAt: taskFields.dueAt.optional(),
    priority: taskFields.priority.optional(),
    status: taskFields.status.optional(),
    assigneeId: taskFields.assigneeId.optional(),
    relatedType: taskFields.relatedType.optional(),
    relatedId: taskFields.relatedId.optional(),
    version: z.number().int().positive().optional(),
  })
  .refine((b) => (b.relatedType === undefined) === (b.relatedId === undefined) && bothOrNeither(b), pairMessage);

/** Filters of the list (all optional, combined with AND). Time bounds: `after` inclusive, `before` exclusive. */
export interface TaskFilters extends ListParams {
  /** A user id (the route turns `me` into the caller's). */
  assigneeId?: number;
  status?: TaskStatus;
  priority?: TaskPriority;
  due?: TaskDue;
  relatedType?: RelatedType;
  relatedId?: number;
  createdAfter?: Date;
  createdBefore?: Date;
  updatedAfter?: Date;
  updatedBefore?: Date;
}

/** API field -> column of what a create or update writes. */
export const TASK_COLUMNS = {
  title: 'title',
  description: 'description',
  dueAt: 'due_at',
  priority: 'priority',
  status: 'status',
  assigneeId: 'assignee_id',
  relatedType: 'related_type',
  relatedId: 'related_id',
} as const;

/** API field -> column of every sortable field (every field of the view). */
export const TASK_SORT = {
  id: 'id',
  ...TASK_COLUMNS,
  completedAt: 'completed_at',
  createdBy: 'created_by',
  version: 'version',
  createdAt: 'created_at',
  updatedAt: 'updated_at',
  deletedAt: 'deleted_at',
};

const DAY_MS = 86_400_000;

/**
 * The `due_at` range of a `?due=` filter at `now`, in UTC: `overdue` is due before now
 * (and the list adds status `open`); `today` is the current UTC day
 * [00:00:00.000Z, next 00:00:00.000Z); `week` is the next 7 days [now, now + 7 x 24 h).
 * @returns `from` inclusive (absent: unbounded), `to` exclusive
 */
export function dueRange(due: TaskDue, now: Date): { from?: Date; to: Date } {
  if (due === 'overdue') return { to: now };
  if (due === 'week') return { from: now, to: new Date(now.getTime() + 7 * DAY_MS) };
  const start = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  return { from: new Date(start), to: new Date(start + DAY_MS) };
}
