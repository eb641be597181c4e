/**
 * Object storage over S3 (or an S3-compatible store): tenant backups, attachments and
 * request-history archives.
 *
 * - Keys are made here, on the server, from ids Silo owns; nothing a client sends is ever
 *   part of a key. Layout: `tenants/<tenant-id>/backups/...`, `tenants/<tenant-id>/files/...`,
 *   `history/YYYY/MM/...`.
 * - Every object is written with server-side encryption requested (`AES256`, SSE-S3) and
 *   without an ACL, so it stays private (bucket-owner only).
 * - Credentials come from the AWS SDK's default provider chain, never from code or from
 *   Silo's configuration.
 * - Large bodies go through `@aws-sdk/lib-storage` `Upload`: a multipart upload with a
 *   bounded number of parts in memory (`queueSize` x `partSize`), so a stream of any length
 *   is stored without holding it in memory or on disk.
 * - The SDK (about 0.2 s of CPU to load) is imported on the first S3 call, not when the
 *   store is built: a CLI command or an API process that never touches S3 never loads it.
 * References: Amazon S3 User Guide, "Protecting data with server-side encryption" and
 * "Uploading and copying objects using multipart upload"; AWS SDK for JavaScript v3,
 * `@aws-sdk/lib-storage` and `@aws-sdk/s3-request-presigner`.
 */
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import type { Config, S3Config } from '../config.js';
import { SiloError, UnavailableError } from '../lib/errors.js';

/** Part size of multipart uploads, bytes (S3's minimum is 5 MiB for all parts but the last). */
export const PART_SIZE = 5 * 1024 * 1024;
/** Parts uploaded at once; memory held by one upload is about `PART_SIZE x QUEUE_SIZE`. */
export const QUEUE_SIZE = 2;

/** Facts about a stored object. */
export interface StoredObject {
  key: string;
  /** Bytes. */
  size: number;
  contentType: string | undefined;
}

/** Options of {@link ObjectStore.upload}. */
export interface UploadOptions {
  contentType: string;
  /** `Content-Disposition` stored with the object (e.g. `attachment; filename="..."`). */
  contentDisposition?: string;
  /** User metadata (`x-amz-meta-*`); ASCII values only. */
  metadata?: Record<string, string>;
  /** Aborts the upload (its parts are discarded). */
  signal?: AbortSignal;
}

/** Thrown when S3 is not configured (`SILO_S3_BUCKET` unset): 503 for the API, exit 1 for the CLI. */
export class StorageNotConfiguredError extends SiloError {
  constructor(what: string) {
    super(`${what} needs S3: set SILO_S3_BUCKET (and SILO_S3_ENDPOINT for an S3-compatible store)`, { code: 'STORAGE_NOT_CONFIGURED', status: 503 });
  }
}

/** Wraps an SDK failure as a 503 `STORAGE_UNAVAILABLE` naming the action, keeping the cause. */
export function storageUnavailable(action: string, err: unknown): UnavailableError {
  const reason = err instanceof Error ? err.message || err.name : String(err);
  return new UnavailableError(`S3 ${action} failed: ${reason}`, 'STORAGE_UNAVAILABLE', 10, undefined, err);
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404;
}

/** UTC `YYYYMMDDTHHMMSSZ`, sortable, for key names. */
export function keyTimestamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
}

/** Key layout (the only place keys are made). Ids are integers Silo assigned. */
export const keys = {
  /** `tenants/<tenant-id>/backups/<UTC time>-<backup-id>.sql.gz` */
  backup(tenantId: number, backupId: number, at: Date): string {
    return `tenants/${positiveInt(tenantId)}/backups/${keyTimestamp(at)}-${positiveInt(backupId)}.sql.gz`;
  },
  /** `tenants/<tenant-id>/files/<random uuid>`: the client's file name is stored as metadata, never in the key. */
  file(tenantId: number): string {
    return `tenants/${positiveInt(tenantId)}/files/${randomUUID()}`;
  },
  /** Prefix of every file of a tenant (ends with `/`). */
  filesPrefix(tenantId: number): string {
    return `tenants/${positiveInt(tenantId)}/files/`;
  },
  /**
   * Whether `key` is a file of this tenant exactly as {@link keys.file} makes them
   * (`tenants/<id>/files/<uuid>`): another tenant's key, a backup, a history archive or a
   * path with `..` in it is not.
   */
  isTenantFile(tenantId: number, key: string): boolean {
    const prefix = keys.filesPrefix(tenantId);
    return key.startsWith(prefix) && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(key.slice(prefix.length));
  },
  /** `history/YYYY/MM/<name>.ndjson.gz` for rows of that UTC month. */
  history(year: number, month: number, name: string): string {
    if (!/^[A-Za-z0-9_.-]{1,200}$/.test(name)) throw new Error(`unsafe archive name ${JSON.stringify(name)}`);
    return `history/${String(year).padStart(4, '0')}/${String(month).padStart(2, '0')}/${name}.ndjson.gz`;
  },
};

