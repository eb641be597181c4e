/**
 * OpenAPI 3 document generated from the routes' zod schemas (`@fastify/swagger` with
 * fastify-type-provider-zod's transform), served at `GET /docs/json`, with Swagger UI
 * at `GET /docs`. Two bearer schemes: tenant and platform access tokens.
 */
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import fp from 'fastify-plugin';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { permissionsMarkdown } from '../../crm/permissions.js';

export default fp(
  async (app) => {
    await app.register(fastifySwagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'Silo API',
          version: '0.1.0',
          description:
            'Tenant-routed API (`/api/v1`, identify the tenant by subdomain, custom domain, `X-Tenant` or `?tenant=`) and platform API (`/platform/v1`). Errors are RFC 9457 problem+json.\n\n' +
            "Every tenant route needs one permission of the caller's role (403 FORBIDDEN otherwise); roles are managed under `/api/v1/roles`.\n\n" +
            permissionsMarkdown(),
        },
        components: {
          securitySchemes: {
            tenantBearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'tenant access token from POST /api/v1/auth/login' },
            platformBearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'platform access token from POST /platform/v1/auth/login' },
          },
        },
      },
      transform: jsonSchemaTransform,
      transformObject: jsonSchemaTransformObject,
    });
    await app.register(fastifySwaggerUi, { routePrefix: '/docs' });
  },
  { name: 'silo-docs' },
);
