/**
 * `/api/v1/notes`: notes on companies, contacts and deals, by their author (the signed-in
 * user); listed by record; changed and soft-deleted by their author or an admin.
 */
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createNoteBody, createNotesService, updateNoteBody } from '../../crm/notes.js';
import { RELATED_TYPES, relatedTypeSchema } from '../../crm/related.js';
import { actorOf, checkIncludeDeleted, createWithIdempotency, getQuery, idParams, ifMatchVersion, includeDeletedParam } from '../crm-helpers.js';
import { page, paginationQuery, problemSchema, withProblems } from '../schemas.js';

const date = z.date();
export const noteSchema = z
  .object({
    id: z.number().int(),
    relatedType: z.enum(RELATED_TYPES),
    relatedId: z.number().int(),
    text: z.string(),
    authorId: z.number().int(),
    version: z.number().int(),
    createdAt: date,
    updatedAt: date,
    deletedAt: date.nullable(),
  })
  .meta({ id: 'Note' });

const listQuery = paginationQuery
  .extend({
    relatedType: relatedTypeSchema.optional(),
    relatedId: z.coerce
      .number()
      .int()
      .positive()
      .max(2 ** 53 - 1)
      .optional()
      .describe('with relatedType: the notes of that record'),
    includeDeleted: includeDeletedParam,
  })
  .refine((q) => q.relatedId === undefined || q.relatedType !== undefined, { message: 'relatedId needs relatedType', path: ['relatedId'] });

export const notesRoutes: FastifyPluginCallbackZod = (app, _opts, done) => {
  const tags = ['notes'];
  const security = [{ tenantBearer: [] }];
  const svc = async (request: Parameters<typeof actorOf>[0]) =>
    createNotesService(await app.tenantKnex(request), actorOf(request), (p) => request.tenantPermissions?.has(p) ?? false);
  // Whoever may write notes may try; the service lets the author, or a role with notes:manage, change one (403 NOT_NOTE_AUTHOR).
  const changers = app.requirePermission('notes:create');

  app.get(
    '/notes',
    {
      schema: {
        operationId: 'listNotes',
        tags,
        security,
        summary: 'Notes, newest first: of one record (relatedType + relatedId), of one type, or all',
        querystring: listQuery,
        response: withProblems({ 200: page(noteSchema) }),
      },
      onRequest: app.requirePermission('notes:read'),
    },
    async (request) => {
      const q = request.query;
      const r = await (await svc(request)).list({ ...q, includeDeleted: checkIncludeDeleted(request, q.includeDeleted) });
      return { ...r, page: q.page, pageSize: q.pageSize };
    },
  );

  app.post(
    '/notes',
    {
      schema: { operationId: 'createNote', tags, security, body: createNoteBody, response: withProblems({ 201: noteSchema, 422: problemSchema }) },
      onRequest: app.requirePermission('notes:create'),
    },
    async (request, reply) => {
      const s = await svc(request);
      return createWithIdempotency(request, reply, request.tenantDb!, (trx) => s.create(request.body, trx));
    },
  );

  app.get(
    '/notes/:id',
    {
      schema: { operationId: 'getNote', tags, security, params: idParams, querystring: getQuery, response: withProblems({ 200: noteSchema }) },
      onRequest: app.requirePermission('notes:read'),
    },
    async (request) => (await svc(request)).get(request.params.id, checkIncludeDeleted(request, request.query.includeDeleted)),
  );

  app.patch(
    '/notes/:id',
    {
      schema: {
        operationId: 'updateNote',
        tags,
        security,
        summary: "Change a note's text (its author or an admin)",
        params: idParams,
        body: updateNoteBody,
        response: withProblems({ 200: noteSchema, 409: problemSchema, 428: problemSchema }),
      },
      onRequest: changers,
    },
    async (request) => (await svc(request)).update(request.params.id, request.body, ifMatchVersion(request)),
  );

  app.delete(
    '/notes/:id',
    {
      schema: {
        operationId: 'deleteNote',
        tags,
        security,
        summary: 'Soft-delete a note (its author or an admin)',
        params: idParams,
        response: withProblems({ 204: z.null() }),
      },
      onRequest: changers,
    },
    async (request, reply) => {
      await (await svc(request)).remove(request.params.id);
      return reply.code(204).send(null);
    },
  );
  done();
};
