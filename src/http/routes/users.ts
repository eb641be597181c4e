/** `/api/v1/users`: users with `users:read` list and get the tenant's users; with `users:manage` they change them. */
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import type { FastifyRequest } from 'fastify';
import type { SiloContext } from '../../context.js';
import { createUserBody, createUsersService, updateUserBody } from '../../crm/users-service.js';
import { recordTokenVersionChange } from '../../provisioning/token-service.js';
import { idParams } from '../crm-helpers.js';
import { page, paginationQuery, problemSchema, userSchema, withProblems } from '../schemas.js';

/** Options: the context, to record token-version changes in the catalog (every API process then re-checks older tokens). */
export const usersRoutes: FastifyPluginCallbackZod<{ ctx: SiloContext }> = (app, { ctx }, done) => {
  const tags = ['users'];
  /** The users service of the request's tenant, acting as the signed-in admin. */
  const users = async (request: FastifyRequest) =>
    createUsersService(
      await app.tenantKnex(request),
      Number(request.tenantUser!.sub),
      { afterTokenVersionChange: () => recordTokenVersionChange(ctx, request.tenant!) },
      (await app.tenantLimits(request)).maxUsers,
    );
  const security = [{ tenantBearer: [] }];
  const readUsers = app.requirePermission('users:read');
  const manageUsers = app.requirePermission('users:manage');

  app.get(
    '/users',
    {
      schema: { operationId: 'listUsers', tags, security, querystring: paginationQuery, response: withProblems({ 200: page(userSchema) }) },
      onRequest: readUsers,
    },
    async (request) => {
      const { page: p, pageSize } = request.query;
      const r = await (await users(request)).list(p, pageSize);
      return { ...r, page: p, pageSize };
    },
  );

  app.post(
    '/users',
    {
      schema: { operationId: 'createUser', tags, security, body: createUserBody, response: withProblems({ 201: userSchema, 409: problemSchema }) },
      onRequest: manageUsers,
    },
    async (request, reply) => reply.code(201).send(await (await users(request)).create(request.body)),
  );

  app.get(
    '/users/:id',
    {
      schema: { operationId: 'getUser', tags, security, params: idParams, response: withProblems({ 200: userSchema }) },
      onRequest: readUsers,
    },
    async (request) => (await users(request)).get(request.params.id),
  );

  app.patch(
    '/users/:id',
    {
      schema: {
        operationId: 'updateUser',
        tags,
        security,
        params: idParams,
        body: updateUserBody,
        response: withProblems({ 200: userSchema, 409: problemSchema }),
      },
      onRequest: manageUsers,
    },
    async (request) => (await users(request)).update(request.params.id, request.body),
  );

  app.delete(
    '/users/:id',
    {
      schema: {
        operationId: 'deactivateUser',
        tags,
        security,
        summary: 'Deactivate a user (its sessions are revoked)',
        params: idParams,
        response: withProblems({ 200: userSchema, 409: problemSchema }),
      },
      onRequest: manageUsers,
    },
    async (request) => (await users(request)).deactivate(request.params.id),
  );
  done();
};
