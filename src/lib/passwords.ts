/**
 * Password hashing with argon2id (RFC 9106), through `@node-rs/argon2` (the Rust
 * implementation), with the parameters the OWASP Password Storage Cheat Sheet gives as its
 * first choice for argon2id: m = 19 MiB, t = 2, p = 1. Stored hashes carry their parameters
 * (PHC string format), so hashes made earlier, with other parameters or by the `argon2`
 * package this module used before, still verify (`test/passwords.test.ts`).
 *
 * Why not the `argon2` package (C reference implementation): each of libuv's worker threads
 * kept its 19 MiB working buffer resident after a hash (glibc's per-thread arenas do not give
 * it back), so the API's RSS grew by ~76 MB once four threads had hashed; `@node-rs/argon2`
 * frees it (RSS +2 MB over 40 hashes instead of +78 MB, measured in issue 14), and hashes in
 * ~45 ms instead of ~70-90 ms here.
 */
import { randomBytes } from 'node:crypto';
import { hash, verify, type Algorithm } from '@node-rs/argon2';
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
export const ARGON2_OPTIONS = {
  // Algorithm.Argon2id (a const enum, which isolated modules cannot read from a declaration file).
  algorithm: 2 as Algorithm,
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
} as const;

/** Verifications run so far in this process (tests count them: one per sign-in, known account or not). */
export const passwordStats = { verifications: 0 };

/** argon2id hash in PHC string format (`$argon2id$v=19$...`). */
export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2_OPTIONS);
}

/** True when `password` matches `stored` (a PHC string); false on mismatch or a malformed hash. */
export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  passwordStats.verifications++;
  try {
    return await verify(stored, password);
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
