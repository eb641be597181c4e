/**
 * Byte sizes as people write them: `10MB`, `1.5 GiB`, `512k`, `1048576`. SI units are
 * powers of 1000 (`kB`/`K`, `MB`/`M`, `GB`/`G`, `TB`/`T`), IEC units powers of 1024
 * (`KiB`, `MiB`, `GiB`, `TiB`), as IEC 80000-13 defines them; case does not matter; no
 * unit (or `B`) is bytes.
 */

/** Largest byte limit Silo takes: 1 PiB, a safe integer (BIGINT UNSIGNED in the catalog). */
export const MAX_BYTES = 2 ** 50;

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/**
 * Parses a byte size.
 * @returns the number of bytes (a safe integer)
 * @throws Error with a message for people when it is not a size or not a whole number of bytes
 */
export function parseByteSize(value: string): number {
  const m = /^\s*(\d{1,15}(?:\.\d{1,6})?)\s*([a-z]{0,3})\s*$/i.exec(value);
  const factor = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || factor === undefined) throw new Error(`not a size: ${JSON.stringify(value)} (e.g. 10MB, 1GiB, 5000000)`);
  const bytes = Number(m[1]) * factor;
  // Decimal fractions in binary floating point: 1.1 kB is 1100.0000000000002.
  const rounded = Math.round(bytes);
  if (Math.abs(bytes - rounded) > 1e-6 + bytes * 1e-12 || !Number.isSafeInteger(rounded))
    throw new Error(`not a whole number of bytes: ${JSON.stringify(value)}`);
  return rounded;
}
