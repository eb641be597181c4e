/**
 * pino logger factory shared by the CLI and the server. Secrets are redacted by path
 * (pino `redact`), so passwords, tokens and keys never reach a log line; output is JSON,
 * pretty-printed only when the destination is a TTY.
 */
import { pino, type Logger, type LoggerOptions } from 'pino';

/** Paths pino censors in every log object (see pino docs, "Redaction"). */
export const REDACT_PATHS = [
  'password', '*.password', 'adminPassword', '*.adminPassword', 'newPassword', '*.newPassword',
  'token', '*.token', 'accessToken', '*.accessToken', 'refreshToken', '*.refreshToken',
  'secret', '*.secret', 'secretKey', '*.secretKey', 'key', 'connection.password', '*.connection.password',
  'req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie',
  'res.headers["set-cookie"]', 'dbPassword', '*.dbPassword', 'db_password_enc', '*.db_password_enc',
];

/** pino options for Silo: level, redaction, and pretty output on a TTY. */
export function loggerOptions(level: string, tty: boolean): LoggerOptions {
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    ...(tty ? { transport: { target: 'pino-pretty', options: { destination: 2, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}),
  };
}

/** A logger writing to stderr (fd 2): JSON, or pretty on a TTY. */
export function createLogger(level: string): Logger {
  const tty = Boolean(process.stderr.isTTY);
  const opts = loggerOptions(level, tty);
  return tty ? pino(opts) : pino(opts, pino.destination(2));
}
