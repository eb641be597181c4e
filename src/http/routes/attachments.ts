/**
 * Attachments (files in S3) of companies, contacts and deals, under `/api/v1`:
 * `POST|GET /{companies,contacts,deals}/:id/attachments`, `GET /attachments/:id`,
 * `GET /attachments/:id/url` (pre-signed download URL) and `DELETE /attachments/:id`.
 *
 * Uploads are `multipart/form-data` with one file part named `file` (and optionally the
 * field `logo=true`, also accepted as a query parameter). The file streams to S3 as it
 * arrives (never whole in memory). `@fastify/multipart` is registered in this plugin's
 * scope only, so no other route accepts multipart bodies. Without S3 every route here
 * answers 503 `STORAGE_NOT_CONFIGURED`.
 */
import multipart, { type Multipart } from '@fastify/multipart';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { validatorCompiler, type FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { SiloContext } from '../../context.js';
import { ATTACHMENT_ENTITIES, createAttachmentsService, fileTooLarge, type AttachmentEntity, type StagedFile, type UploadMeta } from '../../crm/attachments.js';
import { SiloError, ValidationError } from '../../lib/errors.js';
import { requireStore } from '../../storage/s3.js';
import { actorOf, idParams } from '../crm-helpers.js';
import { page, paginationQuery, problemSchema, tenantQuery, withProblems } from '../schemas.js';

/**
 * Bytes a multipart body may carry besides the file (boundaries, part headers with a
 * long UTF-8 file name, the `logo` field). A `Content-Length` above the file limit plus
 * this is refused before the body is read.
 */
export const MULTIPART_OVERHEAD_BYTES = 16 * 1024;

const PLURAL: Record<AttachmentEntity, string> = { company: 'companies', contact: 'contacts', deal: 'deals' };
/** Who may delete an attachment. */

export const attachmentSchema = z
  .object({
    id: z.number().int(),
    entityType: z.enum(ATTACHMENT_ENTITIES),
    entityId: z.number().int(),
    fileName: z.string().describe('the file name the client sent'),
    contentType: z.string(),
    sizeBytes: z.number().int().describe('bytes'),
    sha256: z.string().describe('SHA-256 of the bytes, hex'),
    isLogo: z.boolean(),
    uploadedBy: z.number().int().nullable(),
    createdAt: z.date(),
  })
  .meta({ id: 'Attachment' });

const urlSchema = z
  .object({ url: z.string().describe('pre-signed GET URL; its response names the original file'), expiresAt: z.date() })
  .meta({ id: 'AttachmentUrl' });

const logoParam = z.enum(['true', 'false']).transform((v) => v === 'true');

/** The form of an upload, for the OpenAPI document (the body is read as a stream, not validated as a whole). */
const uploadForm = z.object({
  file: z.string().meta({ format: 'binary' }).describe('the file; its part needs a filename and a Content-Type from the accepted list'),
  logo: z.enum(['true', 'false']).optional().describe('companies only: make this image the company logo (replaces the previous one)'),
});

/** Maps errors of the multipart parser (`@fastify/multipart`, busboy) to problems. */
function formError(err: unknown, maxBytes: number): SiloError {
  if (err instanceof SiloError) return err;
  const code = (err as { code?: string } | null)?.code;
  if (code === 'FST_REQ_FILE_TOO_LARGE') return fileTooLarge(maxBytes);
  if (code === 'FST_FILES_LIMIT') return new ValidationError('send exactly one file part', { field: 'file' }, 'TOO_MANY_FILES');
  if (code === 'FST_FIELDS_LIMIT' || code === 'FST_PARTS_LIMIT')
    return new ValidationError('the form has too many parts: send "file" and optionally "logo"', undefined, 'INVALID_MULTIPART');
  const reason = err instanceof Error ? err.message : String(err);
  return new SiloError(`the multipart body is not valid: ${reason}`, { code: 'INVALID_MULTIPART', status: 400, cause: err });
}

/** The parts of the request's form, with parser errors mapped to problems. */
async function* formParts(request: FastifyRequest, maxBytes: number): AsyncGenerator<Multipart> {
  const it = request.parts();
  try {
    for (;;) {
      let next: IteratorResult<Multipart>;
      try {
        next = await it.next();
      } catch (err) {
        throw formError(err, maxBytes);
      }
      if (next.done) return;
      yield next.value;
    }
  } finally {
    await it.return?.(undefined).catch(() => undefined);
  }
}

/** Options: the shared services (S3 store and upload limits from the configuration). */
export const attachmentsRoutes: FastifyPluginAsyncZod<{ ctx: SiloContext }> = async (app, { ctx }) => {
  const { maxBytes, contentTypes } = ctx.config.upload;
  await app.register(multipart, {
    limits: { fileSize: maxBytes, files: 1, fields: 2, parts: 3, fieldSize: 16, fieldNameSize: 100, headerPairs: 20 },
    throwFileSizeLimit: true,
  });

  const tags = ['attachments'];
  const security = [{ tenantBearer: [] }];
  const svc = async (request: FastifyRequest) => {
    const store = requireStore(ctx.storage, 'attachments');
    return createAttachmentsService(await app.tenantKnex(request), actorOf(request), {
      store,
      tenantId: request.tenant!.id,
      maxBytes,
      contentTypes,
      log: request.log,
      maxAttachmentBytes: (await app.tenantLimits(request)).maxAttachmentBytes,
    });
  };

  /**
   * Reads an upload: cheap checks first (store, declared length, media type, logo target,
   * parent), then the parts; the file streams to S3 and is recorded once the form is read.
   */
  const receive = async (
    request: FastifyRequest,
    reply: FastifyReply,
    entity: AttachmentEntity,
    entityId: number,
    queryLogo: boolean,
  ): Promise<FastifyReply> => {
    const s = await svc(request);
    const declared = Number(request.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes + MULTIPART_OVERHEAD_BYTES) throw fileTooLarge(maxBytes);
    if (!request.isMultipart())
      throw new SiloError('send multipart/form-data with one file part named "file"', { code: 'UNSUPPORTED_MEDIA_TYPE', status: 415 });
    let logo = queryLogo;
    if (logo && entity !== 'company') throw new ValidationError('only a company has a logo', { field: 'logo' }, 'INVALID_LOGO');
    await s.assertParent(entity, entityId);

    let meta: UploadMeta | undefined;
    let staged: StagedFile | undefined;
    try {
      for await (const part of formParts(request, maxBytes)) {
        if (part.type === 'field') {
          if (part.fieldname === 'file')
            throw new ValidationError('the "file" part needs a filename in its Content-Disposition', { field: 'file' }, 'FILE_REQUIRED');
          if (part.fieldname !== 'logo')
            throw new ValidationError(
              `unknown form field ${JSON.stringify(part.fieldname)}: send "file" and optionally "logo"`,
              { field: part.fieldname },
              'VALIDATION_FAILED',
            );
          const parsed = logoParam.safeParse(part.value);
          if (!parsed.success) throw new ValidationError('the form field "logo" must be true or false', { field: 'logo' }, 'VALIDATION_FAILED');
          logo ||= parsed.data;
          if (meta) meta.logo = logo;
          continue;
        }
        if (part.fieldname !== 'file')
          throw new ValidationError(
            `send the file in a part named "file", not ${JSON.stringify(part.fieldname)}`,
            { field: part.fieldname },
            'VALIDATION_FAILED',
          );
        meta = { entity, entityId, fileName: part.filename, contentType: part.mimetype, logo };
        // busboy stops at the limit and ends the stream early: make that an error.
        part.file.once('limit', () => part.file.destroy(fileTooLarge(maxBytes)));
        staged = await s.stage(meta, part.file);
      }
      if (!meta || !staged)
        throw new ValidationError('the form has no file: send it in a part named "file" with a filename', { field: 'file' }, 'FILE_REQUIRED');
      // commit() checks the metadata again (a late `logo` field) and deletes the object on failure.
      return reply.code(201).send(await s.commit(meta, staged));
    } catch (err) {
      if (staged) await s.discard(staged);
      throw err;
    }
  };

  for (const entity of ATTACHMENT_ENTITIES) {
    const plural = PLURAL[entity];

    app.post(
      `/${plural}/:id/attachments`,
      {
        schema: {
          operationId: `upload${entity[0]!.toUpperCase()}${entity.slice(1)}Attachment`,
          tags,
          security,
          summary: `Upload a file to a ${entity}`,
          description:
            `multipart/form-data with one file part named \`file\` (at most ${maxBytes} bytes; accepted types: ${contentTypes.join(', ')}), streamed to S3.` +
            (entity === 'company' ? ' `logo=true` (query or form field, before or after the file) makes an image the company logo.' : ''),
          consumes: ['multipart/form-data'],
          params: idParams,
          querystring: tenantQuery.extend({ logo: logoParam.optional() }),
          body: uploadForm,
          response: withProblems({ 201: attachmentSchema, 413: problemSchema, 415: problemSchema }),
        },
        // The body is a stream read by the handler; the schema above only documents it.
        validatorCompiler: (req) => (req.httpPart === 'body' ? () => true : validatorCompiler(req as unknown as Parameters<typeof validatorCompiler>[0])),
        onRequest: app.requirePermission('attachments:create'),
      },
      async (request, reply) => {
        try {
          return await receive(request, reply, entity, request.params.id, request.query.logo ?? false);
        } catch (err) {
          // The client may still be sending a body nobody will read: close the connection
          // after the answer instead of waiting for the rest (as Fastify does for its own 413).
          if (!request.raw.complete) reply.header('connection', 'close');
          throw err;
        }
      },
    );

    app.get(
      `/${plural}/:id/attachments`,
      {
        schema: {
          operationId: `list${entity[0]!.toUpperCase()}${entity.slice(1)}Attachments`,
          tags,
          security,
          summary: `Attachments of a ${entity}, newest first`,
          params: idParams,
          querystring: paginationQuery,
          response: withProblems({ 200: page(attachmentSchema) }),
        },
        onRequest: app.requirePermission('attachments:read'),
      },
      async (request) => {
        const q = request.query;
        const r = await (await svc(request)).list(entity, request.params.id, q);
        return { ...r, page: q.page, pageSize: q.pageSize };
      },
    );
  }

  app.get(
    '/attachments/:id',
    {
      schema: { operationId: 'getAttachment', tags, security, params: idParams, querystring: tenantQuery, response: withProblems({ 200: attachmentSchema }) },
      onRequest: app.requirePermission('attachments:read'),
    },
    async (request) => (await svc(request)).get(request.params.id),
  );

  app.get(
    '/attachments/:id/url',
    {
      schema: {
        operationId: 'getAttachmentUrl',
        tags,
        security,
        summary: 'A short-lived pre-signed download URL',
        description: `Valid ${ctx.config.s3?.presignTtlS ?? 300} seconds; the download is named with the original file name (Content-Disposition).`,
        params: idParams,
        querystring: tenantQuery,
        response: withProblems({ 200: urlSchema }),
      },
      onRequest: app.requirePermission('attachments:read'),
    },
    async (request) => (await svc(request)).url(request.params.id),
  );

  app.delete(
    '/attachments/:id',
    {
      schema: {
        operationId: 'deleteAttachment',
        tags,
        security,
        summary: 'Delete an attachment and its file',
        params: idParams,
        querystring: tenantQuery,
        response: withProblems({ 204: z.null() }),
      },
      onRequest: app.requirePermission('attachments:delete'),
    },
    async (request, reply) => {
      await (await svc(request)).remove(request.params.id);
      return reply.code(204).send(null);
    },
  );
};
