/** Links in mails: absolute URLs under `SILO_PUBLIC_URL`. */
import type { Config } from '../config.js';

/**
 * An absolute link under the configured public URL: its path (a base with a path, such as
 * `https://example.com/crm`, keeps it) followed by `path`, with `query` percent-encoded.
 * @param path starts with `/`, e.g. `/accept-invitation`
 * @param query parameters in this order, e.g. `{ tenant: 'acme', token }`
 * @example publicLink(config, '/reset-password', { tenant: 'acme', token: 'abc' }) // 'http://localhost:3000/reset-password?tenant=acme&token=abc'
 */
export function publicLink(config: Pick<Config, 'publicUrl'>, path: string, query: Record<string, string> = {}): string {
  const url = new URL(config.publicUrl);
  url.pathname = url.pathname.replace(/\/+$/, '') + (path.startsWith('/') ? path : `/${path}`);
  url.search = new URLSearchParams(query).toString();
  return url.toString();
}
