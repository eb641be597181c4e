/**
 * `POST /api/v1/companies/import` and `POST /api/v1/contacts/import`: CSV files in the
 * export's columns (src/crm/imports.ts). `multipart/form-data` with one file part named
 * `file`; `@fastify/multipart` is registered in this plugin's scope only. `?dryRun=true`
 * answers 200 with the per-row report and writes nothing; an import answers 201
 * `{ created, dryRun: false, errors: [] }`, or 422 `IMPORT_INVALID` with `rowErrors` and
 * nothing written. `Idempotency-Key` works as for creates (the key covers the file's bytes
 * and `dryRun`). Roles: those of a create (staff included).
 */
import multipart from '@fastify/multipart';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { validatorCompiler, type FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { MAX_IMPORT_ROWS, type ImportResult } from '../../crm/csv-import.js';
import { withIdempotency } from '../../crm/idempotency.js';
import { createImportService } from '../../crm/imports.js';
import { SiloError, ValidationError } from '../../lib/errors.js';
import { actorOf } from '../crm-helpers.js';
import { problemSchema, tenantQuery, withProblems } from '../schemas.js';

/** Largest import file (10,000 rows of long cells fit). */
export const MAX_IMPORT_BYTES = 16 * 1024 * 1024;

const rowErrorSchema = z.object({
  row: z.number().int().describe("the file's line where the row ends; the header is line 1"),
  column: z.string().optional().describe('the header of the wrong cell, as the file spells it'),
  code: z
    .string()
    .describe('INVALID_VALUE, DUPLICATE_IN_FILE, COMPANY_NAME_TAKEN, CONTACT_EMAIL_TAKEN, INVALID_REFERENCE, COMPANY_NOT_FOUND, COMPANY_MISMATCH'),
  detail: z.string(),
});
const importResultSchema = z
  .object({
    created: z.number().int().describe('rows created (a dry run: rows that would be created when the file has no error)'),
    dryRun: z.boolean(),
    errors: z.array(rowErrorSchema).describe('at most 1,000, by line'),
  })
  .meta({ id: 'ImportResult' });
const importQuery = tenantQuery.extend({
  dryRun: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional()
    .describe('true: check every row and report, write nothing'),
});
const uploadForm = z.object({ file: z.string().meta({ format: 'binary' }).describe('the CSV file (UTF-8), header row first') });

/** Reads the one file part `file` whole (bounded by {@link MAX_IMPORT_BYTES}). */
async function readFile(request: FastifyRequest): Promise<Buffer> {
  if (!request.isMultipart()) throw new SiloError('send multipart/form-data with one file part named "file"', { code: 'UNSUPPORTED_MEDIA_TYPE', status: 415 });
  let file: Buffer | undefined;
  try {
    for await (const part of request.parts()) {
      if (part.type === 'field' || part.fieldname !== 'file')
        throw new ValidationError(
          `send the CSV in one file part named "file", not ${JSON.stringify(part.fieldname)}`,
          { field: part.fieldname },
          'FILE_REQUIRED',
        );
      file = await part.toBuffer();
    }
  } catch (err) {
    if (err instanceof SiloError) throw err;
    const code = (err as { code?: string } | null)?.code;
    if (code === 'FST_REQ_FILE_TOO_LARGE')
      throw new SiloError(`an import file takes at most ${MAX_IMPORT_BYTES} bytes`, {
        code: 'IMPORT_TOO_LARGE',
        status: 413,
        members: { maxBytes: MAX_IMPORT_BYTES },
      });
    if (code === 'FST_FILES_LIMIT' || code === 'FST_PARTS_LIMIT' || code === 'FST_FIELDS_LIMIT')
      throw new ValidationError('send exactly one file part named "file"', { field: 'file' }, 'TOO_MANY_FILES');
    throw new SiloError(`the multipart body is not valid: ${err instanceof Error ? err.message : String(err)}`, {
      code: 'INVALID_MULTIPART',
      status: 400,
      cause: err,
    });
  }
  if (!file) throw new ValidationError('the form has no file: send the CSV in a part named "file"', { field: 'file' }, 'FILE_REQUIRED');
  return file;
}

export const importRoutes: FastifyPluginAsyncZod = async (app) => {
  await app.register(multipart, {
    limits: { fileSize: MAX_IMPORT_BYTES, files: 1, fields: 0, parts: 1, fieldNameSize: 100, headerPairs: 20 },
    throwFileSizeLimit: true,
  });
  const security = [{ tenantBearer: [] }];

  for (const resource of ['companies', 'contacts'] as const) {
    const what = resource === 'companies' ? 'Companies' : 'Contacts';
    app.post(
      `/${resource}/import`,
      {
        schema: {
          operationId: `import${what}`,
          tags: [resource],
          security,
          summary: `Import ${resource} from CSV (all or nothing)`,
          description:
            `multipart/form-data with one file part \`file\`: UTF-8 CSV (RFC 4180) with a header row, the export's columns matched case-insensitively ` +
            (resource === 'companies'
              ? '(name, industry, country, website, phone)'
              : '(fullName, email, phone, jobTitle, companyId: an id of this tenant, companyName or company: a live company of this tenant by name)') +
            `; id, createdAt, updatedAt, version, deletedAt are ignored; any other column is 400 CSV_UNKNOWN_COLUMN. At most ${MAX_IMPORT_ROWS} rows ` +
            `(else 413 IMPORT_TOO_LARGE) in one transaction with one activity row each; any invalid row: 422 IMPORT_INVALID with rowErrors, nothing written. ` +
            `Bad files: 400 CSV_NOT_UTF8, CSV_INVALID (with line), CSV_EMPTY, CSV_DUPLICATE_COLUMN, CSV_MISSING_COLUMN. A leading ' before = + - @ (the export's formula guard) is removed; cells are stored as text.`,
          consumes: ['multipart/form-data'],
          querystring: importQuery,
          body: uploadForm,
          response: withProblems({ 200: importResultSchema, 201: importResultSchema, 413: problemSchema, 415: problemSchema, 422: problemSchema }),
        },
        // The body is read by the handler; the schema above only documents it.
        validatorCompiler: (req) => (req.httpPart === 'body' ? () => true : validatorCompiler(req as unknown as Parameters<typeof validatorCompiler>[0])),
        onRequest: app.requirePermission(resource === 'companies' ? 'companies:import' : 'contacts:import'),
      },
      async (request, reply: FastifyReply) => {
        const dryRun = request.query.dryRun ?? false;
        let bytes: Buffer;
        try {
          bytes = await readFile(request);
        } catch (err) {
          if (!request.raw.complete) reply.header('connection', 'close');
          throw err;
        }
        const knex = await app.tenantKnex(request);
        const actor = actorOf(request);
        const maxContacts = resource === 'contacts' ? (await app.tenantLimits(request)).maxContacts : null;
        const svc = createImportService(knex, actor);
        const run = (trx?: Parameters<typeof svc.companies>[2]): Promise<ImportResult> =>
          resource === 'companies' ? svc.companies(bytes, { dryRun }, trx) : svc.contacts(bytes, { dryRun, maxContacts }, trx);
        const status = dryRun ? 200 : 201;
        const key = request.headers['idempotency-key'];
        if (key === undefined) return reply.code(status).send(await run());
        const r = await withIdempotency(
          knex,
          {
            userId: actor.userId,
            key: String(key),
            route: `${request.method} ${request.routeOptions.url}`,
            body: { sha256: createHash('sha256').update(bytes).digest('hex'), dryRun },
            status,
          },
          (trx) => run(trx),
        );
        if (!r.replayed) return reply.code(status).send(r.value);
        return reply.code(r.status).header('idempotent-replayed', 'true').send(r.value);
      },
    );
  }
};
