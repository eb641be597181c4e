/**
 * `/api/v1/roles`: users with `users:read` list and get the tenant's roles; with
 * `roles:manage` they create, change and delete custom roles. A write drops this process's
 * cached permissions of the tenant at once; other API processes read them again within one
 * change-poll interval.
 */
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { permissionsMarkdown, PERMISSION_NAMES } from '../../crm/permissions.js';
import { createRoleBody, createRolesService, updateRoleBody } from '../../crm/roles.js';
import { idParams, ifMatchVersion } from '../crm-helpers.js';
import { page, paginationQuery, problemSchema, tenantQuery, withProblems } from '../schemas.js';

/** A role as the API shows it. */
export const roleSchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    description: z.string().nullable(),
    permissions: z.array(z.enum(PERMISSION_NAMES as [string, ...string[]])),
    builtIn: z.boolean().describe('admin, manager and staff: seeded, fixed, never deleted'),
    version: z.number().int(),
    createdAt: z.date(),
    updatedAt: z.date(),
  })
  .meta({ id: 'Role' });

/** `/api/v1/roles` routes. */
export const rolesRoutes: FastifyPluginCallbackZod = (app, _opts, done) => {
  const tags = ['roles'];
  const security = [{ tenantBearer: [] }];
  const readRoles = app.requirePermission('users:read');
  const manageRoles = app.requirePermission('roles:manage');
  const svc = async (request: FastifyRequest) => {
    const tenantId = request.tenant!.id;
    return createRolesService(await app.tenantKnex(request), Number(request.tenantUser!.sub), {
      afterChange: () => app.rolePermissions.invalidate(tenantId),
    });
  };
  const permissionsDoc = permissionsMarkdown();

  app.get(
    '/roles',
    {
      schema: {
        operationId: 'listRoles',
        tags,
        security,
        summary: 'Roles (built-ins first) with their permissions',
        description: permissionsDoc,
        querystring: paginationQuery,
        response: withProblems({ 200: page(roleSchema) }),
      },
      onRequest: readRoles,
    },
    async (request) => {
      const q = request.query;
      const r = await (await svc(request)).list(q.page, q.pageSize);
      return { ...r, page: q.page, pageSize: q.pageSize };
    },
  );

  app.post(
    '/roles',
    {
      schema: {
        operationId: 'createRole',
        tags,
        security,
        summary: 'Create a custom role (400 VALIDATION_FAILED listing unknown permissions; 409 ROLE_EXISTS)',
        description: permissionsDoc,
        body: createRoleBody,
        response: withProblems({ 201: roleSchema, 409: problemSchema }),
      },
      onRequest: manageRoles,
    },
    async (request, reply) => reply.code(201).send(await (await svc(request)).create(request.body)),
  );

  app.get(
    '/roles/:id',
    {
      schema: { operationId: 'getRole', tags, security, params: idParams, querystring: tenantQuery, response: withProblems({ 200: roleSchema }) },
      onRequest: readRoles,
    },
    async (request) => (await svc(request)).get(request.params.id),
  );

  app.patch(
    '/roles/:id',
    {
      schema: {
        operationId: 'updateRole',
        tags,
        security,
        summary: "Change a custom role's description or permissions (If-Match or body version; 409 ROLE_BUILT_IN, VERSION_CONFLICT, LAST_ADMIN)",
        description: `Takes effect for the role's users within one change-poll interval in every API process, without new tokens.\n\n${permissionsDoc}`,
        params: idParams,
        querystring: tenantQuery,
        body: updateRoleBody,
        response: withProblems({ 200: roleSchema, 409: problemSchema, 428: problemSchema }),
      },
      onRequest: manageRoles,
    },
    async (request) => (await svc(request)).update(request.params.id, request.body, ifMatchVersion(request)),
  );

  app.delete(
    '/roles/:id',
    {
      schema: {
        operationId: 'deleteRole',
        tags,
        security,
        summary: 'Delete a custom role no user holds (409 ROLE_BUILT_IN, ROLE_IN_USE)',
        params: idParams,
        querystring: tenantQuery,
        response: withProblems({ 204: z.null(), 409: problemSchema }),
      },
      onRequest: manageRoles,
    },
    async (request, reply) => {
      await (await svc(request)).remove(request.params.id);
      return reply.code(204).send(null);
    },
  );
  done();
};
