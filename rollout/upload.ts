// A release's artifact uploaded over the admin API (from CI): streamed to a temporary file with a
// running sha256 and a size cap (never buffered whole), checked against the sha256 the client sent,
// every entry vetted before anything is unpacked (no absolute paths, no `..`, no link leaving the
// release, no devices: zip-slip), unpacked into a temporary directory, checked for an entry point,
// and renamed to <data>/releases/<version>/. The same version uploaded again is accepted only with
// the same content.
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { isAbsolute, join, normalize, posix } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { resolveArtifactEntry } from '../lib/contracts/releases.js';
import { releaseRoot } from './artifacts.js';
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

const ALLOWED = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);

export async function receiveArtifact(body: Readable, o: { releasesDir: string; version: string; sha256: string; maxBytes: number }): Promise<UploadResult> {
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

    await unpackVetted(file, tmp, `artifact for ${o.version}`);
    const root = releaseRoot(tmp);
    const entry = resolveArtifactEntry(root);
    if ('error' in entry) throw new CL_ERR_ARTIFACT_INVALID(`artifact for ${o.version}: ${entry.error.replace(root, '<archive>')}`);
    writeFileSync(join(root, UPLOAD_MARKER), JSON.stringify({ sha256, bytes, uploadedAt: new Date().toISOString() }) + '\n');
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

/**
 * Unpacks a .tar.gz into `dir` (created) after vetting every entry: an absolute path, a `..`, a link
 * leaving the archive or a device refuses the whole archive before anything is written. `label`
 * names the archive in errors.
 */
export async function unpackVetted(file: string, dir: string, label: string): Promise<void> {
  await vetEntries(file, label);
  mkdirSync(dir);
  await tar.x({ file, cwd: dir, strict: true, preservePaths: false, preserveOwner: false });
}

/** Every entry, before anything is written: a bad one refuses the whole archive, naming it. */
async function vetEntries(file: string, label: string): Promise<void> {
  const problems: string[] = [];
  try {
    await tar.t({
      file,
      strict: true,
      onReadEntry: (entry) => {
        const path = entry.path;
        if (!ALLOWED.has(entry.type)) problems.push(`${path}: a ${entry.type} entry is not allowed`);
        else if (isAbsolute(path) || path.startsWith('/')) problems.push(`${path}: an absolute path`);
        else if (path.split(/[\\/]/).includes('..')) problems.push(`${path}: a path that climbs out with ..`);
        else if ((entry.type === 'SymbolicLink' || entry.type === 'Link') && !staysInside(path, entry.linkpath ?? '', entry.type)) problems.push(`${path}: a link to ${entry.linkpath}, outside the release`);
      },
    });
  } catch (err) {
    throw new CL_ERR_ARTIFACT_INVALID(`${label}: not a readable .tar.gz (${(err as Error).message})`);
  }
  if (problems.length > 0) throw new CL_ERR_ARTIFACT_INVALID(`${label} refused, nothing was unpacked: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (and ${problems.length - 5} more)` : ''}`);
}

/** A symlink resolves against its own directory, a hard link against the archive's root. */
function staysInside(path: string, linkpath: string, type: 'SymbolicLink' | 'Link'): boolean {
  if (linkpath === '' || isAbsolute(linkpath)) return false;
  const resolved = normalize(type === 'SymbolicLink' ? posix.join(posix.dirname(path), linkpath) : linkpath);
  return resolved !== '..' && !resolved.startsWith('../') && !isAbsolute(resolved);
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

