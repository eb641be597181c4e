/**
 * Outgoing mail: one {@link Mailer} per process, made by the context from the config.
 *
 * With `SILO_SMTP_URL` set, messages go through nodemailer's SMTP transport (pooled
 * connections; `smtps://` is TLS from the start, `smtp://` upgrades with STARTTLS when the
 * server offers it). nodemailer is loaded on the first message, so CLI commands that send
 * none never load it. A failed send throws {@link UnavailableError} `MAIL_UNAVAILABLE`
 * whose text names the SMTP error code and reply, never the URL's credentials (they are
 * cut out of whatever the server or nodemailer said), and has no `cause`.
 *
 * Without `SILO_SMTP_URL` nothing is sent: the message (to, subject, text: links included)
 * is written to the log at info, "mail not sent (SILO_SMTP_URL unset)", so a developer or
 * the demo can follow the link. That is the one place a one-time token reaches a log, on
 * purpose, and only while no SMTP server is configured (README, "Mail").
 */
import type { Logger } from 'pino';
import type { Transporter } from 'nodemailer';
import type SMTPPool from 'nodemailer/lib/smtp-pool/index.js';
import type { MailConfig } from '../config.js';
import { UnavailableError } from '../lib/errors.js';

/** One message: plain text (required: every client reads it), optional HTML alternative. */
export interface MailMessage {
  /** One recipient address. */
  to: string;
  /** One line; line breaks are not allowed (they are replaced by spaces). */
  subject: string;
  text: string;
  html?: string;
}

/** Sends mail. */
export interface Mailer {
  /**
   * Sends one message, from `SILO_MAIL_FROM`, resolving once the SMTP server accepted it
   * (or once it was logged, without SMTP).
   * @throws UnavailableError `MAIL_UNAVAILABLE` (retry after 30 s) when the server cannot be
   *         reached, refuses the login, the sender or the recipient, or times out
   */
  send(message: MailMessage): Promise<void>;
  /** Closes the pooled SMTP connections (sends after close open new ones). */
  close(): Promise<void>;
}

/** Longest wait for the TCP/TLS connection and for the server's greeting, ms. */
const CONNECT_TIMEOUT_MS = 10_000;
/** Longest silence of the server within a session, ms (nodemailer's default is 10 minutes). */
const SOCKET_TIMEOUT_MS = 30_000;
/** Seconds a client is told to wait after a failed send. */
const RETRY_AFTER_S = 30;

/** nodemailer's options for an `smtp://` / `smtps://` URL (credentials percent-decoded). */
export function smtpOptions(smtpUrl: string): SMTPPool.Options {
  const url = new URL(smtpUrl);
  const secure = url.protocol === 'smtps:';
  return {
    pool: true,
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port ? Number(url.port) : secure ? 465 : 587,
    secure,
    auth: url.username ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } : undefined,
    connectionTimeout: CONNECT_TIMEOUT_MS,
    greetingTimeout: CONNECT_TIMEOUT_MS,
    socketTimeout: SOCKET_TIMEOUT_MS,
    logger: false,
  };
}

/**
 * A function that replaces, in a text, each form the credentials of `smtpUrl` may take
 * there (as written in the URL, decoded, base64 as AUTH PLAIN and AUTH LOGIN send them) by
 * `[redacted]`.
 */
export function credentialScrubber(smtpUrl: string | undefined): (text: string) => string {
  const url = smtpUrl ? new URL(smtpUrl) : undefined;
  if (!url?.password) return (text) => text;
  const user = decodeURIComponent(url.username);
  const pass = decodeURIComponent(url.password);
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  const forms = [url.password, pass, encodeURIComponent(pass), b64(pass), b64(`\u0000${user}\u0000${pass}`), b64(`${user}\u0000${pass}`)]
    .filter((f) => f.length > 0)
    // Longest first, so that a form containing another is replaced whole.
    .sort((a, b) => b.length - a.length);
  return (text) => forms.reduce((out, f) => out.split(f).join('[redacted]'), text);
}

/** Why a send failed, in words that carry no secret: nodemailer's code, the SMTP reply code and the text. */
function failure(err: unknown, scrub: (text: string) => string): string {
  const e = err as { code?: unknown; responseCode?: unknown; message?: unknown };
  const parts = [typeof e.code === 'string' ? e.code : undefined, typeof e.responseCode === 'number' ? `SMTP ${e.responseCode}` : undefined];
  const message = typeof e.message === 'string' ? e.message : String(err);
  return `${parts.filter(Boolean).join(', ') || 'error'}: ${scrub(message).slice(0, 500)}`;
}

/** A mailer that writes each message to the log at info instead of sending it (no `SILO_SMTP_URL`). */
function loggingMailer(log: Logger): Mailer {
  return {
    send(message) {
      log.info({ mail: { to: message.to, subject: message.subject, text: message.text } }, 'mail not sent (SILO_SMTP_URL unset)');
      return Promise.resolve();
    },
    close: () => Promise.resolve(),
  };
}

/**
 * The mailer of a configuration: SMTP when `mail.smtpUrl` is set, else the log.
 * Nothing connects until the first message.
 * @param log where messages go without SMTP, and where send failures are not written (the caller decides)
 */
export function createMailer(mail: MailConfig, log: Logger): Mailer {
  const smtpUrl = mail.smtpUrl;
  if (!smtpUrl) return loggingMailer(log);
  const scrub = credentialScrubber(smtpUrl);
  let transport: Promise<Transporter> | undefined;
  const open = () =>
    (transport ??= import('nodemailer').then(({ default: nodemailer }) => nodemailer.createTransport(smtpOptions(smtpUrl), { from: mail.from })));
  return {
    async send(message) {
      try {
        const t = await open();
        await t.sendMail({
          to: message.to,
          subject: message.subject.replace(/[\r\n]+/g, ' '),
          text: message.text,
          ...(message.html === undefined ? {} : { html: message.html }),
        });
      } catch (err) {
        throw new UnavailableError(`mail to ${message.to} was not sent (${failure(err, scrub)})`, 'MAIL_UNAVAILABLE', RETRY_AFTER_S);
      }
    },
    async close() {
      const t = transport;
      transport = undefined;
      if (t) (await t).close();
    },
  };
}
