/**
 * One-time tokens of links in mails (invitations, password resets): 32 random bytes in
 * base64url (43 characters), stored as their SHA-256 in hex. A token this long cannot be
 * found by guessing, so a fast hash suffices (a password needs argon2 because people pick
 * guessable ones); the hash makes a database read useless for signing in.
 */
import { createHash, randomBytes } from 'node:crypto';

/** SHA-256 (hex, 64 characters) of a token, as stored. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** A new token and its hash. */
export function newToken(): { token: string; hash: string } {
  const token = randomBytes(32).toString('base64url');
  return { token, hash: hashToken(token) };
}

/** Whether a value can be a token of {@link newToken} (anything else is refused without a query). */
export function looksLikeToken(value: string): boolean {
  return /^[A-Za-z0-9_-]{43}$/.test(value);
}
