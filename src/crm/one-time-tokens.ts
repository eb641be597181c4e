/**
 * One-time tokens of links in mails (invitations, password resets): 32 random bytes in
 * base64url (43 characters), stored as their SHA-256 in hex. A token this long cannot be
 * found by guessing, so a fast hash suffices (a password needs argon2 because people pick
 * guessable ones); the hash makes a database read useless for signing in.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Knex } from 'knex';

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

/**
 * The row of `table` whose `token_hash` is the token's (read FOR UPDATE when `trx` is
 * given), or undefined for a malformed or unknown token (a malformed one costs no query).
 */
export async function findByToken<Row extends object>(knex: Knex, table: string, token: string, trx?: Knex.Transaction): Promise<Row | undefined> {
  if (!looksLikeToken(token)) return undefined;
  const q = (trx ?? knex)(table).where('token_hash', hashToken(token));
  return await (trx ? q.forUpdate() : q).first<Row | undefined>();
}
