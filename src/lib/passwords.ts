/**
 * Password hashing with argon2id (RFC 9106), through the `argon2` package, with the
 * parameters the OWASP Password Storage Cheat Sheet gives as its first choice for
 * argon2id: m = 19 MiB, t = 2, p = 1. (The package default, m = 64 MiB, t = 3, p = 4, cost
 * ~200-300 ms of CPU per hash on this 2-core machine and dominated tenant provisioning and
 * logins; stored hashes carry their parameters, so older hashes still verify.)
 */
import { randomBytes } from 'node:crypto';
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

/** argon2id parameters: memory in KiB, passes, lanes (OWASP Password Storage Cheat Sheet, "Argon2id"). */
export const ARGON2_OPTIONS = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/** argon2id hash in PHC string format (`$argon2id$v=19$...`). */
export function hashPassword(password: string): Promise<string> {
  return argon2.hash(password, ARGON2_OPTIONS);
}

/** True when `password` matches `hash`; false on mismatch or a malformed hash. */
export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, password);
  } catch {
    return false;
  }
}

/** A hash of a random password, made once (lazily) with {@link ARGON2_OPTIONS}: what an unknown account is verified against. */
let dummyHash: Promise<string> | undefined;

/**
 * Verifies `password` against `hash`, or, when the account is unknown (`hash` undefined),
 * against a dummy hash made with the same parameters, so that a sign-in costs one argon2
 * verification either way and its timing does not tell whether the account exists (OWASP
 * Authentication Cheat Sheet, "Authentication and Error Messages").
 * @returns true only when `hash` is given and matches
 */
export async function verifyPasswordOrDummy(hash: string | undefined, password: string): Promise<boolean> {
  if (hash !== undefined) return verifyPassword(hash, password);
  await verifyPassword(await (dummyHash ??= hashPassword(randomBytes(16).toString('hex'))), password);
  return false;
}
