/**
 * Attachments' types, limits and row mapping, shared by the service
 * (`crm/attachments.ts`) and the company logos (`crm/company-logos.ts`).
 */
import { SiloError } from '../lib/errors.js';
import type { ObjectStore } from '../storage/s3.js';

/** Records that take attachments. */
export const ATTACHMENT_ENTITIES = ['company', 'contact', 'deal'] as const;
export type AttachmentEntity = (typeof ATTACHMENT_ENTITIES)[number];

/** Table of each entity that takes attachments. */
export const PARENT_TABLES: Record<AttachmentEntity, string> = { company: 'companies', contact: 'contacts', deal: 'deals' };

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
  /** The plan's limit of the bytes of all attachments together (null or absent: unlimited), checked by commit. */
  maxAttachmentBytes?: number | null;
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

/** A row of a tenant's `attachments` table. */
export interface AttachmentRow {
  id: number;
  entity_type: AttachmentEntity;
  entity_id: number;
  file_name: string;
  content_type: string;
  size_bytes: number | string;
  sha256: string;
  storage_key: string;
  is_logo: number | boolean;
  logo_company_id: number | null;
  uploaded_by: number | null;
  created_at: Date;
}

/** Maps a row to the API view. */
export function toAttachment(r: AttachmentRow): Attachment {
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
export function attachmentSummary(a: Attachment) {
  return { id: a.id, fileName: a.fileName, contentType: a.contentType, sizeBytes: a.sizeBytes, sha256: a.sha256, isLogo: a.isLogo };
}
