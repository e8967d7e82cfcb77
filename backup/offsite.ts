// The off-box copy of each backup: its files and manifest to S3-compatible object storage (AWS S3,
// Tencent COS, MinIO) through the AWS SDK, under <prefix>/<id>/. A backup that cannot be copied
// stays good on the box; the failure is reported. Backups retention deletes here are deleted there.
// Credentials come from the SDK's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, …).
import { createReadStream, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseS3Url } from '../lib/contracts/s3-url.js';
import type { S3Client } from '@aws-sdk/client-s3';

/** The AWS SDK, loaded when a copy is first made: ~140 ms and tens of MB the supervisor does not pay unless it copies off the box. */
const sdk = () => import('@aws-sdk/client-s3');

export interface OffsiteOptions {
  /** s3://bucket/optional/prefix */
  url: string;
  /** The service's endpoint (COS: https://cos.<region>.myqcloud.com); default: AWS's for the region. */
  endpoint?: string | undefined;
  region: string;
  /** Path-style addressing (MinIO and most self-hosted stores). */
  pathStyle: boolean;
}

export interface OffsiteCopy {
  url: string;
  at: string;
  objects: number;
  bytes: number;
}

export class OffsiteStore {
  private client: Promise<S3Client> | undefined;
  private readonly bucket: string;
  private readonly prefix: string;

  constructor(private readonly options: OffsiteOptions) {
    const parsed = parseS3Url(options.url);
    if ('error' in parsed) throw new Error(`${options.url}: ${parsed.error}`);
    this.bucket = parsed.bucket;
    this.prefix = parsed.prefix;
  }

  private s3(): Promise<S3Client> {
    const { options } = this;
    this.client ??= sdk().then(({ S3Client }) => new S3Client({
      region: options.region, forcePathStyle: options.pathStyle, ...(options.endpoint ? { endpoint: options.endpoint } : {}), maxAttempts: 3,
      // The SDK's default since 2025 streams uploads as aws-chunked with trailing CRC32s, which not
      // every S3-compatible store understands (s3rver stored the chunk framing as the object's bytes).
      // Checksums only where the API requires them; ours is the sha256 in the object's metadata.
      requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
    }));
    // A load that failed (a file missing mid-upgrade) is tried again at the next copy, not cached.
    this.client.catch(() => { this.client = undefined; });
    return this.client;
  }

  /** The "folder" of a backup, with its trailing slash (so b-1/ never matches b-10/). */
  private folder(id: string): string {
    return `${this.prefix ? `${this.prefix}/` : ''}${id}/`;
  }

  /** Uploads the named files of backups/<id>/ (the manifest last: its presence means the copy is whole). */
  async upload(dir: string, id: string, files: ReadonlyArray<{ name: string; sha256?: string }>): Promise<OffsiteCopy> {
    const [client, { PutObjectCommand }] = await Promise.all([this.s3(), sdk()]);
    let bytes = 0;
    for (const f of files) {
      const path = join(dir, f.name);
      const size = statSync(path).size;
      await client.send(new PutObjectCommand({
        Bucket: this.bucket, Key: this.folder(id) + f.name, Body: createReadStream(path), ContentLength: size,
        ...(f.sha256 ? { Metadata: { sha256: f.sha256 } } : {}),
      }));
      bytes += size;
    }
    return { url: `s3://${this.bucket}/${this.folder(id)}`, at: new Date().toISOString(), objects: files.length, bytes };
  }

  /** Deletes every object of a backup. */
  async remove(id: string): Promise<number> {
    const [client, { DeleteObjectsCommand, ListObjectsV2Command }] = await Promise.all([this.s3(), sdk()]);
    const listed = await client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.folder(id) }));
    const keys = (listed.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (keys.length > 0) await client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: keys } }));
    return keys.length;
  }

  close(): void {
    void this.client?.then((c) => c.destroy(), () => {});
  }
}
