/**
 * Reading an import file: strict UTF-8, RFC 4180 CSV (csv-parse), a header row whose
 * names are matched case-insensitively against a resource's columns, and the rows as
 * objects of API fields. What is wrong with the file as a whole is a 400 with its own
 * code; what is wrong with a row is an {@link ImportRowError} (the caller collects them).
 */
import { parse } from 'csv-parse/sync';
import { SiloError, ValidationError } from '../lib/errors.js';

/** Most data rows one import takes (one transaction). */
export const MAX_IMPORT_ROWS = 10_000;
/** Most row errors a report lists. */
export const MAX_REPORTED_ERRORS = 1_000;

/**
 * What is wrong with one row: `row` is the file's line number where the row ends (the
 * header is line 1; a row without line breaks in quoted cells is on that line).
 */
export interface ImportRowError {
  row: number;
  column?: string;
  code: string;
  detail: string;
}

/** Answer of an import (and of its dry run). */
export interface ImportResult {
  created: number;
  dryRun: boolean;
  errors: ImportRowError[];
}

/** The columns of a resource's file: header name (lower case) -> API field, and those read but ignored. */
export interface ImportColumns {
  fields: Record<string, string>;
  /** Header names (lower case) that are accepted and ignored: the export's id, timestamps, version. */
  ignored: readonly string[];
  /** Fields a file must have a column for. */
  required: readonly string[];
}

/** One data row: its line and its non-empty cells by API field (with the header name each came from). */
export interface ImportRow {
  row: number;
  values: Record<string, string>;
  /** API field -> the header as the file spells it (for reports). */
  headers: Record<string, string>;
}

/** The formula guard of the export (a `'` before `= + - @`, tab, CR) undone, so an export imports as it was. */
const ESCAPED_FORMULA = /^'(?=[=+\-@\t\r])/;

/**
 * Parses an import file into rows of API fields.
 * @throws ValidationError `CSV_NOT_UTF8`, `CSV_EMPTY`, `CSV_INVALID` (with `line`),
 *   `CSV_UNKNOWN_COLUMN`, `CSV_DUPLICATE_COLUMN`, `CSV_MISSING_COLUMN`;
 *   SiloError 413 `IMPORT_TOO_LARGE` past {@link MAX_IMPORT_ROWS} data rows
 */
export function readImportFile(bytes: Buffer, columns: ImportColumns): ImportRow[] {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new ValidationError('the file is not UTF-8 text: save it as CSV UTF-8', { field: 'file' }, 'CSV_NOT_UTF8');
  }
  if (text.includes('\u0000')) throw new ValidationError('the file is not text (it has NUL bytes)', { field: 'file' }, 'CSV_NOT_UTF8');
  let records: Array<{ record: string[]; info: { lines: number } }>;
  try {
    records = parse(text, { info: true, skip_empty_lines: true, relax_column_count: false }) as unknown as typeof records;
  } catch (err) {
    const e = err as { message?: string; code?: string; lines?: number };
    throw new SiloError(`the file is not valid CSV: ${e.message ?? String(err)}`, {
      code: 'CSV_INVALID',
      status: 400,
      exitCode: 2,
      members: { line: e.lines, csvCode: e.code },
    });
  }
  const [head, ...data] = records;
  if (!head) throw new ValidationError('the file is empty: it needs a header row', { field: 'file' }, 'CSV_EMPTY');
  if (data.length > MAX_IMPORT_ROWS)
    throw new SiloError(`an import takes at most ${MAX_IMPORT_ROWS} rows; this file has more: split it`, {
      code: 'IMPORT_TOO_LARGE',
      status: 413,
      members: { maxRows: MAX_IMPORT_ROWS },
    });

  const fieldOf: Array<string | undefined> = [];
  const seen = new Set<string>();
  const headers: Record<string, string> = {};
  for (const raw of head.record) {
    const name = raw.trim().toLowerCase();
    if (seen.has(name)) throw new ValidationError(`the column ${JSON.stringify(raw)} appears twice`, { field: raw }, 'CSV_DUPLICATE_COLUMN');
    seen.add(name);
    const field = Object.hasOwn(columns.fields, name) ? columns.fields[name] : undefined;
    if (!field && !columns.ignored.includes(name))
      throw new ValidationError(
        `unknown column ${JSON.stringify(raw)}; the columns are ${[...new Set(Object.keys(columns.fields))].join(', ')} (and ${columns.ignored.join(', ')}, ignored)`,
        { field: raw, allowed: Object.keys(columns.fields) },
        'CSV_UNKNOWN_COLUMN',
      );
    if (field && Object.hasOwn(headers, field))
      throw new ValidationError(`the columns ${headers[field]} and ${raw} are the same field`, { field: raw }, 'CSV_DUPLICATE_COLUMN');
    if (field) headers[field] = raw.trim();
    fieldOf.push(field);
  }
  for (const f of columns.required)
    if (!Object.hasOwn(headers, f)) throw new ValidationError(`the file needs a column ${f}`, { field: f }, 'CSV_MISSING_COLUMN');

  return data.map(({ record, info }) => {
    const values: Record<string, string> = {};
    record.forEach((cell, i) => {
      const field = fieldOf[i];
      const v = cell.replace(ESCAPED_FORMULA, '');
      if (field && v.trim() !== '') values[field] = v;
    });
    return { row: info.lines, values, headers };
  });
}

/**
 * Duplicate detection key of a text under MySQL's `utf8mb4_unicode_ci` (case and accents
 * ignored, trailing spaces ignored): close to the collation, and the database has the last word.
 */
export function collationKey(s: string): string {
  return s.normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase().replace(/ +$/, '');
}

/** Splits `xs` into chunks of `n` (for `IN (...)` lists and multi-row inserts). */
export function chunks<T>(xs: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}
