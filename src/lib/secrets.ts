/**
 * Secrets at rest and generated secrets.
 *
 * Encryption is AES-256-GCM (NIST SP 800-38D) with a random 96-bit IV per value. The
 * stored form is `v2.<key-id>.<iv>.<tag>.<ciphertext>` (each part base64url), where
 * `key-id` names the key that wrote it (8 characters of a SHA-256 of the key; it reveals
 * nothing usable about the key) and `v2.<key-id>` is authenticated as additional data.
 * The older form `v1.<iv>.<tag>.<ciphertext>` (no key id) is still read. A
 * {@link SecretKeyring} holds the current key and, while `silo secrets rotate` runs, the
 * previous one: it writes with the current key and reads with either.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { SiloError } from './errors.js';

/** The key id of a 32-byte key: base64url of the first 6 bytes of SHA-256("silo secret key id\0" || key). */
export function keyId(key: Buffer): string {
  return createHash('sha256').update('silo secret key id\0').update(key).digest().subarray(0, 6).toString('base64url');
}

/**
 * The keys secrets are written and read with. Methods throw the keyring's "no key" error
 * (a `ConfigError` naming `SILO_SECRET_KEY` when built by `loadConfig`) when no key is
 * available, so that commands which never touch a secret run without one.
 */
export interface SecretKeyring {
  /** True when a key is configured (or the development key is allowed). */
  readonly available: boolean;
  /** True when the key in use is the development key published in the repository. */
  readonly isDevelopmentKey: boolean;
  /** Key id of the current key (the second part of a `v2` value). @throws the "no key" error */
  readonly currentKeyId: string;
  /** True when a previous key (`SILO_SECRET_KEY_PREVIOUS`) is configured. */
  readonly hasPrevious: boolean;
  /** Encrypts a UTF-8 string with the current key. @returns the `v2` stored form @throws the "no key" error */
  encrypt(plain: string): string;
  /**
   * Decrypts a stored value (`v2` with the key its id names, `v1` with the current then the previous key).
   * @throws the "no key" error; SiloError `SECRET_UNREADABLE` when no configured key opens it
   */
  decrypt(stored: string): string;
  /** True when `stored` is a `v2` value written with the current key (nothing to rotate). */
  isCurrent(stored: string): boolean;
}

/**
 * Builds a keyring.
 * @param opts.current the 32-byte key secrets are written with (undefined: none available)
 * @param opts.previous a 32-byte key still accepted for reading
 * @param opts.missing makes the error thrown when a method needs the current key and there is none
 * @param opts.isDevelopmentKey marks the development key (for warnings)
 */
export function createKeyring(opts: { current?: Buffer; previous?: Buffer; missing?: () => Error; isDevelopmentKey?: boolean }): SecretKeyring {
  const missing = opts.missing ?? (() => new Error('no secret key configured'));
  const keys = new Map<string, Buffer>();
  const current = opts.current;
  const currentId = current ? keyId(current) : undefined;
  if (current) keys.set(currentId!, current);
  if (opts.previous && current && !keys.has(keyId(opts.previous))) keys.set(keyId(opts.previous), opts.previous);
  const need = (): Buffer => {
    if (!current) throw missing();
    return current;
  };
  return {
    available: Boolean(current),
    isDevelopmentKey: Boolean(current && opts.isDevelopmentKey),
    get currentKeyId() {
      need();
      return currentId!;
    },
    hasPrevious: keys.size > 1,
    encrypt(plain) {
      return seal(plain, need());
    },
    decrypt(stored) {
      need();
      return open(stored, keys);
    },
    isCurrent(stored) {
      need();
      const [version, id] = stored.split('.');
      return version === 'v2' && id === currentId;
    },
  };
}

function seal(plain: string, key: Buffer): string {
  const header = `v2.${keyId(key)}`;
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(header, 'utf8'));
  const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return [header, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
}

function unreadable(reason: string, cause?: unknown): SiloError {
  return new SiloError(`cannot decrypt a stored secret: ${reason}`, { code: 'SECRET_UNREADABLE', status: 500, cause });
}

function openWith(key: Buffer, iv: string, tag: string, ct: string, aad?: string): string {
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
  if (aad !== undefined) decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
}

function open(stored: string, keys: Map<string, Buffer>): string {
  const parts = stored.split('.');
  if (parts[0] === 'v2' && parts.length === 5) {
    const [, id, iv, tag, ct] = parts as [string, string, string, string, string];
    const key = keys.get(id);
    if (!key) throw unreadable(`it was written with key ${id}, which is neither SILO_SECRET_KEY nor SILO_SECRET_KEY_PREVIOUS`);
    try {
      return openWith(key, iv, tag, ct, `v2.${id}`);
    } catch (cause) {
      throw unreadable('the value is damaged (authentication failed)', cause);
    }
  }
  if (parts[0] === 'v1' && parts.length === 4) {
    const [, iv, tag, ct] = parts as [string, string, string, string];
    let last: unknown;
    for (const key of keys.values()) {
      try {
        return openWith(key, iv, tag, ct);
      } catch (cause) {
        last = cause;
      }
    }
    throw unreadable('SILO_SECRET_KEY (and SILO_SECRET_KEY_PREVIOUS, if set) is not the key it was written with', last);
  }
  throw unreadable('unknown format');
}

/**
 * Encrypts a UTF-8 string.
 * @param key a keyring (`Config.secrets`) or a bare 32-byte key
 * @returns `v2.<key-id>.<iv>.<tag>.<ciphertext>` (base64url parts)
 */
export function encryptSecret(plain: string, key: SecretKeyring | Buffer): string {
  return Buffer.isBuffer(key) ? seal(plain, key) : key.encrypt(plain);
}

/**
 * Decrypts what {@link encryptSecret} produced (and the older `v1` form).
 * @param key a keyring (`Config.secrets`) or a bare 32-byte key
 * @throws SiloError `SECRET_UNREADABLE` when the value is malformed or no key opens it
 */
export function decryptSecret(stored: string, key: SecretKeyring | Buffer): string {
  return Buffer.isBuffer(key) ? open(stored, new Map([[keyId(key), key]])) : key.decrypt(stored);
}

/** A random password of `bytes` random bytes, base64url (24 bytes -> 32 characters, ~192 bits). */
export function generatePassword(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}
