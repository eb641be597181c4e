/**
 * Password hashing with argon2id (RFC 9106), through the `argon2` package with its
 * defaults (m = 64 MiB, t = 3, p = 4).
 */
import argon2 from 'argon2';
import { ValidationError } from './errors.js';

/** Minimum length of a password chosen by a person (NIST SP 800-63B §3.1.1.2 asks for at least 8; we ask 12). */
export const MIN_PASSWORD_LENGTH = 12;
/** Maximum accepted length, in characters (bounds hashing cost). */
export const MAX_PASSWORD_LENGTH = 256;

/**
 * Checks a chosen password's length.
 * @throws ValidationError `WEAK_PASSWORD`
 */
export function assertAcceptablePassword(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH || password.length > MAX_PASSWORD_LENGTH) {
    throw new ValidationError(`password must be ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters long`, { field: 'password' }, 'WEAK_PASSWORD');
  }
}

/** argon2id hash in PHC string format (`$argon2id$v=19$...`). */
export function hashPassword(password: string): Promise<string> {
  return argon2.hash(password, { type: argon2.argon2id });
}

/** True when `password` matches `hash`; false on mismatch or a malformed hash. */
export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, password);
  } catch {
    return false;
  }
}
