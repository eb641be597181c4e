/** `GET /api/v1/activity`: the tenant's activity log (read-only), newest first. */
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ACTIVITY_ENTITIES, listActivity } from '../../crm/activity.js';
import { ROLES } from '../crm-helpers.js';
import { page, paginationQuery, withProblems } from '../schemas.js';

const entities = ACTIVITY_ENTITIES;
const activitySchema = z
  .object({
    id: z.number().int(),
    userId: z.number().int().nullable(),
    action: z.enum(['create', 'update', 'delete', 'restore']),
    entity: z.enum(entities),
    entityId: z.number().int(),
    changes: z.record(z.string(), z.object({ old: z.unknown(), new: z.unknown() })).describe('field -> { old, new }'),
    createdAt: z.date(),
  })
  .meta({ id: 'Activity' });

export const activityRoutes: FastifyPluginCallbackZod = (app, _opts, done) => {
  app.get(
    '/activity',
    {
      schema: {
        operationId: 'listActivity',
        tags: ['activity'],
        security: [{ tenantBearer: [] }],
        querystring: paginationQuery.extend({
          entity: z.enum(entities).optional(),
          entityId: z.coerce.number().int().positive().optional(),
          userId: z.coerce.number().int().positive().optional(),
        }),
        response: withProblems({ 200: page(activitySchema) }),
      },
      onRequest: app.requireTenantUser([...ROLES.read]),
    },
    async (request) => {
      const q = request.query;
      const r = await listActivity(await app.tenantKnex(request), q);
      return { ...r, page: q.page, pageSize: q.pageSize };
    },
  );
  done();
};
