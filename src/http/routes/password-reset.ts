/**
 * `/api/v1/auth/forgot-password` and `/api/v1/auth/reset-password` for tenant users.
 *
 * forgot-password answers 202 with one fixed body before it looks anything up: the
 * lookup, the token and the mail run after the answer was sent (its `onResponse`), so
 * neither the answer nor its timing depends on whether the email belongs to a user, nor
 * on the SMTP server. That work borrows its own tenant connection (released before the
 * mail is sent), never fails the request, and is awaited when the app closes. A user gets
 * at most {@link MAX_RESETS_PER_HOUR} reset mails an hour (counted in the tenant
 * database, so over every API process); requests are limited per tenant and client IP
 * like sign-in (`SILO_LOGIN_RATE_LIMIT`).
 *
 * reset-password sets the password once per token (1 hour), bumps the user's token
 * version, revokes its refresh tokens and records the change in the catalog
 * (`auth_version`), so that its older access tokens are refused by every API process.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import type {} from '@fastify/rate-limit';
import { z } from 'zod';
import type { Tenant } from '../../catalog/index.js';
import type { SiloContext } from '../../context.js';
import type { BackgroundTasks } from '../../lib/background.js';
import { createPasswordResetsService, forgotPasswordBody, MAX_RESETS_PER_HOUR, resetPasswordBody } from '../../crm/password-resets.js';
import { publicLink } from '../../mail/links.js';
import { passwordResetMail } from '../../mail/templates.js';
import { recordTokenVersionChange } from '../../provisioning/token-service.js';
import { problemSchema, withProblems } from '../schemas.js';

/** The one answer of forgot-password. */
const ACCEPTED = { status: 'accepted', detail: 'if an active user has this email, a reset link valid for one hour is on its way' } as const;
const acceptedSchema = z.object({ status: z.literal('accepted'), detail: z.string() }).meta({ id: 'ForgotPasswordAccepted' });

/**
 * Options: the context; where the work after the answer runs (awaited when the app closes);
 * requests per minute per tenant and IP of forgot-password and of reset-password.
 */
export const passwordResetRoutes: FastifyPluginCallbackZod<{
  ctx: SiloContext;
  background: BackgroundTasks;
  forgotRateLimit: number;
  resetRateLimit: number;
}> = (app, opts, done) => {
  const { ctx } = opts;
  const tags = ['auth'];

  /** Looks the email up, makes a token and mails it; logs what fails, throws nothing. */
  async function sendReset(tenant: Tenant, email: string, log: FastifyBaseLogger): Promise<void> {
    try {
      const lease = await app.tenantConnections.acquire(tenant);
      let made;
      try {
        made = await createPasswordResetsService(lease.knex).request(email);
      } finally {
        lease.release();
      }
      if (!made) {
        log.debug('password reset: nothing sent (no active user with this email, or its hourly limit reached)');
        return;
      }
      const link = publicLink(ctx.config, '/reset-password', { tenant: tenant.slug, token: made.token });
      await ctx.mailer.send(passwordResetMail({ to: made.user.email, tenantName: tenant.name, link }));
      log.info({ userId: made.user.id }, 'password reset mail sent');
    } catch (err) {
      log.warn({ err }, 'password reset mail not sent');
    }
  }

  app.post(
    '/auth/forgot-password',
    {
      schema: {
        operationId: 'forgotPassword',
        tags,
        summary: `Mail a password reset link (always 202, whether the email is a user's or not; at most ${MAX_RESETS_PER_HOUR} mails per user and hour)`,
        body: forgotPasswordBody,
        response: withProblems({ 202: acceptedSchema, 429: problemSchema }),
      },
      config: {
        rateLimit: { max: opts.forgotRateLimit, timeWindow: 60_000, hook: 'preHandler', keyGenerator: (req) => `forgot|${req.tenant?.id ?? '-'}|${req.ip}` },
      },
      // After the answer is sent: the lookup and the mail never delay it.
      onResponse: (request, reply, next) => {
        if (reply.statusCode === 202) opts.background.run(() => sendReset(request.tenant!, request.body.email, request.log));
        next();
      },
    },
    async (_request, reply) => reply.code(202).send(ACCEPTED),
  );

  app.post(
    '/auth/reset-password',
    {
      schema: {
        operationId: 'resetPassword',
        tags,
        summary: 'Set a new password with the token of a reset mail (once; signs the user out everywhere)',
        body: resetPasswordBody,
        response: withProblems({ 204: z.null(), 429: problemSchema }),
      },
      // Bounds guessing of reset tokens, per tenant and client IP (SILO_REFRESH_RATE_LIMIT a minute).
      config: {
        rateLimit: { max: opts.resetRateLimit, timeWindow: 60_000, hook: 'preHandler', keyGenerator: (req) => `reset|${req.tenant?.id ?? '-'}|${req.ip}` },
      },
    },
    async (request, reply) => {
      const tenant = request.tenant!;
      await createPasswordResetsService(await app.tenantKnex(request), {
        afterTokenVersionChange: () => recordTokenVersionChange(ctx, tenant),
      }).reset(request.body);
      return reply.code(204).send(null);
    },
  );
  done();
};
