/**
 * The signup's verification mail: a link to `GET /platform/v1/signup/verify?token=...`
 * under `SILO_PUBLIC_URL`, sent through `ctx.mailer` (SMTP, or the log without
 * `SILO_SMTP_URL`: the demo prints it that way).
 */
import type { Tenant } from '../catalog/index.js';
import type { SiloContext } from '../context.js';
import { publicLink } from '../mail/links.js';
import { signupVerificationMail } from '../mail/templates.js';

/** The verification link of a signup token. */
export function verificationLink(ctx: Pick<SiloContext, 'config'>, token: string): string {
  return publicLink(ctx.config, '/platform/v1/signup/verify', { token });
}

/**
 * Sends the admin of a new signup tenant the link that verifies its email. A failure to
 * send is logged (without the link), never thrown: the signup stands, its tenant is
 * merely unverified (and deleted after `SILO_SIGNUP_VERIFY_TTL_HOURS` if it stays so).
 */
export async function sendVerificationMail(ctx: SiloContext, tenant: Tenant, token: string): Promise<void> {
  if (!tenant.adminEmail) return;
  try {
    await ctx.mailer.send(
      signupVerificationMail({
        to: tenant.adminEmail,
        tenantName: tenant.name,
        slug: tenant.slug,
        link: verificationLink(ctx, token),
        ttlHours: ctx.config.signup.verifyTtlHours,
      }),
    );
  } catch (err) {
    ctx.log.warn({ err, tenant: tenant.slug }, 'the signup verification mail could not be sent');
  }
}
