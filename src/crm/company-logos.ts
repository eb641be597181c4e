/** Pre-signed URLs of company logos (attachments flagged `is_logo`). */
import type { Knex } from 'knex';
import { MysqlErrno, mysqlErrno } from '../lib/knex.js';
import type { ObjectStore } from '../storage/s3.js';
import type { WarnLogger } from './attachment-model.js';

/**
 * Pre-signed URLs of the logos of these companies: one query (through the unique logo
 * index), then local signing. Without a store, or in a tenant database not yet migrated
 * to attachments, there are no logos. A URL that cannot be signed is left out (and
 * logged), so a company answer never fails for its logo.
 * @returns company id -> URL, for companies that have a logo
 */
export async function companyLogoUrls(
  knex: Knex,
  store: ObjectStore | undefined,
  tenantId: number | undefined,
  companyIds: number[],
  log?: WarnLogger,
): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  if (!store || tenantId === undefined || companyIds.length === 0) return out;
  let rows: Array<{ logo_company_id: number; storage_key: string; file_name: string; content_type: string }>;
  try {
    rows = await knex('attachments')
      .whereIn('logo_company_id', [...new Set(companyIds)])
      .select('logo_company_id', 'storage_key', 'file_name', 'content_type');
  } catch (err) {
    if (mysqlErrno(err) === MysqlErrno.NO_SUCH_TABLE) return out;
    throw err;
  }
  await Promise.all(
    rows.map(async (r) => {
      try {
        out.set(
          Number(r.logo_company_id),
          (await store.presignTenantFile(tenantId, r.storage_key, { fileName: r.file_name, contentType: r.content_type })).url,
        );
      } catch (err) {
        log?.warn({ err, companyId: Number(r.logo_company_id) }, 'could not sign the company logo URL');
      }
    }),
  );
  return out;
}