/** The three SDK packages Silo uses, loaded together on first use. */
interface Sdk {
  s3: typeof import('@aws-sdk/client-s3');
  upload: typeof import('@aws-sdk/lib-storage');
  presigner: typeof import('@aws-sdk/s3-request-presigner');
}
let sdkLoading: Promise<Sdk> | undefined;
/** Loads the SDK once per process (a failed load is retried by the next call). */
function loadSdk(): Promise<Sdk> {
  sdkLoading ??= Promise.all([import('@aws-sdk/client-s3'), import('@aws-sdk/lib-storage'), import('@aws-sdk/s3-request-presigner')]).then(
    ([s3, upload, presigner]) => ({ s3, upload, presigner }),
    (err: unknown) => {
      sdkLoading = undefined;
      throw err;
    },
  );
  return sdkLoading;
}

function positiveInt(n: number): number {
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`expected a positive integer id, got ${n}`);
  return n;
}

/** S3 access for Silo. Build with {@link createObjectStore}. */
export class ObjectStore {
  readonly bucket: string;
  readonly presignTtlS: number;
  /** Built with the SDK on the first call; undefined until then. */
  #client: S3Client | undefined;

  constructor(readonly settings: S3Config) {
    this.bucket = settings.bucket;
    this.presignTtlS = settings.presignTtlS;
  }

  /** The SDK and the client, loaded and built on first use. */
  async #sdk(): Promise<{ sdk: Sdk; client: S3Client }> {
    const sdk = await loadSdk();
    if (!this.#client) {
      // Silo runs on Node 20 (its stated engine); the SDK otherwise prints a multi-line notice
      // about future SDK releases needing Node 22 on every CLI run. The lockfile pins the SDK.
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
      const cfg: S3ClientConfig = {
        region: this.settings.region,
        forcePathStyle: this.settings.forcePathStyle,
        maxAttempts: 3,
        // A plain options object is accepted for the default Node handler (SDK v3 >= 3.521).
        requestHandler: { connectionTimeout: Math.min(this.settings.timeoutMs, 5_000), requestTimeout: this.settings.timeoutMs },
        ...(this.settings.endpoint ? { endpoint: this.settings.endpoint } : {}),
      };
      this.#client = new sdk.s3.S3Client(cfg);
    }
    return { sdk, client: this.#client };
  }

