/**
 * `GET /api/v1/{companies,contacts,deals}/:id/timeline`: notes, tasks, activity and
 * attachments of one record, newest first, by cursor (see `crm/timeline.ts` for why). One
 * route per related type of `crm/related.ts`, at `/<table>/:id/timeline` (the table name
 * is the URL segment of every related type), so a new related type gets its timeline
 * without a change here.
 */
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { isPermission } from '../../crm/permissions.js';
import { RELATED_TABLES, RELATED_TYPES } from '../../crm/related.js';
import { timeline } from '../../crm/timeline.js';
import { checkIncludeDeleted, idParams, includeDeletedParam } from '../crm-helpers.js';
import { tenantQuery, withProblems } from '../schemas.js';
import { activitySchema } from './activity.js';
import { attachmentSchema } from './attachments.js';
import { noteSchema } from './notes.js';
import { taskSchema } from './tasks.js';

const at = z.date();
export const timelineItemSchema = z
  .discriminatedUnion('kind', [
    noteSchema.extend({ kind: z.literal('note'), at }),
    taskSchema.extend({ kind: z.literal('task'), at }),
    activitySchema.extend({ kind: z.literal('activity'), at }),
    attachmentSchema.extend({ kind: z.literal('attachment'), at }),
  ])
  .meta({ id: 'TimelineItem', description: '`at` is the createdAt of the item; the other fields are those of the item' });
const timelineSchema = z
  .object({
    data: z.array(timelineItemSchema),
    pageSize: z.number().int(),
    nextCursor: z.string().nullable().describe('pass as ?cursor= for the next page; null after the last'),
  })
  .meta({ id: 'Timeline' });

const query = tenantQuery.extend({
  pageSize: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional().describe('nextCursor of the previous page'),
  includeDeleted: includeDeletedParam.describe('admins: the timeline of a soft-deleted record'),
});

export const timelineRoutes: FastifyPluginCallbackZod = (app, _opts, done) => {
  for (const type of RELATED_TYPES) {
    const table = RELATED_TABLES[type];
    const name = `${type.charAt(0).toUpperCase()}${type.slice(1)}`;
    const readRecord = `${table}:read`;
    if (!isPermission(readRecord)) throw new Error(`no permission ${readRecord} for the ${type} timeline: add it to crm/permissions.ts`);
    app.get(
      `/${table}/:id/timeline`,
      {
        schema: {
          operationId: `get${name}Timeline`,
          tags: ['timeline'],
          security: [{ tenantBearer: [] }],
          summary: `Notes, tasks, activity and attachments of a ${type}, newest first`,
          params: idParams,
          querystring: query,
          response: withProblems({ 200: timelineSchema }),
        },
        // Reading a record's timeline is reading the record (companies:read, ...).
        onRequest: app.requirePermission(readRecord),
      },
      async (request) => {
        const q = request.query;
        const r = await timeline(await app.tenantKnex(request), type, request.params.id, {
          pageSize: q.pageSize,
          cursor: q.cursor,
          includeDeleted: checkIncludeDeleted(request, q.includeDeleted),
        });
        return { ...r, pageSize: q.pageSize };
      },
    );
  }
  done();
};
