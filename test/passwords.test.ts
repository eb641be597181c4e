/**
 * Password hashes: argon2id with the OWASP parameters, in PHC format; hashes stored before
 * the switch to `@node-rs/argon2` (made by the `argon2` package, with these parameters and with
 * that package's defaults, m = 64 MiB, t = 3, p = 4) still verify; a wrong password, an empty or
 * malformed hash answer false instead of throwing. Many concurrent hashes all verify.
 */
import t from 'tap';
import { hashPassword, passwordStats, verifyPassword, verifyPasswordOrDummy } from '../src/lib/passwords.js';

const PASSWORD = 'correct horse battery';
// Made with the `argon2` package 0.45 (the earlier implementation): OWASP parameters, then its defaults.
const LEGACY = [
  '$argon2id$v=19$m=19456,p=1,t=2$EvPBGo+nuwXNk3HTRNwS+g$d/u5nOKBUvggPhQzU8ezteVMmV/Gxp7i2gQ5eCGKEZs',
  '$argon2id$v=19$m=65536,p=4,t=3$6skJRViCwvXOtzVRmYC8uA$dJ3TDuvVJGSDFGu63P8BlzhL9ayZzUg0dbGDFi6w+8s',
];

t.test('a new hash is argon2id with m=19456, t=2, p=1 and verifies', async (t) => {
  const h = await hashPassword(PASSWORD);
  t.match(h, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
  t.equal(await verifyPassword(h, PASSWORD), true);
  t.equal(await verifyPassword(h, PASSWORD + 'x'), false);
});

t.test('hashes made by the argon2 package verify', async (t) => {
  for (const h of LEGACY) {
    t.equal(await verifyPassword(h, PASSWORD), true, h.slice(0, 32));
    t.equal(await verifyPassword(h, 'wrong password!'), false);
  }
});

t.test('malformed hashes answer false', async (t) => {
  for (const h of ['', 'not a hash', '$argon2id$v=19$m=19456,t=2,p=1$SECRETSALT$SECRETHASH', LEGACY[0]!.slice(0, -5)]) {
    t.equal(await verifyPassword(h, PASSWORD), false, JSON.stringify(h.slice(0, 40)));
  }
});

t.test('an unknown account costs one verification and never matches', async (t) => {
  const before = passwordStats.verifications;
  t.equal(await verifyPasswordOrDummy(undefined, PASSWORD), false);
  t.equal(passwordStats.verifications - before, 1);
});

t.test('16 concurrent hashes all verify', async (t) => {
  const pw = Array.from({ length: 16 }, (_, i) => `password number ${i}`);
  const hashes = await Promise.all(pw.map((p) => hashPassword(p)));
  t.same(
    await Promise.all(hashes.map((h, i) => verifyPassword(h, pw[i]!))),
    pw.map(() => true),
  );
});
