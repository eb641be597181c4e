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
import { MysqlErrno, mysqlErrno } from '../lib/knex.js';
import { pageOffset } from '../lib/validation.js';
import { contentDisposition, keys, type ObjectStore } from '../storage/s3.js';
import { logActivity } from './activity.js';
import { notFound, type Actor } from './common.js';

/** Records that take attachments. */
export const ATTACHMENT_ENTITIES = ['company', 'contact', 'deal'] as const;
export type AttachmentEntity = (typeof ATTACHMENT_ENTITIES)[number];

const TABLES: Record<AttachmentEntity, string> = { company: 'companies', contact: 'contacts', deal: 'deals' };

/** Longest file name, in characters (code points). */
export const FILE_NAME_MAX = 255;

/** An attachment as the API shows it (never its storage key). */
export interface Attachment {
  id: number;
  entityType: AttachmentEntity;
  entityId: number;
  /** The client's file name, as given. */
  fileName: string;
  /** Media type, lower case, without parameters. */
  contentType: string;
  /** Bytes. */
  sizeBytes: number;
  /** SHA-256 of the bytes, 64 hex digits. */
  sha256: string;
  isLogo: boolean;
  /** Id of the tenant user who uploaded it. */
  uploadedBy: number | null;
  createdAt: Date;
}

/** What an upload is about, known before its first byte. */
export interface UploadMeta {
  entity: AttachmentEntity;
  entityId: number;
  fileName: string;
  /** Media type as the client declared it for the file (parameters are dropped). */
  contentType: string;
  /** Make it the company's logo (companies and `image/*` only). */
  logo: boolean;
}

/** An object written to S3 by {@link AttachmentsService.stage} and not yet recorded. */
export interface StagedFile {
  key: string;
  /** Bytes. */
  sizeBytes: number;
  /** Hex SHA-256. */
  sha256: string;
  /** Normalised media type stored with the object. */
  contentType: string;
}

/** Settings of the service: the store, the tenant whose keys it makes, and upload limits. */
export interface AttachmentSettings {
  store: ObjectStore;
  tenantId: number;
  /** Largest file, bytes. */
  maxBytes: number;
  /** Accepted media types, lower case; `type/*` accepts a whole type. */
  contentTypes: readonly string[];
  /** Where an object that could not be cleaned up is reported. */
  log?: WarnLogger;
}

/** A logger for problems that should not fail a request (pino's and Fastify's fit). */
export interface WarnLogger {
  warn(obj: object, msg: string): void;
}

/** 413 `FILE_TOO_LARGE` naming the limit (bytes). */
export function fileTooLarge(maxBytes: number): SiloError {
  return new SiloError(`the file is larger than the limit of ${maxBytes} bytes`, { code: 'FILE_TOO_LARGE', status: 413, details: { maxBytes } });
}

/** `Text/Plain; charset=UTF-8` -> `text/plain` (empty when absent). */
export function normalizeContentType(raw: string | undefined): string {
  return (raw ?? '').split(';')[0]!.trim().toLowerCase();
}

/**
 * Whether a media type is on the allow-list (entries `type/subtype` or `type/*`).
 * @param type a normalised media type (see {@link normalizeContentType})
 */
export function isAllowedContentType(type: string, allowed: readonly string[]): boolean {
  if (!/^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/.test(type)) return false;
  const major = type.slice(0, type.indexOf('/'));
  return allowed.some((a) => a === type || a === `${major}/*`);
}

/** Maps a row to the API view. */
export function toAttachment(r: Record<string, any>): Attachment {
  return {
    id: Number(r.id),
    entityType: r.entity_type,
    entityId: Number(r.entity_id),
    fileName: r.file_name,
    contentType: r.content_type,
    sizeBytes: Number(r.size_bytes),
    sha256: r.sha256,
    isLogo: Boolean(r.is_logo),
    uploadedBy: r.uploaded_by === null ? null : Number(r.uploaded_by),
    createdAt: r.created_at,
  };
}

/** What the activity log keeps of an attachment. */
function summary(a: Attachment) {
  return { id: a.id, fileName: a.fileName, contentType: a.contentType, sizeBytes: a.sizeBytes, sha256: a.sha256, isLogo: a.isLogo };
}

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

/** The attachments service over a tenant's Knex, acting as `actor`. */
export function createAttachmentsService(knex: Knex, actor: Actor, settings: AttachmentSettings) {
  const { store } = settings;

  /** @throws NotFoundError `<ENTITY>_NOT_FOUND` unless the record is live; `lock` takes FOR SHARE / FOR UPDATE */
  const assertParent = async (entity: AttachmentEntity, id: number, db: Knex | Knex.Transaction = knex, lock?: 'share' | 'update'): Promise<void> => {
    const q = db(TABLES[entity]).where({ id }).whereNull('deleted_at');
    if (lock === 'share') q.forShare();
    if (lock === 'update') q.forUpdate();
    if (!(await q.first('id'))) throw notFound(entity, id);
  };

  /**
   * The row of a visible attachment: its parent is live and its key is a file of this
   * tenant (a row pointing elsewhere, e.g. tampered in the database, is logged and not found).
   * @throws NotFoundError `ATTACHMENT_NOT_FOUND`
   */
  const loadVisible = async (id: number, db: Knex | Knex.Transaction = knex, lock = false): Promise<Record<string, any>> => {
    const q = db('attachments').where({ id });
    if (lock) q.forUpdate();
    const row = await q.first();
    if (row) {
      const parent = await db(TABLES[row.entity_type as AttachmentEntity])
        .where({ id: row.entity_id })
        .whereNull('deleted_at')
        .first('id');
      if (parent && keys.isTenantFile(settings.tenantId, row.storage_key)) return row;
      if (parent) settings.log?.warn({ attachmentId: id }, 'attachment row points outside the tenant files prefix: refused');
    }
    throw new NotFoundError(`attachment ${id} not found`, 'ATTACHMENT_NOT_FOUND');
  };

  /** Deletes an object, never failing the caller (it is already failing); a failure is logged. */
  const discardKey = async (key: string): Promise<void> => {
    await store.delete(key).catch((err) => settings.log?.warn({ err, key }, 'could not delete the object of a failed upload'));
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
     * @throws the errors of {@link check}; NotFoundError when the parent went away meanwhile
     */
    async commit(meta: UploadMeta, staged: StagedFile): Promise<Attachment> {
      try {
        service.check(meta);
        return await knex.transaction(async (trx) => {
          await assertParent(meta.entity, meta.entityId, trx, meta.logo ? 'update' : 'share');
          let previousLogo: number | null = null;
          if (meta.logo) {
            const prev = await trx('attachments').where({ logo_company_id: meta.entityId }).forUpdate().first('id');
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
          const created = toAttachment(await trx('attachments').where({ id }).first());
          await logActivity(trx, {
            userId: actor.userId,
            action: 'update',
            entity: meta.entity,
            entityId: meta.entityId,
            changes: { attachment: { old: null, new: summary(created) }, ...(meta.logo ? { logo: { old: previousLogo, new: created.id } } : {}) },
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
      const base = knex('attachments').where({ entity_type: entity, entity_id: entityId });
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
        base.clone().count({ n: '*' }).first(),
      ]);
      return { data: rows.map(toAttachment), total: Number((count as { n?: number } | undefined)?.n ?? 0) };
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
          changes: { attachment: { old: summary(a), new: null }, ...(a.isLogo ? { logo: { old: a.id, new: null } } : {}) },
        });
        await store.delete(row.storage_key);
      });
    },
  };
  return service;
}

/** The service's type. */
export type AttachmentsService = ReturnType<typeof createAttachmentsService>;
