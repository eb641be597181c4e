/**
 * Attachments of companies, contacts and deals: the bytes in S3 (see `storage/s3`), one
 * row per file in the tenant's `attachments` table. A company may flag one image
 * attachment as its logo.
 *
 * - Keys are made only from the tenant id on the server (`keys.file`); nothing the client
 *   sends is part of a key, and each tenant's rows live in its own database, so an
 *   attachment id of another tenant is simply not found.
 * - An upload is two steps, so that a caller reading a multipart form can validate
 *   fields that arrive after the file: {@link AttachmentsService.stage} streams the bytes
 *   to S3 (never holding the file in memory), measuring size and SHA-256 on the way;
 *   {@link AttachmentsService.commit} writes the row and the activity entry in one
 *   transaction. A failure at either step deletes the object, so S3 never keeps a file
 *   without a row.
 * - The activity log records an upload or a removal as an `update` of the parent record
 *   with the change `attachment: { old, new }` (and `logo: { old, new }` for logos).
 */
import { createHash } from 'node:crypto';
import { pipeline, Transform, type Readable } from 'node:stream';
import type { Knex } from 'knex';
import { NotFoundError, SiloError, ValidationError } from '../lib/errors.js';
import { pageOffset } from '../lib/validation.js';
import { contentDisposition, keys } from '../storage/s3.js';
import { logActivity } from './activity.js';
import {
  attachmentSummary,
  fileTooLarge,
  FILE_NAME_MAX,
  isAllowedContentType,
  normalizeContentType,
  PARENT_TABLES,
  toAttachment,
  type Attachment,
  type AttachmentEntity,
  type AttachmentRow,
  type AttachmentSettings,
  type StagedFile,
  type UploadMeta,
} from './attachment-model.js';
import { notFound, type Actor } from './common.js';
import { reserveQuota } from './quotas.js';

// The model and the logos live in their own files; everything stays importable from here.
export * from './attachment-model.js';
export { companyLogoUrls } from './company-logos.js';

