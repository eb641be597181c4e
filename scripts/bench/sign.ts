/** Signs HS256 access tokens for load tests the way the API does (RFC 7519), without a login per tenant. */
import { createHmac } from 'node:crypto';

/** A function signing claims into a JWT with `secret` (15 min expiry). */
export function createSigner(secret: string) {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return (claims: Record<string, unknown>): string => {
    const now = Math.floor(Date.now() / 1000);
    const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ ...claims, iat: now, exp: now + 3600 })}`;
    return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
  };
}
