/**
 * pino logger factory shared by the CLI and the server. Secrets are redacted by path
 * (pino `redact`) and in logged URLs (secret-looking query parameters), so passwords,
 * tokens and keys never reach a log line; output is JSON,
 * pretty-printed only when the destination is a TTY.
 */
import { pino, type Logger, type LoggerOptions } from 'pino';

/** Paths pino censors in every log object (see pino docs, "Redaction"). */
export const REDACT_PATHS = [
  'password',
  '*.password',
  'adminPassword',
  '*.adminPassword',
  'newPassword',
  '*.newPassword',
  'token',
  '*.token',
  'accessToken',
  '*.accessToken',
  'refreshToken',
  '*.refreshToken',
  'secret',
  '*.secret',
  'secretKey',
  '*.secretKey',
  'key',
  'connection.password',
  '*.connection.password',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  'res.headers["set-cookie"]',
  'dbPassword',
  '*.dbPassword',
  'db_password_enc',
  '*.db_password_enc',
];

/** Query parameters whose values are never logged nor stored (`?access_token=`, RFC 6750 §2.3; `?password=`, ...). */
const SECRET_PARAM = /pass|token|secret|key|auth|code|sig|session|cookie|credential/i;

/** The query string of a URL with secret-looking values replaced by `[redacted]` (null when none). */
export function redactQuery(url: string): string | null {
  const i = url.indexOf('?');
  if (i < 0 || i === url.length - 1) return null;
  const params = new URLSearchParams(url.slice(i + 1));
  const out = new URLSearchParams();
  for (const [k, v] of params) out.append(k, SECRET_PARAM.test(k) ? '[redacted]' : v);
  return out.toString();
}

/** A URL as it may be logged: unchanged unless a secret-looking query parameter is in it, whose value is then `[redacted]`. */
export function redactUrl(url: string): string {
  const i = url.indexOf('?');
  if (i < 0 || ![...new URLSearchParams(url.slice(i + 1)).keys()].some((k) => SECRET_PARAM.test(k))) return url;
  return `${url.slice(0, i)}?${redactQuery(url)}`;
}

/** What the request serializer reads of a Fastify request. */
interface LoggedRequest {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  headers?: Record<string, unknown>;
  socket?: { remotePort?: number };
}

/** pino options for Silo: level, redaction, and pretty output on a TTY. */
export function loggerOptions(level: string, tty: boolean): LoggerOptions {
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    // Fastify's request serializer (it takes this one over its own), with secret query values redacted.
    serializers: {
      req: (req: LoggedRequest) => ({
        method: req.method,
        url: typeof req.url === 'string' ? redactUrl(req.url) : req.url,
        version: req.headers?.['accept-version'],
        host: req.host,
        remoteAddress: req.ip,
        remotePort: req.socket?.remotePort,
      }),
    },
    ...(tty ? { transport: { target: 'pino-pretty', options: { destination: 2, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}),
  };
}

/** A logger writing to stderr (fd 2): JSON, or pretty on a TTY. */
export function createLogger(level: string): Logger {
  const tty = Boolean(process.stderr.isTTY);
  const opts = loggerOptions(level, tty);
  return tty ? pino(opts) : pino(opts, pino.destination(2));
}
