// A release's artifact uploaded over the admin API (from CI): streamed to a temporary file with a
// running sha256 and a size cap (never buffered whole), checked against the sha256 the client sent,
// every entry vetted before anything is unpacked (no absolute paths, no `..`, no link leaving the
// release, no devices: zip-slip), unpacked into a temporary directory, checked for an entry point,
// and renamed to <data>/releases/<version>/. The same version uploaded again is accepted only with
// the same content.
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { resolveArtifactEntry } from '../lib/contracts/releases.js';
import { releaseRoot, unpackVetted, type UnpackLimits } from './unpack.js';
import { CL_ERR_ARTIFACT_INVALID, CL_ERR_RELEASE_CONFLICT } from '../lib/errors.js';

/** Written beside an uploaded release: what was uploaded, to tell a repeat from a conflict. */
export const UPLOAD_MARKER = '.changelens-artifact.json';

export interface UploadResult {
  version: string;
  dir: string;
  sha256: string;
  bytes: number;
  /** The same content was there already. */
  unchanged: boolean;
}

export async function receiveArtifact(body: Readable, o: { releasesDir: string; version: string; sha256: string; maxBytes: number; unpackLimits?: UnpackLimits }): Promise<UploadResult> {
  const target = join(o.releasesDir, o.version);
  mkdirSync(o.releasesDir, { recursive: true });
  const tag = randomBytes(4).toString('hex');
  const file = join(o.releasesDir, `.upload-${o.version}-${tag}.tgz`);
  const tmp = join(o.releasesDir, `.unpack-${o.version}-${tag}`);
  try {
    const hash = createHash('sha256');
    let bytes = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        bytes += chunk.length;
        if (bytes > o.maxBytes) return done(new CL_ERR_ARTIFACT_INVALID(`artifact for ${o.version}: larger than the limit of ${o.maxBytes} bytes (CHANGELENS_ARTIFACT_MAX_MB)`));
        hash.update(chunk);
        done(null, chunk);
      },
    });
    await pipeline(body, meter, createWriteStream(file, { mode: 0o600 }));
    const sha256 = hash.digest('hex');
    if (sha256 !== o.sha256.toLowerCase()) throw new CL_ERR_ARTIFACT_INVALID(`artifact for ${o.version}: sha256 ${sha256} of what arrived is not the ${o.sha256} that was sent (truncated or altered on the way)`);

    const previous = readMarker(target);
    if (previous) {
      if (previous.sha256 !== sha256) throw new CL_ERR_RELEASE_CONFLICT(o.version, `artifact (sha256 ${previous.sha256}, uploaded ${previous.uploadedAt})`);
      return { version: o.version, dir: target, sha256, bytes, unchanged: true };
    }
    if (existsSync(target)) throw new CL_ERR_RELEASE_CONFLICT(o.version, 'artifact (one that was not uploaded)');

    await unpackVetted(file, tmp, `artifact for ${o.version}`, o.unpackLimits);
    const root = releaseRoot(tmp);
    const entry = resolveArtifactEntry(root);
    if ('error' in entry) throw new CL_ERR_ARTIFACT_INVALID(`artifact for ${o.version}: ${entry.error.replace(root, '<archive>')}`);
    // wx: created here or not at all — never written through whatever the archive put at that name.
    writeFileSync(join(root, UPLOAD_MARKER), JSON.stringify({ sha256, bytes, uploadedAt: new Date().toISOString() }) + '\n', { flag: 'wx' });
    renameSync(root, target);
    return { version: o.version, dir: target, sha256, bytes, unchanged: false };
  } catch (err) {
    // A body that broke off mid-stream is the client's problem, said plainly.
    if ((err as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') throw new CL_ERR_ARTIFACT_INVALID(`artifact for ${o.version}: the upload ended early`);
    throw err;
  } finally {
    rmSync(file, { force: true });
    rmSync(tmp, { recursive: true, force: true });
  }
}

function readMarker(dir: string): { sha256: string; uploadedAt: string } | null {
  try {
    return JSON.parse(readFileSync(join(dir, UPLOAD_MARKER), 'utf8')) as { sha256: string; uploadedAt: string };
  } catch {
    return null;
  }
}

/** The uploaded artifact of a version, or null when none was uploaded. */
export function uploadedArtifact(releasesDir: string, version: string): string | null {
  const dir = join(releasesDir, version);
  return readMarker(dir) ? dir : null;
}

