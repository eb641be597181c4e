/**
 * `/platform/v1/signup`: self-service signup (no authentication; `SILO_SIGNUP_ENABLED`),
 * and the verification of the admin's email (`/platform/v1/signup/verify`). The service
 * is `src/signup/signup-service.ts`.
 */
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { SiloContext } from '../../context.js';
import { ForbiddenError } from '../../lib/errors.js';
import { signup, signupInput, verifySignup } from '../../signup/signup-service.js';
import { sendVerificationMail } from '../../signup/verification-mail.js';
import { ACCESS_TTL_S, type TenantClaims } from '../plugins/auth.js';
import { problemSchema, withProblems } from '../schemas.js';

const signupOut = z.object({
  tenant: z.object({ slug: z.string(), name: z.string(), status: z.string(), emailVerified: z.boolean() }),
  accessToken: z.string(),
  tokenType: z.literal('Bearer'),
  expiresIn: z.number().int().describe('seconds'),
  refreshToken: z.string(),
  refreshExpiresAt: z.date(),
});

/** Options: the context. */
export const signupRoutes: FastifyPluginCallbackZod<{ ctx: SiloContext }> = (app, { ctx }, done) => {
  const tags = ['signup'];
  const { signup: cfg } = ctx.config;
  const assertEnabled = (_req: unknown, _reply: unknown, next: (err?: Error) => void) => {
    next(cfg.enabled ? undefined : new ForbiddenError('self-service signup is not enabled on this platform (SILO_SIGNUP_ENABLED)', 'SIGNUP_DISABLED'));
  };

  app.post(
    '/signup',
    {
      schema: {
        operationId: 'signup',
        tags,
        summary:
          'Create a tenant and its first admin, signed in at once. The slug must be free (409 TENANT_EXISTS: taken or reserved); the password must be strong (zxcvbn score >= 3). The admin gets an email verification link.',
        body: signupInput,
        response: withProblems({ 201: signupOut, 409: problemSchema, 429: problemSchema, 503: problemSchema }, [400, 403]),
      },
      onRequest: assertEnabled,
      config: { rateLimit: { max: cfg.rateLimitPerHour, timeWindow: 3_600_000, keyGenerator: (req) => `signup|${req.ip}` } },
    },
    async (request, reply) => {
      const r = await signup(ctx, request.body, `signup:${request.ip}`);
      // After the answer: the signup does not wait on the SMTP server (the app waits for it at close).
      const { tenant, verifyToken } = r;
      app.background.run(() => sendVerificationMail(ctx, tenant, verifyToken));
      const claims: TenantClaims = {
        aud: 'tenant',
        sub: String(r.adminUserId),
        tid: r.tenant.id,
        role: 'admin',
        gen: r.tenant.generation,
        tv: r.adminTokenVersion,
        av: r.tenant.authVersion,
      };
      return reply.code(201).send({
        tenant: { slug: r.tenant.slug, name: r.tenant.name, status: r.tenant.status, emailVerified: r.tenant.unverifiedSince === null },
        accessToken: app.signAccessToken(claims),
        tokenType: 'Bearer' as const,
        expiresIn: ACCESS_TTL_S,
        refreshToken: r.refresh.token,
        refreshExpiresAt: r.refresh.expiresAt,
      });
    },
  );

  app.get(
    '/signup/verify',
    {
      schema: {
        operationId: 'verifySignup',
        tags,
        summary: "Verify a signup's admin email with the token of the link it was sent (one use)",
        querystring: z.strictObject({ token: z.string().min(1).max(200) }),
        response: withProblems({ 200: z.object({ tenant: z.object({ slug: z.string(), emailVerified: z.literal(true) }) }) }, [400, 404]),
      },
    },
    async (request) => {
      const tenant = await verifySignup(ctx, request.query.token);
      return { tenant: { slug: tenant.slug, emailVerified: true as const } };
    },
  );
  done();
};
