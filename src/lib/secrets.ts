/**
 * Secrets at rest and generated secrets.
 *
 * Encryption is AES-256-GCM (NIST SP 800-38D) with a random 96-bit IV per value; the
 * stored form is `v1.<iv>.<tag>.<ciphertext>`, each part base64url.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { SiloError } from './errors.js';

/**
 * Encrypts a UTF-8 string.
 * @param key 32-byte key (`Config.secretKey`)
 * @returns `v1.<iv>.<tag>.<ciphertext>` (base64url parts)
 */
export function encryptSecret(plain: string, key: Buffer): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return ['v1', iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
}

/**
 * Decrypts what {@link encryptSecret} produced.
 * @throws SiloError `SECRET_UNREADABLE` when the value is malformed or the key is not the one it was written with
 */
export function decryptSecret(stored: string, key: Buffer): string {
  const [version, iv, tag, ct] = stored.split('.');
  try {
    if (version !== 'v1' || !iv || !tag || ct === undefined) throw new Error('unknown format');
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
  } catch (cause) {
    throw new SiloError('cannot decrypt a stored secret: SILO_SECRET_KEY is not the key it was written with', {
      code: 'SECRET_UNREADABLE',
      status: 500,
      cause,
    });
  }
}

/** A random password of `bytes` random bytes, base64url (24 bytes -> 32 characters, ~192 bits). */
export function generatePassword(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}
