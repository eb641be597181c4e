/**
 * zod helpers shared by services, the API and the CLI.
 */
import { z } from 'zod';
import { ValidationError } from './errors.js';

/**
 * Parses `value` with `schema`.
 * @throws ValidationError (`VALIDATION_FAILED`) listing every failing field as `{ path, message }`
 */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const fields = r.error.issues.map((i) => ({ path: i.path.join('.') || '(root)', message: i.message }));
  const first = fields[0]!;
  throw new ValidationError(`${first.path}: ${first.message}`, { fields });
}

/** An email address (WHATWG-style check by zod), trimmed and lower-cased, at most 254 characters (RFC 5321 §4.5.3.1.3). */
export const emailSchema = z
  .string()
  .trim()
  .max(254)
  .pipe(z.email({ message: 'must be an email address' }))
  .transform((s) => s.toLowerCase());

/**
 * A DNS host name for a custom domain (RFC 1123 §2.1 labels, RFC 1035 §2.3.4 lengths):
 * lower-cased, at least two labels, each 1-63 of `[a-z0-9-]` not starting or ending with `-`.
 */
export const domainSchema = z
  .string()
  .trim()
  .toLowerCase()
  .max(253)
  .regex(/^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a DNS host name such as crm.example.com');

/** A UTF-16 surrogate that is not half of a pair. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * The path (`body.name`, `body.items.0`) of the first string in `value`, key or value, that
 * is not well-formed Unicode: JSON text can carry a lone surrogate (`"\ud800"`), but UTF-8
 * cannot, so utf8mb4 would store it as U+FFFD. I-JSON (RFC 7493 §2.1) forbids such strings.
 * @returns undefined when every string is well-formed
 */
export function illFormedStringPath(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return LONE_SURROGATE.test(value) ? path : undefined;
  if (value === null || typeof value !== 'object') return undefined;
  for (const [k, v] of Object.entries(value)) {
    const at = `${path}.${k}`;
    if (LONE_SURROGATE.test(k)) return at;
    const found = illFormedStringPath(v, at);
    if (found !== undefined) return found;
  }
  return undefined;
}
