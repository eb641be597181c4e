/**
 * One delivery attempt: POST the event's JSON body to the webhook's URL, signed as Stripe
 * signs (`Silo-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with
 * the webhook's secret>`), with `Silo-Event-Id`. The host is resolved and every address
 * checked (src/webhooks/url-guard.ts) and the socket connects to the checked address (the
 * request's `lookup` answers with it), so DNS rebinding cannot move the request inside.
 * Redirects are not followed (a 3xx is a failure); the whole attempt has a time limit.
 * Only 2xx is success. The answer's body is read (at most 64 KiB) and dropped.
 */
import { createHmac } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { resolveTarget, WebhookTargetError, type Resolver } from './url-guard.js';

/** What an attempt did. `error` is a short sentence without secrets (null on success). */
export interface AttemptResult {
  ok: boolean;
  statusCode: number | null;
  error: string | null;
  latencyMs: number;
}

/** Options of {@link deliver}. */
export interface DeliverOptions {
  url: string;
  secret: string;
  eventId: string;
  body: string;
  timeoutMs: number;
  allowPrivate: boolean;
  resolver?: Resolver;
  /** The signing time, unix seconds (default now). */
  timestamp?: number;
}

/** `t=<t>,v1=<hex HMAC-SHA256("<t>.<body>")>`, the `Silo-Signature` header value. */
export function signature(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * Sends one attempt. Never throws: every failure (refused address, DNS, connection,
 * timeout, non-2xx, redirect) is an `ok: false` result with its reason.
 */
export async function deliver(o: DeliverOptions): Promise<AttemptResult> {
  const started = performance.now();
  const done = (ok: boolean, statusCode: number | null, error: string | null): AttemptResult => ({
    ok,
    statusCode,
    error,
    latencyMs: Math.round(performance.now() - started),
  });
  const url = new URL(o.url);
  let target: { address: string; family: 4 | 6 };
  try {
    target = await resolveTarget(url, { allowPrivate: o.allowPrivate, resolver: o.resolver });
  } catch (err) {
    return done(false, null, err instanceof WebhookTargetError ? `refused: ${err.message}` : 'refused: the host could not be checked');
  }
  const t = o.timestamp ?? Math.floor(Date.now() / 1000);
  // The socket connects to the address checked above, never to a second resolution.
  const pinned: LookupFunction = (_host, opts, cb) => {
    if ((opts as { all?: boolean }).all) (cb as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [target]);
    else cb(null, target.address, target.family);
  };
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<AttemptResult>((resolve) => {
    let settled = false;
    const finish = (r: AttemptResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const req = client.request(
      url,
      {
        method: 'POST',
        lookup: pinned,
        agent: false,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(o.body),
          'user-agent': 'Silo-Webhooks/1',
          'silo-event-id': o.eventId,
          'silo-signature': signature(o.secret, t, o.body),
        },
      },
      (res) => {
        const code = res.statusCode ?? 0;
        let read = 0;
        res.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_ANSWER_BYTES) res.destroy();
        });
        const end = () => {
          if (code >= 200 && code < 300) finish(done(true, code, null));
          else if (code >= 300 && code < 400) finish(done(false, code, `HTTP ${code}: redirects are not followed`));
          else finish(done(false, code, `HTTP ${code}`));
        };
        res.on('end', end);
        res.on('close', end);
        res.on('error', end);
      },
    );
    const timer = setTimeout(() => {
      finish(done(false, null, `no answer within ${o.timeoutMs} ms`));
      req.destroy();
    }, o.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => finish(done(false, null, `connection failed (${err.code ?? err.name})`)));
    req.end(o.body);
  });
}
