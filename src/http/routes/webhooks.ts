/**
 * `/api/v1/webhooks`: the tenant's outgoing webhooks (permission webhooks:manage), their delivery log and
 * redelivery. The secret is in the answers of create and rotate-secret only. After a
 * change the catalog's list of tenants with active webhooks is updated (what the
 * dispatcher's sweep visits); a failure there is logged, not answered (the change is
 * committed, and kicks after commits still deliver).
 */
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { WebhookDispatcher } from '../../webhooks/dispatcher.js';
import { webhookEventTypeSchema } from '../../webhooks/event-types.js';
import { createWebhookBody, createWebhooksService, updateWebhookBody } from '../../webhooks/service.js';
import { idParams, ifMatchVersion } from '../crm-helpers.js';
import { page, paginationQuery, problemSchema, withProblems } from '../schemas.js';

const date = z.date();
export const webhookSchema = z
  .object({
    id: z.number().int(),
    url: z.string(),
    events: z.array(webhookEventTypeSchema),
    active: z.boolean(),
    version: z.number().int(),
    createdAt: date,
    updatedAt: date,
  })
  .meta({ id: 'Webhook' });
const withSecret = webhookSchema
  .extend({ secret: z.string().describe('the signing secret: shown only in this answer (create, rotate-secret); keep it') })
  .meta({ id: 'WebhookWithSecret' });
const deliverySchema = z
  .object({
    id: z.number().int(),
    eventId: z.string().describe('the event id (body `id`, header Silo-Event-Id)'),
    eventType: z.string(),
    attempt: z.number().int().describe('1 for the first attempt'),
    status: z.enum(['pending', 'succeeded', 'retrying', 'failed']).describe('retrying: this attempt failed and the next one is scheduled; failed: given up'),
    statusCode: z.number().int().nullable(),
    error: z.string().nullable(),
    latencyMs: z.number().int().nullable(),
    scheduledAt: date,
    attemptedAt: date.nullable(),
  })
  .meta({ id: 'WebhookDelivery' });
const deliveryParams = z.strictObject({ id: idParams.shape.id, deliveryId: idParams.shape.id });

/** Options: the configuration (secrets, webhook settings) and the process's dispatcher. */
export const webhooksRoutes: FastifyPluginCallbackZod<{ config: Config; dispatcher: WebhookDispatcher }> = (app, opts, done) => {
  const tags = ['webhooks'];
  const security = [{ tenantBearer: [] }];
  const manage = app.requirePermission('webhooks:manage');
  const svc = async (request: FastifyRequest) =>
    createWebhooksService(await app.tenantKnex(request), {
      secrets: opts.config.secrets,
      allowPrivate: opts.config.webhooks.allowPrivate,
      retryWindowMs: opts.config.webhooks.retryWindowMs,
    });
  /** Updates the catalog's count of active webhooks and kicks the tenant's dispatch. */
  const changed = async (request: FastifyRequest, s: Awaited<ReturnType<typeof svc>>) => {
    const tenant = request.tenant!;
    try {
      await opts.dispatcher.noteActiveWebhooks(tenant.id, await s.activeCount());
    } catch (err) {
      request.log.warn({ err }, 'could not record the active webhooks in the catalog');
    }
    opts.dispatcher.kick(tenant);
  };

  app.get(
    '/webhooks',
    {
      schema: { operationId: 'listWebhooks', tags, security, querystring: paginationQuery, response: withProblems({ 200: page(webhookSchema) }) },
      onRequest: manage,
    },
    async (request) => {
      const q = request.query;
      return { ...(await (await svc(request)).list(q)), page: q.page, pageSize: q.pageSize };
    },
  );

  app.post(
    '/webhooks',
    {
      schema: {
        operationId: 'createWebhook',
        tags,
        security,
        summary: 'Create a webhook; the answer carries its signing secret, shown only this once',
        body: createWebhookBody,
        response: withProblems({ 201: withSecret }),
      },
      onRequest: manage,
    },
    async (request, reply) => {
      const s = await svc(request);
      const { webhook, secret } = await s.create(request.body);
      await changed(request, s);
      return reply.code(201).send({ ...webhook, secret });
    },
  );

  app.get(
    '/webhooks/:id',
    { schema: { operationId: 'getWebhook', tags, security, params: idParams, response: withProblems({ 200: webhookSchema }) }, onRequest: manage },
    async (request) => (await svc(request)).get(request.params.id),
  );

  app.patch(
    '/webhooks/:id',
    {
      schema: {
        operationId: 'updateWebhook',
        tags,
        security,
        params: idParams,
        body: updateWebhookBody,
        response: withProblems({ 200: webhookSchema, 409: problemSchema, 428: problemSchema }),
      },
      onRequest: manage,
    },
    async (request) => {
      const s = await svc(request);
      const webhook = await s.update(request.params.id, request.body, ifMatchVersion(request));
      await changed(request, s);
      return webhook;
    },
  );

  app.delete(
    '/webhooks/:id',
    {
      schema: {
        operationId: 'deleteWebhook',
        tags,
        security,
        summary: 'Delete a webhook and its delivery log',
        params: idParams,
        response: withProblems({ 204: z.null() }),
      },
      onRequest: manage,
    },
    async (request, reply) => {
      const s = await svc(request);
      await s.remove(request.params.id);
      await changed(request, s);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/webhooks/:id/rotate-secret',
    {
      schema: {
        operationId: 'rotateWebhookSecret',
        tags,
        security,
        summary: 'A new signing secret (the old one stops at once), shown only in this answer',
        params: idParams,
        response: withProblems({ 200: withSecret }),
      },
      onRequest: manage,
    },
    async (request) => {
      const { webhook, secret } = await (await svc(request)).rotateSecret(request.params.id);
      return { ...webhook, secret };
    },
  );

  app.get(
    '/webhooks/:id/deliveries',
    {
      schema: {
        operationId: 'listWebhookDeliveries',
        tags,
        security,
        summary: 'Delivery attempts of the webhook, newest first',
        params: idParams,
        querystring: paginationQuery,
        response: withProblems({ 200: page(deliverySchema) }),
      },
      onRequest: manage,
    },
    async (request) => {
      const q = request.query;
      return { ...(await (await svc(request)).deliveries(request.params.id, q)), page: q.page, pageSize: q.pageSize };
    },
  );

  app.post(
    '/webhooks/:id/deliveries/:deliveryId/redeliver',
    {
      schema: {
        operationId: 'redeliverWebhookDelivery',
        tags,
        security,
        summary: "A new attempt of the delivery's event, due now (202: sent in the background)",
        params: deliveryParams,
        response: withProblems({ 202: deliverySchema, 409: problemSchema }),
      },
      onRequest: manage,
    },
    async (request, reply) => {
      const delivery = await (await svc(request)).redeliver(request.params.id, request.params.deliveryId);
      opts.dispatcher.kick(request.tenant!);
      return reply.code(202).send(delivery);
    },
  );
  done();
};
