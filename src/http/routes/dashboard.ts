/**
 * `GET /platform/dashboard`: the support dashboard, one self-contained HTML page (inline
 * CSS and script, no build step, nothing from a CDN; see `../dashboard/`). The page holds
 * no data, so it loads without auth; it signs in against `/platform/v1/auth/login` and
 * reads `/platform/v1/history*` with the platform token. Its inline style and script run
 * under a per-response CSP nonce; it may connect to this origin only. Not in OpenAPI.
 */
import type { FastifyPluginCallback } from 'fastify';
import { randomBytes } from 'node:crypto';
import { dashboardPage } from '../dashboard/page.js';

/** The page's Content-Security-Policy: nothing but the nonced inline style/script and same-origin fetches. */
export function dashboardCsp(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Mounted under `/platform`. */
export const dashboardRoutes: FastifyPluginCallback = (app, _opts, done) => {
  app.get('/dashboard', { schema: { hide: true } }, async (_request, reply) => {
    const nonce = randomBytes(16).toString('base64');
    return reply
      .header('content-security-policy', dashboardCsp(nonce))
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-store')
      .type('text/html; charset=utf-8')
      .send(dashboardPage(nonce));
  });
  done();
};
