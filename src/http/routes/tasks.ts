/**
 * `/api/v1/tasks`: tasks of the tenant (optionally about a company, contact or deal),
 * with filters (`assignee=me`, `due=overdue|today|week` in UTC, ...), restore and
 * optimistic locking.
 */
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { RELATED_TYPES, relatedTypeSchema } from '../../crm/related.js';
import { createTaskBody, createTasksService, isoDateTime, TASK_DUE, TASK_PRIORITIES, TASK_SORT, TASK_STATUSES, updateTaskBody } from '../../crm/tasks.js';
import { actorOf, checkIncludeDeleted, createWithIdempotency, getQuery, idParams, ifMatchVersion, includeDeletedParam } from '../crm-helpers.js';
import { page, paginationQuery, problemSchema, withProblems } from '../schemas.js';

const date = z.date();
export const taskSchema = z
  .object({
    id: z.number().int(),
    title: z.string(),
    description: z.string().nullable(),
    dueAt: date.nullable(),
    priority: z.enum(TASK_PRIORITIES),
    status: z.enum(TASK_STATUSES),
    assigneeId: z.number().int().nullable(),
    relatedType: z.enum(RELATED_TYPES).nullable(),
    relatedId: z.number().int().nullable(),
    completedAt: date.nullable().describe('when it was marked done; null unless status is done'),
    createdBy: z.number().int().nullable(),
    version: z.number().int(),
    createdAt: date,
    updatedAt: date,
    deletedAt: date.nullable(),
  })
  .meta({ id: 'Task' });

const ref = z.coerce
  .number()
  .int()
  .positive()
  .max(2 ** 53 - 1);
const listQuery = paginationQuery
  .extend({
    q: z.string().trim().min(1).max(200).optional().describe('search in titles'),
    sort: z
      .string()
      .max(200)
      .optional()
      .describe(`comma-separated fields, - for descending: ${Object.keys(TASK_SORT).join(', ')}`),
    assignee: z
      .union([z.literal('me'), ref])
      .optional()
      .describe('`me` (the signed-in user) or a user id'),
    status: z.enum(TASK_STATUSES).optional(),
    priority: z.enum(TASK_PRIORITIES).optional(),
    due: z
      .enum(TASK_DUE)
      .optional()
      .describe(
        'UTC: overdue = dueAt before now and status open; today = dueAt within the current UTC day (00:00Z to 24:00Z); week = dueAt within the next 7 days from now',
      ),
    relatedType: relatedTypeSchema.optional(),
    relatedId: ref.optional().describe('with relatedType'),
    createdAfter: isoDateTime.optional().describe('ISO 8601, inclusive'),
    createdBefore: isoDateTime.optional().describe('ISO 8601, exclusive'),
    updatedAfter: isoDateTime.optional().describe('ISO 8601, inclusive'),
    updatedBefore: isoDateTime.optional().describe('ISO 8601, exclusive'),
    includeDeleted: includeDeletedParam,
  })
  .refine((q) => q.relatedId === undefined || q.relatedType !== undefined, { message: 'relatedId needs relatedType', path: ['relatedId'] });

export const tasksRoutes: FastifyPluginCallbackZod = (app, _opts, done) => {
  const tags = ['tasks'];
  const security = [{ tenantBearer: [] }];
  const svc = async (request: Parameters<typeof actorOf>[0]) => createTasksService(await app.tenantKnex(request), actorOf(request));
  const mutations = withProblems({ 200: taskSchema, 409: problemSchema, 422: problemSchema, 428: problemSchema });

  app.get(
    '/tasks',
    {
      schema: { operationId: 'listTasks', tags, security, querystring: listQuery, response: withProblems({ 200: page(taskSchema) }) },
      onRequest: app.requirePermission('tasks:read'),
    },
    async (request) => {
      const { assignee, ...q } = request.query;
      const assigneeId = assignee === 'me' ? actorOf(request).userId : assignee;
      const r = await (await svc(request)).list({ ...q, assigneeId, includeDeleted: checkIncludeDeleted(request, q.includeDeleted) });
      return { ...r, page: q.page, pageSize: q.pageSize };
    },
  );

  app.post(
    '/tasks',
    {
      schema: {
        operationId: 'createTask',
        tags,
        security,
        body: createTaskBody,
        response: withProblems({ 201: taskSchema, 422: problemSchema }),
      },
      onRequest: app.requirePermission('tasks:create'),
    },
    async (request, reply) => {
      const s = await svc(request);
      return createWithIdempotency(request, reply, request.tenantDb!, (trx) => s.create(request.body, trx));
    },
  );

  app.get(
    '/tasks/:id',
    {
      schema: { operationId: 'getTask', tags, security, params: idParams, querystring: getQuery, response: withProblems({ 200: taskSchema }) },
      onRequest: app.requirePermission('tasks:read'),
    },
    async (request) => (await svc(request)).get(request.params.id, checkIncludeDeleted(request, request.query.includeDeleted)),
  );

  app.patch(
    '/tasks/:id',
    {
      schema: {
        operationId: 'updateTask',
        tags,
        security,
        summary: 'Change a task; status done sets completedAt, any other status clears it',
        params: idParams,
        body: updateTaskBody,
        response: mutations,
      },
      onRequest: app.requirePermission('tasks:update'),
    },
    async (request) => (await svc(request)).update(request.params.id, request.body, ifMatchVersion(request)),
  );

  app.delete(
    '/tasks/:id',
    {
      schema: { operationId: 'deleteTask', tags, security, summary: 'Soft-delete a task', params: idParams, response: withProblems({ 204: z.null() }) },
      onRequest: app.requirePermission('tasks:delete'),
    },
    async (request, reply) => {
      await (await svc(request)).remove(request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/tasks/:id/restore',
    {
      schema: { operationId: 'restoreTask', tags, security, params: idParams, response: withProblems({ 200: taskSchema }) },
      onRequest: app.requirePermission('tasks:restore'),
    },
    async (request) => (await svc(request)).restore(request.params.id),
  );
  done();
};
