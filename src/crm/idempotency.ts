/**
 * `Idempotency-Key` for POST creates (draft-ietf-httpapi-idempotency-key-header): the
 * key row is inserted in the same transaction as the create, so a concurrent retry
 * with the same key waits on the row lock and then replays the stored answer; the same
 * key with a different body (or route) is refused with 422.
 */
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { UnprocessableError, ValidationError } from '../lib/errors.js';
import { MysqlErrno, mysqlErrno } from '../lib/knex.js';

/** A row of a tenant's `idempotency_keys` table (the columns read back). */
interface IdempotencyRow {
  request_hash: string;
  response_status: number;
  response_body: string;
}

/** Result: the value created now, or the stored JSON of the first answer. */
export type IdempotentResult<T> = { replayed: false; status: number; value: T } | { replayed: true; status: number; value: unknown };

/** JSON text of `v` with object keys sorted (the same body always hashes the same); no recursion of our own. */
function stable(v: unknown): string {
  const sorted = (_key: string, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(
          Object.keys(x)
            .sort()
            .map((k) => [k, (x as Record<string, unknown>)[k]]),
        )
      : x;
  return JSON.stringify(v ?? null, sorted) ?? 'null';
}

/**
 * Runs `create` at most once per (user, key).
 * @param key the header value: 1-255 visible ASCII characters
 * @throws ValidationError `INVALID_IDEMPOTENCY_KEY`; UnprocessableError `IDEMPOTENCY_KEY_REUSED`
 */
export async function withIdempotency<T>(
  knex: Knex,
  opts: { userId: number; key: string; route: string; body: unknown; status?: number },
  create: (trx: Knex.Transaction) => Promise<T>,
): Promise<IdempotentResult<T>> {
  if (!/^[\x21-\x7e]{1,255}$/.test(opts.key))
    throw new ValidationError('Idempotency-Key must be 1-255 visible ASCII characters', { field: 'Idempotency-Key' }, 'INVALID_IDEMPOTENCY_KEY');
  const status = opts.status ?? 201;
  const hash = createHash('sha256')
    .update(`${opts.route}\n${stable(opts.body)}`)
    .digest('hex');
  const where = { user_id: opts.userId, idem_key: opts.key };
  try {
    return await knex.transaction(async (trx) => {
      await trx('idempotency_keys').insert({ ...where, route: opts.route, request_hash: hash, response_status: status, response_body: '' });
      const value = await create(trx);
      await trx('idempotency_keys')
        .where(where)
        .update({ response_body: JSON.stringify(value) });
      return { replayed: false as const, status, value };
    });
  } catch (err) {
    if (mysqlErrno(err) !== MysqlErrno.DUP_ENTRY || !String((err as Error).message).includes('PRIMARY')) throw err;
    const row = (await knex('idempotency_keys').where(where).first()) as IdempotencyRow | undefined;
    if (!row) throw err;
    if (row.request_hash !== hash) {
      throw new UnprocessableError('this Idempotency-Key was used with a different request', 'IDEMPOTENCY_KEY_REUSED');
    }
    return { replayed: true, status: row.response_status, value: JSON.parse(row.response_body) as unknown };
  }
}
