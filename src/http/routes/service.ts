/** Service endpoints: `GET /health` (process up) and `GET /ready` (catalog answers). */
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { SiloContext } from '../../context.js';
import { UnavailableError } from '../../lib/errors.js';
import { problemSchema } from '../schemas.js';

export const serviceRoutes: FastifyPluginCallbackZod<{ ctx: SiloContext }> = (app, { ctx }, done) => {
  app.get(
    '/health',
    {
      schema: { operationId: 'health', tags: ['service'], summary: 'The process is up', response: { 200: z.object({ status: z.literal('ok') }) } },
    },
    () => ({ status: 'ok' as const }),
  );

  app.get(
    '/ready',
    {
      schema: {
        operationId: 'ready',
        tags: ['service'],
        summary: 'The catalog answers',
        response: { 200: z.object({ status: z.literal('ready') }), 503: problemSchema },
      },
    },
    async () => {
      try {
        await ctx.catalog.knex.raw('SELECT 1');
      } catch (err) {
        throw new UnavailableError('the catalog is not reachable', 'CATALOG_UNAVAILABLE', 2, undefined, err);
      }
      return { status: 'ready' as const };
    },
  );
  done();
};
