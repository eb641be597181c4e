/**
 * The signup's verification mail: a link to `GET /platform/v1/signup/verify?token=...`.
 */
import type { Tenant } from '../catalog/index.js';
import type { SiloContext } from '../context.js';

/** The verification link of a signup token. */
export function verificationLink(ctx: SiloContext, token: string): string {
  return `http://${ctx.config.host}:${ctx.config.port}/platform/v1/signup/verify?token=${encodeURIComponent(token)}`;
}

/**
 * Sends the admin of a new signup tenant the link that verifies its email. A failure to
 * send is logged, never thrown: the signup stands, and the link can be sent again.
 */
export function sendVerificationMail(ctx: SiloContext, tenant: Tenant, token: string): Promise<void> {
  return Promise.resolve().then(() =>
    ctx.log.info({ tenant: tenant.slug, to: tenant.adminEmail, link: verificationLink(ctx, token) }, 'signup verification link (mail not sent: no mailer)'),
  );
}
