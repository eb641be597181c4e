/**
 * Where a webhook may point: an http(s) URL without credentials whose host is not, and
 * does not resolve to, a loopback, private (RFC 1918, fc00::/7), link-local (169.254/16,
 * fe80::/10), unspecified (0.0.0.0/8, ::) or otherwise non-public address (CGNAT 100.64/10,
 * multicast, broadcast). Checked when a webhook is created or changed, and again before
 * every delivery after DNS resolution: every resolved address is checked and the delivery
 * connects to the checked address, so a name that resolves to a public address when
 * checked and to a private one when connecting (DNS rebinding) cannot reach the inside.
 * `SILO_WEBHOOK_ALLOW_PRIVATE=1` lifts the address checks (tests, development).
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/** Resolves a host name to its addresses (default: the system resolver, as `dns.lookup` with `all`). */
export type Resolver = (hostname: string) => Promise<Array<{ address: string; family: number }>>;

/** The system resolver. */
export const systemResolver: Resolver = (hostname) => lookup(hostname, { all: true, verbatim: true });

const blocked = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  blocked.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  // ::/96 holds :: (unspecified), ::1 (loopback) and the deprecated IPv4-compatible addresses.
  ['::', 96],
  ['64:ff9b::', 96],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const)
  blocked.addSubnet(net, bits, 'ipv6');

/** True when `address` (an IP literal) is loopback, private, link-local, unspecified or otherwise not public. */
export function isForbiddenAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const family = isIP(bare);
  if (family === 4) return blocked.check(bare, 'ipv4');
  // BlockList checks an IPv4-mapped IPv6 address (::ffff:10.0.0.1, ::ffff:a00:1) against the IPv4 rules (Node docs, net.BlockList).
  if (family === 6) return blocked.check(bare, 'ipv6');
  return true;
}

/** Why a URL is refused (a sentence without secrets), or undefined when its form is acceptable. */
export function urlFormProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an absolute http(s) URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http(s) URL';
  if (url.username || url.password) return 'must not carry a user name or password';
  if (!url.hostname) return 'must name a host';
  return undefined;
}

/** The host of a URL as `isIP` and the resolver take it (IPv6 without brackets). */
export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '');
}

/**
 * Resolves the URL's host and checks every address.
 * @returns the address to connect to (the first one; an IP literal is itself)
 * @throws WebhookTargetError when an address is forbidden (unless `allowPrivate`) or the name does not resolve
 */
export async function resolveTarget(url: URL, opts: { allowPrivate: boolean; resolver?: Resolver }): Promise<{ address: string; family: 4 | 6 }> {
  const host = hostOf(url);
  const literal = isIP(host);
  let addresses: Array<{ address: string; family: number }>;
  if (literal) addresses = [{ address: host, family: literal }];
  else {
    try {
      addresses = await (opts.resolver ?? systemResolver)(host);
    } catch (err) {
      throw new WebhookTargetError(`the host does not resolve (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    if (!addresses.length) throw new WebhookTargetError('the host does not resolve');
  }
  if (!opts.allowPrivate) {
    const bad = addresses.find((a) => isForbiddenAddress(a.address));
    if (bad) throw new WebhookTargetError(`the host resolves to ${bad.address}, a loopback, private, link-local or unspecified address`);
  }
  const first = addresses[0]!;
  return { address: first.address, family: first.family === 6 ? 6 : 4 };
}

/** A webhook target that must not be reached; the message names the reason and no secret. */
export class WebhookTargetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookTargetError';
  }
}

/**
 * The check at create and update: the URL's form, then its host (an IP literal, `localhost`
 * and `*.localhost`, and what a name resolves to). A name that does not resolve now is
 * accepted: every delivery resolves and checks again.
 * @returns why the URL is refused, or undefined
 */
export async function targetProblem(value: string, opts: { allowPrivate: boolean; resolver?: Resolver }): Promise<string | undefined> {
  const form = urlFormProblem(value);
  if (form) return form;
  if (opts.allowPrivate) return undefined;
  const url = new URL(value);
  const host = hostOf(url).toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return 'must not point at localhost';
  try {
    await resolveTarget(url, opts);
  } catch (err) {
    if (err instanceof WebhookTargetError && !/does not resolve/.test(err.message)) return `must not point at a private address: ${err.message}`;
  }
  return undefined;
}
