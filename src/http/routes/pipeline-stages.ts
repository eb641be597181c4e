/** `/api/v1/pipeline-stages`: the tenant's deal pipeline; everyone reads it, admins change it. */
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createPipelineStagesService, createStageBody, updateStageBody } from '../../crm/pipeline-stages.js';
import { actorOf, createWithIdempotency, idParams, ifMatchVersion } from '../crm-helpers.js';
import { page, paginationQuery, problemSchema, tenantQuery, withProblems } from '../schemas.js';

const date = z.date();
export const pipelineStageSchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    position: z.number().int(),
    probability: z.number().int().describe('percent, 0-100'),
    version: z.number().int(),
    createdAt: date,
    updatedAt: date,
  })
  .meta({ id: 'PipelineStage' });

/** Who may change the pipeline: admins only. */

export const pipelineStagesRoutes: FastifyPluginCallbackZod = (app, _opts, done) => {
  const tags = ['pipeline-stages'];
  const security = [{ tenantBearer: [] }];
  const svc = async (request: Parameters<typeof actorOf>[0]) => createPipelineStagesService(await app.tenantKnex(request), actorOf(request));

  app.get(
    '/pipeline-stages',
    {
      schema: {
        operationId: 'listPipelineStages',
        tags,
        security,
        summary: 'Stages in pipeline order (position)',
        querystring: paginationQuery,
        response: withProblems({ 200: page(pipelineStageSchema) }),
      },
      onRequest: app.requirePermission('stages:read'),
    },
    async (request) => {
      const q = request.query;
      const r = await (await svc(request)).list(q);
      return { ...r, page: q.page, pageSize: q.pageSize };
    },
  );

  app.post(
    '/pipeline-stages',
    {
      schema: {
        operationId: 'createPipelineStage',
        tags,
        security,
        body: createStageBody,
        response: withProblems({ 201: pipelineStageSchema, 409: problemSchema, 422: problemSchema }),
      },
      onRequest: app.requirePermission('stages:create'),
    },
    async (request, reply) => {
      const s = await svc(request);
      return createWithIdempotency(request, reply, request.tenantDb!, (trx) => s.create(request.body, trx));
    },
  );

  app.get(
    '/pipeline-stages/:id',
    {
      schema: {
        operationId: 'getPipelineStage',
        tags,
        security,
        params: idParams,
        querystring: tenantQuery,
        response: withProblems({ 200: pipelineStageSchema }),
      },
      onRequest: app.requirePermission('stages:read'),
    },
    async (request) => (await svc(request)).get(request.params.id),
  );

  app.patch(
    '/pipeline-stages/:id',
    {
      schema: {
        operationId: 'updatePipelineStage',
        tags,
        security,
        params: idParams,
        body: updateStageBody,
        response: withProblems({ 200: pipelineStageSchema, 409: problemSchema, 428: problemSchema }),
      },
      onRequest: app.requirePermission('stages:update'),
    },
    async (request) => (await svc(request)).update(request.params.id, request.body, ifMatchVersion(request)),
  );

  app.delete(
    '/pipeline-stages/:id',
    {
      schema: {
        operationId: 'deletePipelineStage',
        tags,
        security,
        summary: 'Delete a stage no deal refers to',
        params: idParams,
        response: withProblems({ 204: z.null(), 409: problemSchema }),
      },
      onRequest: app.requirePermission('stages:delete'),
    },
    async (request, reply) => {
      await (await svc(request)).remove(request.params.id);
      return reply.code(204).send(null);
    },
  );
  done();
};