  /**
   * Checks that the bucket answers (`HeadBucket`).
   * @throws UnavailableError `STORAGE_UNAVAILABLE` when S3 cannot be reached or the bucket is not there
   */
  async check(): Promise<void> {
    try {
      const { sdk, client } = await this.#sdk();
      await client.send(new sdk.s3.HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      throw storageUnavailable(`bucket ${this.bucket} check`, err);
    }
  }

  /**
   * Streams `body` to `key` (multipart above {@link PART_SIZE}), SSE `AES256`, private.
   * A failed or aborted upload leaves no object (multipart parts are aborted by `Upload`).
   * @returns the stored object's facts
   * @throws UnavailableError `STORAGE_UNAVAILABLE` when S3 fails; the body's own error when the body stream fails
   */
  async upload(key: string, body: Readable | Buffer | string, opts: UploadOptions): Promise<{ key: string; etag: string | undefined }> {
    let bodyError: Error | undefined;
    if (typeof body === 'object' && 'once' in body && typeof body.once === 'function' && !Buffer.isBuffer(body)) {
      body.once('error', (err: Error) => (bodyError ??= err));
    }
    let sdk: Sdk, client: S3Client;
    try {
      ({ sdk, client } = await this.#sdk());
    } catch (err) {
      throw storageUnavailable(`upload of ${key}`, err);
    }
    const upload = new sdk.upload.Upload({
      client,
      queueSize: QUEUE_SIZE,
      partSize: PART_SIZE,
      leavePartsOnError: false,
      params: {
        Bucket: this.bucket,
        Key: key,
        Body: body,
        ContentType: opts.contentType,
        ServerSideEncryption: 'AES256',
        ...(opts.contentDisposition ? { ContentDisposition: opts.contentDisposition } : {}),
        ...(opts.metadata ? { Metadata: opts.metadata } : {}),
      },
    });
    const onAbort = () => void upload.abort().catch(() => undefined);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const out = await upload.done();
      if (bodyError) throw bodyError;
      return { key, etag: out.ETag };
    } catch (err) {
      if (bodyError) throw bodyError;
      if (err instanceof SiloError) throw err;
      throw storageUnavailable(`upload of ${key}`, err);
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Opens a stream of an object's bytes.
   * @throws SiloError `OBJECT_NOT_FOUND` (404) when the key does not exist; UnavailableError when S3 fails
   */
  async download(key: string): Promise<{ body: Readable; size: number | undefined }> {
    try {
      const { sdk, client } = await this.#sdk();
      const out = await client.send(new sdk.s3.GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return { body: out.Body as Readable, size: out.ContentLength };
    } catch (err) {
      if (isNotFound(err)) throw new SiloError(`object ${key} is not in bucket ${this.bucket}`, { code: 'OBJECT_NOT_FOUND', status: 404 });
      throw storageUnavailable(`download of ${key}`, err);
    }
  }

  /** Facts about an object, or null when it does not exist. @throws UnavailableError when S3 fails */
  async head(key: string): Promise<StoredObject | null> {
    try {
      const { sdk, client } = await this.#sdk();
      const out = await client.send(new sdk.s3.HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { key, size: Number(out.ContentLength ?? 0), contentType: out.ContentType };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw storageUnavailable(`head of ${key}`, err);
    }
  }

  /** Deletes an object; deleting a missing key succeeds (S3 semantics). @throws UnavailableError when S3 fails */
  async delete(key: string): Promise<void> {
    try {
      const { sdk, client } = await this.#sdk();
      await client.send(new sdk.s3.DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      throw storageUnavailable(`delete of ${key}`, err);
    }
  }

  /**
   * A pre-signed GET URL of a tenant's file: only for a key under that tenant's own prefix
   * (see {@link keys.isTenantFile}), whatever a database row says.
   * @throws SiloError 404 `KEY_OUTSIDE_TENANT_PREFIX` for any other key (nothing is signed)
   */
  async presignTenantFile(
    tenantId: number,
    key: string,
    download: { fileName?: string; contentType?: string } = {},
  ): Promise<{ url: string; expiresAt: Date }> {
    if (!keys.isTenantFile(tenantId, key)) throw new SiloError(`key is not a file of tenant ${tenantId}`, { code: 'KEY_OUTSIDE_TENANT_PREFIX', status: 404 });
    return this.presignGet(key, download);
  }

  /**
   * A pre-signed GET URL (SigV4 query authentication), valid `ttlS` seconds (default
   * `SILO_S3_PRESIGN_TTL_S`, 300). Signing is local: no request is made.
   * @param download optional file name and type the response announces (`Content-Disposition`, `Content-Type`)
   */
  async presignGet(
    key: string,
    download: { fileName?: string; contentType?: string } = {},
    ttlS = this.presignTtlS,
  ): Promise<{ url: string; expiresAt: Date }> {
    const { sdk, client } = await this.#sdk();
    const cmd = new sdk.s3.GetObjectCommand({
      Bucket: this.bucket,
      Key: key,
      ...(download.fileName ? { ResponseContentDisposition: contentDisposition(download.fileName) } : {}),
      ...(download.contentType ? { ResponseContentType: download.contentType } : {}),
    });
    const url = await sdk.presigner.getSignedUrl(client, cmd, { expiresIn: ttlS });
    return { url, expiresAt: new Date(Date.now() + ttlS * 1000) };
  }

  /** Releases the client's sockets. */
  destroy(): void {
    this.#client?.destroy();
    this.#client = undefined;
  }
}

/**
 * `Content-Disposition: attachment` with an ASCII fallback and the UTF-8 name in
 * `filename*` (RFC 6266 §4.3, RFC 8187).
 */
export function contentDisposition(fileName: string): string {
  const ascii = fileName.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  const encoded = encodeURIComponent(fileName).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

/** The store for a configuration, or undefined when `SILO_S3_BUCKET` is unset. */
export function createObjectStore(config: Pick<Config, 's3'>): ObjectStore | undefined {
  return config.s3 ? new ObjectStore(config.s3) : undefined;
}

/**
 * The store, or a clear error when S3 is not configured.
 * @param what the action that needs S3, for the message (e.g. `tenant backup`)
 * @throws StorageNotConfiguredError
 */
export function requireStore(store: ObjectStore | undefined, what: string): ObjectStore {
  if (!store) throw new StorageNotConfiguredError(what);
  return store;
}
