/**
 * Tasks of a tenant: CRUD with soft delete and restore, optimistic locking, filters
 * (assignee, status, priority, due windows in UTC, related record, created/updated
 * ranges), sort on every field; every change writes the activity log (entity `task`) in
 * its transaction. A task may be about one record (see `related.ts`): the record must be
 * live when it is set, and a later soft delete of the record leaves its tasks alone.
 * Marking a task done sets `completedAt`; any other status clears it.
 */
import type { Knex } from 'knex';
import type { z } from 'zod';
import { emitEvent } from '../webhooks/emit.js';
import { diff, logActivity } from './activity.js';
import { applySort, assertVersion, definedColumns, inTransaction, likeContains, loadRow, markDeleted, markRestored, paginate, type Actor } from './common.js';
import { assertActiveUser, assertRelated } from './related.js';
import {
  dueRange,
  TASK_COLUMNS,
  TASK_SORT,
  toTask,
  type createTaskBody,
  type Task,
  type TaskFilters,
  type TaskRow,
  type TaskStatus,
  type updateTaskBody,
} from './task-model.js';

// The model lives in its own file; everything stays importable from here.
export * from './task-model.js';

/** Options of {@link createTasksService}. */
export interface TasksServiceOptions {
  /** The clock of the `due` filters and of `completedAt` (tests fix it). */
  now?: () => Date;
}

/** `completed_at` for a status change: set when it becomes done, cleared when it leaves done. */
function completion(before: TaskStatus | undefined, after: TaskStatus | undefined, now: Date): { completed_at?: Date | null } {
  if (after === undefined || after === before) return {};
  return { completed_at: after === 'done' ? now : null };
}

/** The tasks service over a tenant's Knex, acting as `actor`. */
export function createTasksService(knex: Knex, actor: Actor, opts: TasksServiceOptions = {}) {
  const now = opts.now ?? (() => new Date());

  const filtered = (f: TaskFilters) => {
    const q = knex('tasks');
    if (!f.includeDeleted) q.whereNull('deleted_at');
    if (f.assigneeId !== undefined) q.where('assignee_id', f.assigneeId);
    if (f.status) q.where('status', f.status);
    if (f.priority) q.where('priority', f.priority);
    if (f.relatedType) q.where('related_type', f.relatedType);
    if (f.relatedId !== undefined) q.where('related_id', f.relatedId);
    if (f.createdAfter) q.where('created_at', '>=', f.createdAfter);
    if (f.createdBefore) q.where('created_at', '<', f.createdBefore);
    if (f.updatedAfter) q.where('updated_at', '>=', f.updatedAfter);
    if (f.updatedBefore) q.where('updated_at', '<', f.updatedBefore);
    if (f.due) {
      const r = dueRange(f.due, now());
      if (f.due === 'overdue') q.where('status', 'open');
      if (r.from) q.where('due_at', '>=', r.from);
      q.where('due_at', '<', r.to);
    }
    if (f.q) q.where('title', 'like', likeContains(f.q));
    return q;
  };

  const load = async (id: number, db: Knex | Knex.Transaction = knex, o: { includeDeleted?: boolean; lock?: boolean } = {}) =>
    toTask(await loadRow<TaskRow>(db, 'tasks', 'task', id, o));

  /** Checks the references a write sets. @throws UnprocessableError `INVALID_REFERENCE` */
  const checkRefs = async (trx: Knex.Transaction, input: { assigneeId?: number | null; relatedType?: Task['relatedType']; relatedId?: number | null }) => {
    if (input.assigneeId != null) await assertActiveUser(trx, input.assigneeId, 'assigneeId');
    if (input.relatedType != null && input.relatedId != null) await assertRelated(trx, input.relatedType, input.relatedId);
  };

  return {
    /** A page of tasks. @throws ValidationError `INVALID_SORT`, `PAGE_TOO_DEEP` */
    list: (f: TaskFilters): Promise<{ data: Task[]; total: number }> => paginate(filtered(f), f, (q) => applySort(q, f.sort, TASK_SORT), toTask),

    /** @throws NotFoundError `TASK_NOT_FOUND` (also for a deleted one unless includeDeleted) */
    get: (id: number, includeDeleted = false): Promise<Task> => load(id, knex, { includeDeleted }),

    /** @throws UnprocessableError `INVALID_REFERENCE` (assigneeId, relatedId) */
    create(input: z.output<typeof createTaskBody>, outer?: Knex.Transaction): Promise<Task> {
      return inTransaction(knex, outer, async (trx) => {
        await checkRefs(trx, input);
        const [id] = await trx('tasks').insert({
          title: input.title,
          description: input.description ?? null,
          due_at: input.dueAt ?? null,
          priority: input.priority,
          status: input.status,
          assignee_id: input.assigneeId ?? null,
          related_type: input.relatedType ?? null,
          related_id: input.relatedId ?? null,
          completed_at: input.status === 'done' ? now() : null,
          created_by: actor.userId,
        });
        const created = await load(Number(id), trx);
        await logActivity(trx, {
          userId: actor.userId,
          action: 'create',
          entity: 'task',
          entityId: created.id,
          changes: diff(null, { ...created, deletedAt: undefined }),
        });
        await emitEvent(trx, 'task.created', created);
        return created;
      });
    },

    /**
     * Changes the given fields; a status change sets or clears `completedAt`.
     * @throws NotFoundError; SiloError 428 `VERSION_REQUIRED`; ConflictError `VERSION_CONFLICT`; UnprocessableError `INVALID_REFERENCE`
     */
    update(id: number, input: z.output<typeof updateTaskBody>, version: number | undefined): Promise<Task> {
      return knex.transaction(async (trx) => {
        const before = await load(id, trx, { lock: true });
        assertVersion(version ?? input.version, before.version, 'task');
        await checkRefs(trx, input);
        const patch: Record<string, unknown> = {
          ...completion(before.status, input.status, now()),
          ...definedColumns<keyof typeof TASK_COLUMNS>(input, TASK_COLUMNS),
        };
        await trx('tasks')
          .where({ id })
          .update({ ...patch, version: before.version + 1 });
        const after = await load(id, trx);
        await logActivity(trx, { userId: actor.userId, action: 'update', entity: 'task', entityId: id, changes: diff(before, after) });
        await emitEvent(trx, 'task.updated', after);
        return after;
      });
    },

    /** Soft-deletes the task. @throws NotFoundError `TASK_NOT_FOUND` */
    async remove(id: number): Promise<void> {
      await knex.transaction(async (trx) => {
        const before = await load(id, trx, { lock: true });
        await markDeleted(trx, { table: 'tasks', entity: 'task', id, version: before.version }, actor.userId);
        await emitEvent(trx, 'task.deleted', () => load(id, trx, { includeDeleted: true }));
      });
    },

    /** Restores a deleted task (a live one is answered as it is). @throws NotFoundError `TASK_NOT_FOUND` */
    restore(id: number): Promise<Task> {
      return knex.transaction(async (trx) => {
        const before = await load(id, trx, { includeDeleted: true, lock: true });
        if (!before.deletedAt) return before;
        await markRestored(trx, { table: 'tasks', entity: 'task', id, version: before.version, deletedAt: before.deletedAt }, actor.userId);
        const after = await load(id, trx);
        await emitEvent(trx, 'task.restored', after);
        return after;
      });
    },
  };
}
