// Unpacking a release's .tar.gz safely (zip-slip and friends): every entry vetted before anything
// is written, and the app's directory found inside. Uploads (upload.ts) and local artifacts
// (artifacts.ts) both go through here.
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join, normalize, posix } from 'node:path';
import * as tar from 'tar';
import { CL_ERR_ARTIFACT_INVALID } from '../lib/errors.js';

const ALLOWED = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);

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

/** The app's directory in an unpacked artifact: `npm pack` and many build tools wrap everything in one top-level directory. */
export function releaseRoot(dir: string): string {
  const entries = readdirSync(dir);
  return entries.length === 1 && statSync(join(dir, entries[0]!)).isDirectory() && !existsSync(join(dir, 'package.json')) ? join(dir, entries[0]!) : dir;
}
