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
 * The walk is iterative (an explicit stack, depth-first in document order), so no depth of
 * nesting can overflow the call stack.
 * @returns undefined when every string is well-formed
 */
export function illFormedStringPath(value: unknown, path: string): string | undefined {
  const stack: Array<[unknown, string]> = [[value, path]];
  while (stack.length > 0) {
    const [v, at] = stack.pop()!;
    if (typeof v === 'string') {
      if (LONE_SURROGATE.test(v)) return at;
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    const entries: Array<[string, unknown]> = Object.entries(v as Record<string, unknown>);
    // Pushed in reverse so that the first key is looked at first.
    for (let i = entries.length - 1; i >= 0; i--) {
      const [k, child] = entries[i]!;
      if (LONE_SURROGATE.test(k)) return `${at}.${k}`;
      stack.push([child, `${at}.${k}`]);
    }
  }
  return undefined;
}

/** Deepest nesting of objects and arrays a JSON request body may have (see {@link jsonDepthExceeds}). */
export const MAX_JSON_DEPTH = 64;

/**
 * Whether JSON text nests objects and arrays deeper than `max` levels, found by one pass
 * over the text (brackets inside strings, escaped quotes included, are not counted), before
 * anything is parsed. Malformed text is left to the parser.
 */
export function jsonDepthExceeds(text: string, max = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** Deepest row a page may start at: `(page - 1) x pageSize` at most 10,000 (deeper history: keyset, `cursor`). */
export const MAX_PAGE_OFFSET = 10_000;

/**
 * The row offset of a page (pages count from 1), bounded so that no list makes the
 * database read and discard more than {@link MAX_PAGE_OFFSET} rows.
 * @throws ValidationError `PAGE_TOO_DEEP` (400) past the bound
 */
export function pageOffset(page: number, pageSize: number): number {
  const offset = (page - 1) * pageSize;
  if (offset > MAX_PAGE_OFFSET) {
    throw new ValidationError(
      `pages may start at most ${MAX_PAGE_OFFSET.toLocaleString('en-US')} rows deep (page x pageSize); narrow the filter`,
      { field: 'page', maxOffset: MAX_PAGE_OFFSET },
      'PAGE_TOO_DEEP',
    );
  }
  return offset;
}