/** The attachments service over a tenant's Knex, acting as `actor`. */
export function createAttachmentsService(knex: Knex, actor: Actor, settings: AttachmentSettings) {
  const { store } = settings;

  /** @throws NotFoundError `<ENTITY>_NOT_FOUND` unless the record is live; `lock` takes FOR SHARE / FOR UPDATE */
  const assertParent = async (entity: AttachmentEntity, id: number, db: Knex | Knex.Transaction = knex, lock?: 'share' | 'update'): Promise<void> => {
    const q = db(PARENT_TABLES[entity]).where({ id }).whereNull('deleted_at');
    if (lock === 'share') q.forShare();
    if (lock === 'update') q.forUpdate();
    if (!(await q.first('id'))) throw notFound(entity, id);
  };

  /**
   * The row of a visible attachment: its parent is live and its key is a file of this
   * tenant (a row pointing elsewhere, e.g. tampered in the database, is logged and not found).
   * @throws NotFoundError `ATTACHMENT_NOT_FOUND`
   */
  const loadVisible = async (id: number, db: Knex | Knex.Transaction = knex, lock = false): Promise<AttachmentRow> => {
    const q = db<AttachmentRow>('attachments').where({ id });
    if (lock) q.forUpdate();
    const row = await q.first();
    if (row) {
      const parent = await db<{ id: number }>(PARENT_TABLES[row.entity_type]).where({ id: row.entity_id }).whereNull('deleted_at').first('id');
      if (parent && keys.isTenantFile(settings.tenantId, row.storage_key)) return row;
      if (parent) settings.log?.warn({ attachmentId: id }, 'attachment row points outside the tenant files prefix: refused');
    }
    throw new NotFoundError(`attachment ${id} not found`, 'ATTACHMENT_NOT_FOUND');
  };

  /** Deletes an object, never failing the caller (it is already failing); a failure is logged. */
  const discardKey = async (key: string): Promise<void> => {
    await store.delete(key).catch((err: unknown) => settings.log?.warn({ err, key }, 'could not delete the object of a failed upload'));
  };

  const service = {
    /** @throws NotFoundError `COMPANY_NOT_FOUND`, `CONTACT_NOT_FOUND` or `DEAL_NOT_FOUND` unless the record exists and is live */
    assertParent: (entity: AttachmentEntity, id: number) => assertParent(entity, id),

    /**
     * Checks what is known before the first byte: the file name (1-255 characters, no
     * control characters), the media type (allow-list) and the logo rules.
     * @throws ValidationError `INVALID_FILE_NAME`, `INVALID_LOGO` (400); SiloError 415 `CONTENT_TYPE_NOT_ALLOWED`
     */
    check(meta: UploadMeta): void {
      const length = [...meta.fileName].length;
      if (length === 0 || length > FILE_NAME_MAX)
        throw new ValidationError(`the file name must have 1 to ${FILE_NAME_MAX} characters`, { field: 'file' }, 'INVALID_FILE_NAME');
      // eslint-disable-next-line no-control-regex -- control characters are what this check refuses
      if (/[\u0000-\u001f\u007f]/.test(meta.fileName))
        throw new ValidationError('the file name must not contain control characters', { field: 'file' }, 'INVALID_FILE_NAME');
      const type = normalizeContentType(meta.contentType);
      if (!isAllowedContentType(type, settings.contentTypes)) {
        throw new SiloError(`files of type ${JSON.stringify(type || 'unknown')} are not accepted; accepted: ${settings.contentTypes.join(', ')}`, {
          code: 'CONTENT_TYPE_NOT_ALLOWED',
          status: 415,
          details: { accepted: settings.contentTypes },
        });
      }
      if (meta.logo && meta.entity !== 'company') throw new ValidationError('only a company has a logo', { field: 'logo' }, 'INVALID_LOGO');
      if (meta.logo && !type.startsWith('image/'))
        throw new ValidationError(`a logo must be an image (image/*), not ${type}`, { field: 'logo' }, 'INVALID_LOGO');
    },

    /**
     * Checks `meta` (see {@link check}), then streams `body` to a new key of this tenant,
     * counting bytes and hashing on the way. Nothing is buffered beyond the store's
     * multipart parts. On any failure the object is deleted.
     * @throws the errors of {@link check}; SiloError 413 `FILE_TOO_LARGE` past `maxBytes`;
     *   SiloError 400 `UPLOAD_INCOMPLETE` when the body stream fails; UnavailableError `STORAGE_UNAVAILABLE`
     */
    async stage(meta: UploadMeta, body: Readable): Promise<StagedFile> {
      service.check(meta);
      const contentType = normalizeContentType(meta.contentType);
      const key = keys.file(settings.tenantId);
      const hash = createHash('sha256');
      let size = 0;
      const meter = new Transform({
        transform(chunk: Buffer, _enc, done) {
          size += chunk.length;
          if (size > settings.maxBytes) return done(fileTooLarge(settings.maxBytes));
          hash.update(chunk);
          done(null, chunk);
        },
      });
      // Errors of either side destroy both; the store sees the meter's error.
      pipeline(body, meter, () => undefined);
      try {
        await store.upload(key, meter, {
          contentType,
          contentDisposition: contentDisposition(meta.fileName),
          metadata: { 'silo-tenant-id': String(settings.tenantId), 'silo-entity': `${meta.entity}/${meta.entityId}`, 'silo-uploaded-by': String(actor.userId) },
        });
      } catch (err) {
        await discardKey(key);
        if (err instanceof SiloError) throw err;
        throw new SiloError(`the file could not be read to its end: ${(err as Error)?.message ?? String(err)}`, {
          code: 'UPLOAD_INCOMPLETE',
          status: 400,
          cause: err,
        });
      }
      return { key, sizeBytes: size, sha256: hash.digest('hex'), contentType };
    },

    /**
     * Records a staged file: re-checks the parent under a lock, unflags the previous logo
     * for a new one, inserts the row and logs the activity, in one transaction. On failure
     * the object is deleted.
     * The plan's attachment bytes are checked first in that transaction (the sum of every
     * attachment's size plus this one's: src/crm/quotas.ts).
     * @throws the errors of {@link check}; NotFoundError when the parent went away meanwhile; QuotaExceededError
     */
    async commit(meta: UploadMeta, staged: StagedFile): Promise<Attachment> {
      try {
        service.check(meta);
        return await knex.transaction(async (trx) => {
          await reserveQuota(trx, 'attachmentBytes', settings.maxAttachmentBytes ?? null, staged.sizeBytes);
          await assertParent(meta.entity, meta.entityId, trx, meta.logo ? 'update' : 'share');
          let previousLogo: number | null = null;
          if (meta.logo) {
            const prev = await trx<AttachmentRow>('attachments').where({ logo_company_id: meta.entityId }).forUpdate().first('id');
            if (prev) {
              previousLogo = Number(prev.id);
              await trx('attachments').where({ id: prev.id }).update({ is_logo: false });
            }
          }
          const [id] = await trx('attachments').insert({
            entity_type: meta.entity,
            entity_id: meta.entityId,
            file_name: meta.fileName,
            content_type: staged.contentType,
            size_bytes: staged.sizeBytes,
            sha256: staged.sha256,
            storage_key: staged.key,
            is_logo: meta.logo,
            uploaded_by: actor.userId,
          });
          const row = await trx<AttachmentRow>('attachments').where({ id }).first();
          if (!row) throw new NotFoundError(`attachment ${id} not found`, 'ATTACHMENT_NOT_FOUND');
          const created = toAttachment(row);
          await logActivity(trx, {
            userId: actor.userId,
            action: 'update',
            entity: meta.entity,
            entityId: meta.entityId,
            changes: { attachment: { old: null, new: attachmentSummary(created) }, ...(meta.logo ? { logo: { old: previousLogo, new: created.id } } : {}) },
          });
          return created;
        });
      } catch (err) {
        await discardKey(staged.key);
        throw err;
      }
    },

    /** Deletes a staged file that will not be recorded (never throws). */
    discard: (staged: StagedFile): Promise<void> => discardKey(staged.key),

    /**
     * A page of a record's attachments, newest first.
     * @throws NotFoundError `<ENTITY>_NOT_FOUND` unless the record is live
     */
    async list(entity: AttachmentEntity, entityId: number, p: { page: number; pageSize: number }): Promise<{ data: Attachment[]; total: number }> {
      await assertParent(entity, entityId);
      const base = knex<AttachmentRow>('attachments').where({ entity_type: entity, entity_id: entityId });
      const [rows, count] = await Promise.all([
        base
          .clone()
          .orderBy([
            { column: 'created_at', order: 'desc' },
            { column: 'id', order: 'desc' },
          ])
          .limit(p.pageSize)
          .offset(pageOffset(p.page, p.pageSize))
          .select('*'),
        base.clone().count<{ n: number }>({ n: '*' }).first(),
      ]);
      return { data: rows.map(toAttachment), total: Number(count?.n ?? 0) };
    },

    /** @throws NotFoundError `ATTACHMENT_NOT_FOUND` (also when its record is deleted) */
    async get(id: number): Promise<Attachment> {
      return toAttachment(await loadVisible(id));
    },

    /**
     * A pre-signed GET URL of the file, valid the store's `presignTtlS` seconds; the
     * response carries the original file name (`Content-Disposition: attachment`) and type.
     * @throws NotFoundError `ATTACHMENT_NOT_FOUND`
     */
    async url(id: number): Promise<{ url: string; expiresAt: Date }> {
      const row = await loadVisible(id);
      return store.presignTenantFile(settings.tenantId, row.storage_key, { fileName: row.file_name, contentType: row.content_type });
    },

    /**
     * Deletes the row (logging it) and the object, in one transaction: when S3 fails the
     * row stays.
     * @throws NotFoundError `ATTACHMENT_NOT_FOUND`; UnavailableError `STORAGE_UNAVAILABLE`
     */
    async remove(id: number): Promise<void> {
      await knex.transaction(async (trx) => {
        const row = await loadVisible(id, trx, true);
        const a = toAttachment(row);
        await trx('attachments').where({ id }).delete();
        await logActivity(trx, {
          userId: actor.userId,
          action: 'update',
          entity: a.entityType,
          entityId: a.entityId,
          changes: { attachment: { old: attachmentSummary(a), new: null }, ...(a.isLogo ? { logo: { old: a.id, new: null } } : {}) },
        });
        await store.delete(row.storage_key);
      });
    },
  };
  return service;
}

/** The service's type. */
export type AttachmentsService = ReturnType<typeof createAttachmentsService>;
