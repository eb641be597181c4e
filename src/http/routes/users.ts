/** `/api/v1/users`: tenant admins manage their tenant's users. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createUserBody, createUsersService, updateUserBody } from '../../crm/users-service.js';
import { page, paginationQuery, problemSchema, userSchema, withProblems } from '../schemas.js';

const idParams = z.strictObject({ id: z.coerce.number().int().positive().max(2 ** 53 - 1) });

export const usersRoutes: FastifyPluginAsyncZod = async (app) => {
  const tags = ['users'];
  const security = [{ tenantBearer: [] }];
  const admin = app.requireTenantUser(['admin']);

  app.get('/users', {
    schema: { operationId: 'listUsers', tags, security, querystring: paginationQuery, response: withProblems({ 200: page(userSchema) }) },
    onRequest: admin,
  }, async (request) => {
    const { page: p, pageSize } = request.query;
    const r = await createUsersService(await app.tenantKnex(request), Number(request.tenantUser!.sub)).list(p, pageSize);
    return { ...r, page: p, pageSize };
  });

  app.post('/users', {
    schema: { operationId: 'createUser', tags, security, body: createUserBody, response: withProblems({ 201: userSchema, 409: problemSchema }) },
    onRequest: admin,
  }, async (request, reply) => reply.code(201).send(await createUsersService(await app.tenantKnex(request), Number(request.tenantUser!.sub)).create(request.body)));

  app.get('/users/:id', {
    schema: { operationId: 'getUser', tags, security, params: idParams, response: withProblems({ 200: userSchema }) },
    onRequest: admin,
  }, async (request) => createUsersService(await app.tenantKnex(request), Number(request.tenantUser!.sub)).get(request.params.id));

  app.patch('/users/:id', {
    schema: { operationId: 'updateUser', tags, security, params: idParams, body: updateUserBody, response: withProblems({ 200: userSchema, 409: problemSchema }) },
    onRequest: admin,
  }, async (request) => createUsersService(await app.tenantKnex(request), Number(request.tenantUser!.sub)).update(request.params.id, request.body));

  app.delete('/users/:id', {
    schema: { operationId: 'deactivateUser', tags, security, summary: 'Deactivate a user (its sessions are revoked)', params: idParams, response: withProblems({ 200: userSchema, 409: problemSchema }) },
    onRequest: admin,
  }, async (request) => createUsersService(await app.tenantKnex(request), Number(request.tenantUser!.sub)).deactivate(request.params.id));
};
