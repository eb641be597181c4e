/** `/api/v1/auth/*`: tenant sign-in, refresh-token rotation, logout, current user. */
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import type {} from '@fastify/rate-limit';
import { z } from 'zod';
import { createAuthService, refreshTokenGeneration } from '../../crm/auth-service.js';
import { createUsersService } from '../../crm/users-service.js';
import { ACCESS_TTL_S } from '../plugins/auth.js';
import { problemSchema, tokenPairSchema, userSchema, withProblems } from '../schemas.js';

const loginBody = z.strictObject({ email: z.string().min(1).max(254), password: z.string().min(1).max(256) });
const refreshBody = z.strictObject({ refreshToken: z.string().min(1).max(200) });

export const tenantAuthRoutes: FastifyPluginCallbackZod<{ loginRateLimit: number; refreshRateLimit: number }> = (app, opts, done) => {
  const tags = ['auth'];

  app.post(
    '/auth/login',
    {
      schema: {
        operationId: 'login',
        tags,
        summary: 'Sign in with email and password',
        body: loginBody,
        response: withProblems({ 200: tokenPairSchema, 429: problemSchema }),
      },
      config: {
        rateLimit: { max: opts.loginRateLimit, timeWindow: 60_000, hook: 'preHandler', keyGenerator: (req) => `${req.tenant?.id ?? '-'}|${req.ip}` },
      },
    },
    async (request) => {
      const knex = await app.tenantKnex(request);
      try {
        const { user, tokenVersion, refresh } = await createAuthService(knex, request.tenant!.generation).login(request.body.email, request.body.password);
        const accessToken = app.signTenantToken(request, user, tokenVersion);
        return { accessToken, tokenType: 'Bearer' as const, expiresIn: ACCESS_TTL_S, refreshToken: refresh.token, refreshExpiresAt: refresh.expiresAt };
      } catch (err) {
        request.log.info({ email: request.body.email }, 'failed login');
        throw err;
      }
    },
  );

  app.post(
    '/auth/refresh',
    {
      schema: {
        operationId: 'refreshToken',
        tags,
        summary: 'Rotate a refresh token (a reused token revokes its family)',
        body: refreshBody,
        response: withProblems({ 200: tokenPairSchema, 429: problemSchema }),
      },
      // Bounds guessing of refresh tokens, per tenant and client IP (SILO_REFRESH_RATE_LIMIT a minute).
      config: {
        rateLimit: { max: opts.refreshRateLimit, timeWindow: 60_000, hook: 'preHandler', keyGenerator: (req) => `refresh|${req.tenant?.id ?? '-'}|${req.ip}` },
      },
    },
    async (request) => {
      // A token of a newer generation than the cached tenant row re-reads the row; another one is 401 TOKEN_REVOKED.
      const tenant = await app.tenantForGeneration(request, refreshTokenGeneration(request.body.refreshToken));
      const knex = await app.tenantKnex(request);
      const { user, tokenVersion, refresh } = await createAuthService(knex, tenant.generation).refresh(request.body.refreshToken);
      const accessToken = app.signTenantToken(request, user, tokenVersion);
      return { accessToken, tokenType: 'Bearer' as const, expiresIn: ACCESS_TTL_S, refreshToken: refresh.token, refreshExpiresAt: refresh.expiresAt };
    },
  );

  app.post(
    '/auth/logout',
    {
      schema: { operationId: 'logout', tags, summary: 'Revoke a refresh token and its family', body: refreshBody, response: withProblems({ 204: z.null() }) },
    },
    async (request, reply) => {
      await createAuthService(await app.tenantKnex(request)).logout(request.body.refreshToken);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/auth/me',
    {
      schema: { operationId: 'me', tags, summary: 'The signed-in user', security: [{ tenantBearer: [] }], response: withProblems({ 200: userSchema }) },
      onRequest: app.requireTenantUser(),
    },
    async (request) => createUsersService(await app.tenantKnex(request)).get(Number(request.tenantUser!.sub)),
  );
  done();
};
