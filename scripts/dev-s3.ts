/**
 * A local S3 for the demo and the tests: `s3rver` (a development dependency) in-process
 * on loopback, with one bucket, objects kept in a folder. The SDK reaches it with
 * path-style URLs (`SILO_S3_FORCE_PATH_STYLE=1`) and s3rver's fixed development
 * credentials (`S3RVER`/`S3RVER`), which the SDK's default chain reads from the
 * environment like any other credentials.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** s3rver's built-in development credentials (not a secret). */
export const DEV_S3_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' } as const;

/** A running local S3. */
export interface DevS3 {
  endpoint: string;
  bucket: string;
  /** Folder holding the objects (`<directory>/<bucket>/...`). */
  directory: string;
  /** `SILO_S3_*` settings plus the credentials, for a Silo process or the SDK. */
  env: Record<string, string>;
  /** Stops the server; removes the folder when it was made here. */
  close(): Promise<void>;
}

/**
 * Starts s3rver on 127.0.0.1.
 * @param opts.port 0 (default) picks a free port
 * @param opts.directory keep objects there (default: a new temporary folder, removed on close)
 */
export async function startDevS3(opts: { port?: number; directory?: string; bucket?: string } = {}): Promise<DevS3> {
  const { default: S3rver } = await import('s3rver');
  const bucket = opts.bucket ?? 'silo-dev';
  const directory = opts.directory ?? mkdtempSync(join(tmpdir(), 'silo-s3-'));
  const server = new S3rver({ address: '127.0.0.1', port: opts.port ?? 0, silent: true, directory, configureBuckets: [{ name: bucket }] });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    bucket,
    directory,
    env: { SILO_S3_BUCKET: bucket, SILO_S3_ENDPOINT: endpoint, SILO_S3_FORCE_PATH_STYLE: '1', SILO_S3_REGION: 'us-east-1', ...DEV_S3_CREDENTIALS },
    async close() {
      // Keep-alive sockets of SDK clients would hold close() open.
      server.httpServer?.closeAllConnections();
      await server.close().catch(() => undefined);
      if (!opts.directory) rmSync(directory, { recursive: true, force: true });
    },
  };
}
