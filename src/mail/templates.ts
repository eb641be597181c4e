/**
 * The texts of Silo's mails, as {@link MailMessage}s: plain text with the link on a line
 * of its own, and the same in minimal HTML (every interpolated value escaped).
 */
import type { MailMessage } from './mailer.js';

/** `&`, `<`, `>`, `"` and `'` as HTML character references. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A name as it may stand in a subject line: one line, at most 100 characters. */
const oneLine = (s: string) => s.replace(/[\r\n\t]+/g, ' ').slice(0, 100);

/**
 * The invitation mail.
 * @param opts.tenantName the tenant's display name; `role` the invited role; `link` the accept link; `expiresAt` its end
 */
export function invitationMail(opts: { to: string; tenantName: string; role: string; link: string; expiresAt: Date }): MailMessage {
  const name = oneLine(opts.tenantName);
  const until = opts.expiresAt.toISOString().replace('T', ' ').slice(0, 16);
  return {
    to: opts.to,
    subject: `You are invited to ${name}`,
    text: [
      `You are invited to join ${name} as ${opts.role}.`,
      '',
      'Choose your password here (the link works once, until ' + until + ' UTC):',
      opts.link,
      '',
      'If you did not expect this invitation, ignore this mail.',
    ].join('\n'),
    html:
      `<p>You are invited to join ${escapeHtml(name)} as ${escapeHtml(opts.role)}.</p>` +
      `<p><a href="${escapeHtml(opts.link)}">Choose your password</a> (the link works once, until ${until} UTC).</p>` +
      '<p>If you did not expect this invitation, ignore this mail.</p>',
  };
}

/** The password reset mail. */
export function passwordResetMail(opts: { to: string; tenantName: string; link: string }): MailMessage {
  const name = oneLine(opts.tenantName);
  return {
    to: opts.to,
    subject: `Reset your ${name} password`,
    text: [
      `Someone asked to reset the password of ${opts.to} at ${name}.`,
      '',
      'Choose a new password here (the link works once, for one hour):',
      opts.link,
      '',
      'If it was not you, ignore this mail: your password stays as it is.',
    ].join('\n'),
    html:
      `<p>Someone asked to reset the password of ${escapeHtml(opts.to)} at ${escapeHtml(name)}.</p>` +
      `<p><a href="${escapeHtml(opts.link)}">Choose a new password</a> (the link works once, for one hour).</p>` +
      '<p>If it was not you, ignore this mail: your password stays as it is.</p>',
  };
}

/** The mail that verifies a signup's admin email. */
export function signupVerificationMail(opts: { to: string; tenantName: string; slug: string; link: string; ttlHours: number }): MailMessage {
  const name = oneLine(opts.tenantName);
  return {
    to: opts.to,
    subject: `Verify your email for ${name}`,
    text: [
      `Welcome to ${name} (${opts.slug}).`,
      '',
      `Verify your email address here; until then you cannot invite anyone, and the tenant is deleted after ${opts.ttlHours} hours:`,
      opts.link,
      '',
      'If you did not sign up, ignore this mail.',
    ].join('\n'),
    html:
      `<p>Welcome to ${escapeHtml(name)} (${escapeHtml(opts.slug)}).</p>` +
      `<p><a href="${escapeHtml(opts.link)}">Verify your email address</a>; until then you cannot invite anyone, and the tenant is deleted after ${opts.ttlHours} hours.</p>` +
      '<p>If you did not sign up, ignore this mail.</p>',
  };
}
