/**
 * `/api/v1/invitations`: tenant admins invite people by email (a mail with a one-time
 * link), list and revoke pending invitations; the link's reader accepts (no token needed:
 * the tenant comes from the host or `X-Tenant`) and is signed in. A tenant whose signup
 * email is not verified yet (`tenants.unverified_since`) cannot invite: 403
 * `EMAIL_NOT_VERIFIED`. A mail that cannot be sent answers 503 `MAIL_UNAVAILABLE` and
 * leaves no invitation behind (see src/crm/invitations.ts).
 */
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import type {} from '@fastify/rate-limit';
import { z } from 'zod';
import type { SiloContext } from '../../context.js';
import { acceptInvitationBody, createInvitationBody, createInvitationsService } from '../../crm/invitations.js';
import { ForbiddenError } from '../../lib/errors.js';
import { publicLink } from '../../mail/links.js';
import { invitationMail } from '../../mail/templates.js';
import { ACCESS_TTL_S } from '../plugins/auth.js';
import { idParams } from '../crm-helpers.js';
import { page, paginationQuery, problemSchema, tokenPairSchema, withProblems } from '../schemas.js';

/** An invitation as the API shows it (never its token). */
export const invitationSchema = z
  .object({
    id: z.number().int(),
    email: z.string(),
    role: z.string().describe('the role the user gets: admin, manager, staff or a custom role'),
    invitedBy: z.number().int().nullable().describe('id of the admin who invited'),
    expiresAt: z.date(),
    createdAt: z.date(),
  })
  .meta({ id: 'Invitation' });

/** Options: the context (mailer, public URL), and accepts per minute per tenant and IP. */
export const invitationsRoutes: FastifyPluginCallbackZod<{ ctx: SiloContext; acceptRateLimit: number }> = (app, { ctx, acceptRateLimit }, done) => {
  const tags = ['invitations'];
  const security = [{ tenantBearer: [] }];
  const manageInvitations = app.requirePermission('invitations:manage');

  app.post(
    '/invitations',
    {
      schema: {
        operationId: 'createInvitation',
        tags,
        security,
        summary: 'Invite an email address with a role (mails a one-time link, valid 7 days; replaces its open invitation)',
        body: createInvitationBody,
        response: withProblems({ 201: invitationSchema, 409: problemSchema }),
      },
      onRequest: manageInvitations,
    },
    async (request, reply) => {
      const tenant = request.tenant!;
      if (tenant.unverifiedSince !== null) {
        throw new ForbiddenError('verify the signup email address first: until then no one can be invited', 'EMAIL_NOT_VERIFIED');
      }
      const service = createInvitationsService(await app.tenantKnex(request), Number(request.tenantUser!.sub));
      const invitation = await service.invite(request.body, async (inv, token) => {
        const link = publicLink(ctx.config, '/accept-invitation', { tenant: tenant.slug, token });
        try {
          await ctx.mailer.send(invitationMail({ to: inv.email, tenantName: tenant.name, role: inv.role, link, expiresAt: inv.expiresAt }));
        } catch (err) {
          request.log.warn({ err, invitationId: inv.id }, 'invitation mail not sent: invitation withdrawn');
          throw err;
        }
      });
      return reply.code(201).send(invitation);
    },
  );

  app.get(
    '/invitations',
    {
      schema: {
        operationId: 'listInvitations',
        tags,
        security,
        summary: 'Pending invitations (not accepted, revoked nor expired), newest first',
        querystring: paginationQuery,
        response: withProblems({ 200: page(invitationSchema) }),
      },
      onRequest: manageInvitations,
    },
    async (request) => {
      const { page: p, pageSize } = request.query;
      const r = await createInvitationsService(await app.tenantKnex(request)).list(p, pageSize);
      return { ...r, page: p, pageSize };
    },
  );

  app.delete(
    '/invitations/:id',
    {
      schema: {
        operationId: 'revokeInvitation',
        tags,
        security,
        summary: 'Revoke a pending invitation (its link stops working)',
        params: idParams,
        response: withProblems({ 204: z.null() }),
      },
      onRequest: manageInvitations,
    },
    async (request, reply) => {
      await createInvitationsService(await app.tenantKnex(request)).revoke(request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/invitations/accept',
    {
      schema: {
        operationId: 'acceptInvitation',
        tags,
        summary: 'Accept an invitation: creates the user with the invited role and signs it in',
        body: acceptInvitationBody,
        response: withProblems({ 201: tokenPairSchema, 409: problemSchema, 429: problemSchema }),
      },
      // Bounds guessing of invitation tokens, per tenant and client IP (SILO_REFRESH_RATE_LIMIT a minute).
      config: {
        rateLimit: { max: acceptRateLimit, timeWindow: 60_000, hook: 'preHandler', keyGenerator: (req) => `invite|${req.tenant?.id ?? '-'}|${req.ip}` },
      },
    },
    async (request, reply) => {
      const knex = await app.tenantKnex(request);
      const { user, tokenVersion, refresh } = await createInvitationsService(knex).accept(request.body, request.tenant!.generation);
      const accessToken = app.signTenantToken(request, user, tokenVersion);
      return reply
        .code(201)
        .send({ accessToken, tokenType: 'Bearer' as const, expiresIn: ACCESS_TTL_S, refreshToken: refresh.token, refreshExpiresAt: refresh.expiresAt });
    },
  );
  done();
};
