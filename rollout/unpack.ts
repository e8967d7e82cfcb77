// Unpacking a release's .tar.gz safely (zip-slip and friends): every entry vetted before anything
// is written, and the app's directory found inside. Uploads (upload.ts) and local artifacts
// (artifacts.ts) both go through here.
//
// Links are kept (apps ship them: node_modules/.bin), on strict terms that need no file system to
// check: a link's target, walked step by step from where it sits, never leaves the release and
// never passes through another symbolic link (so no chain of links adds up to a way out, whatever
// the order of the entries), no entry is written through a link, and a hard link names a regular
// file of the archive. Sizes and entry counts are counted while the archive streams, and the
// reading stops at the first excess. What comes out has no setuid, setgid or sticky bit and
// nothing writable by everyone.
import { chmodSync, createReadStream, existsSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { isAbsolute, join, posix } from 'node:path';
import * as tar from 'tar';
import { CL_ERR_ARTIFACT_INVALID } from '../lib/errors.js';

const ALLOWED = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);

export interface UnpackLimits {
  /** Bytes of all entries together, as unpacked. */
  maxBytes: number;
  maxEntries: number;
}

/** A release is an app, not a disk image: 1 GiB unpacked and 100,000 entries at most by default. */
export const DEFAULT_UNPACK_LIMITS: UnpackLimits = { maxBytes: 1024 * 1024 * 1024, maxEntries: 100_000 };

/** Names the appliance writes into a release; an archive may not bring its own. */
const RESERVED_NAMES = new Set(['.changelens-artifact.json']);

/**
 * Unpacks a .tar.gz into `dir` (created) after vetting every entry: an absolute path, a `..`, a
 * link that could lead out, a device, or too much refuses the whole archive before anything is
 * written. `label` names the archive in errors.
 */
export async function unpackVetted(file: string, dir: string, label: string, limits: UnpackLimits = DEFAULT_UNPACK_LIMITS): Promise<void> {
  const vetted = await vetEntries(file, label, limits);
  mkdirSync(dir);
  // The extraction reads the file again: it writes only what was vetted, in the same order, and
  // stops at anything else (a file changed in between, or read differently the second time).
  let next = 0;
  let differs: string | null = null;
  try {
    await tar.x({
      file, cwd: dir, strict: true, preservePaths: false, preserveOwner: false,
      filter: (_path, entry) => {
        const e = entry as tar.ReadEntry;
        const expected = vetted[next++];
        const same = expected !== undefined && expected.path === e.path && expected.type === e.type && expected.linkpath === (e.linkpath ?? '');
        if (!same && differs === null) differs = `${e.path}: not the entry that was vetted`;
        return same && differs === null;
      },
    });
  } catch (err) {
    throw new CL_ERR_ARTIFACT_INVALID(`${label}: unpacking failed (${(err as Error).message})`);
  }
  if (differs !== null || next !== vetted.length) throw new CL_ERR_ARTIFACT_INVALID(`${label} refused: ${differs ?? 'the archive read differently the second time'}`);
  chmodSync(dir, 0o755);
  stripModes(dir);
}

interface Seen {
  path: string;
  type: string;
  linkpath: string;
}

/** Every entry, before anything is written: a bad one refuses the whole archive, naming it. */
async function vetEntries(file: string, label: string, limits: UnpackLimits): Promise<Seen[]> {
  const entries: Seen[] = [];
  let bytes = 0;
  let tooMuch: string | null = null;
  try {
    await new Promise<void>((resolve, reject) => {
      const parser = new tar.Parser({
        strict: true,
        onReadEntry: (entry) => {
          entries.push({ path: entry.path, type: entry.type, linkpath: entry.linkpath ?? '' });
          bytes += entry.size ?? 0;
          if (tooMuch === null && entries.length > limits.maxEntries) tooMuch = `more than ${limits.maxEntries} entries (at ${entry.path})`;
          if (tooMuch === null && bytes > limits.maxBytes) tooMuch = `more than ${Math.round(limits.maxBytes / 1024 / 1024)} MB unpacked (at ${entry.path})`;
          entry.resume();
          // Stop reading at once: a bomb is never inflated past the limit.
          if (tooMuch !== null) parser.abort(new Error(tooMuch));
        },
      });
      const input = createReadStream(file);
      input.on('error', reject);
      parser.on('error', reject);
      // Ours (a limit) ends the reading as planned; any other (node-tar's own: a corrupt gzip,
      // a decompression ratio past 1000:1) is a refusal, never a pass on a partial list.
      parser.on('abort', (err: Error) => {
        input.destroy();
        if (tooMuch !== null) resolve();
        else reject(err);
      });
      parser.on('end', resolve);
      input.pipe(parser);
    });
  } catch (err) {
    if (tooMuch === null) throw new CL_ERR_ARTIFACT_INVALID(`${label}: not a readable .tar.gz (${(err as Error).message})`);
  }
  if (tooMuch !== null) throw new CL_ERR_ARTIFACT_INVALID(`${label} refused, nothing was unpacked: ${tooMuch}; a release is limited to ${limits.maxEntries} entries and ${Math.round(limits.maxBytes / 1024 / 1024)} MB unpacked`);
  const problems = entryProblems(entries);
  if (problems.length > 0) throw new CL_ERR_ARTIFACT_INVALID(`${label} refused, nothing was unpacked: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (and ${problems.length - 5} more)` : ''}`);
  return entries;
}

/** What is wrong with a set of entries, each problem naming its entry. */
export function entryProblems(entries: readonly Seen[]): string[] {
  const problems: string[] = [];
  const key = (path: string): string => posix.normalize(path).replace(/\/+$/, '');
  const symlinks = new Set(entries.filter((e) => e.type === 'SymbolicLink').map((e) => key(e.path)));
  /** Files seen so far: a hard link names one that comes before it. */
  const files = new Set<string>();
  for (const e of entries) {
    const path = e.path;
    if (FILE_TYPES.has(e.type)) files.add(key(path));
    // A backslash is part of a name on Linux, a separator elsewhere: never guessed at.
    if (path.includes('\\') || e.linkpath.includes('\\')) {
      problems.push(`${path}: a backslash in a path`);
      continue;
    }
    if (!ALLOWED.has(e.type)) {
      problems.push(`${path}: a ${e.type} entry is not allowed`);
      continue;
    }
    if (isAbsolute(path) || path.startsWith('/')) {
      problems.push(`${path}: an absolute path`);
      continue;
    }
    const parts = path.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.includes('..')) {
      problems.push(`${path}: a path that climbs out with ..`);
      continue;
    }
    if (RESERVED_NAMES.has(parts.at(-1) ?? '')) {
      problems.push(`${path}: a name the appliance writes itself`);
      continue;
    }
    // Written through a link: a directory on its way is one.
    const through = parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/')).find((prefix) => symlinks.has(prefix));
    if (through !== undefined) {
      problems.push(`${path}: written through the link ${through}`);
      continue;
    }
    if (e.type === 'SymbolicLink') {
      const problem = walkLink(parts.slice(0, -1), e.linkpath, symlinks);
      if (problem) problems.push(`${path}: a link to ${e.linkpath}, ${problem}`);
    } else if (e.type === 'Link') {
      const problem = walkLink([], e.linkpath, symlinks);
      if (problem) problems.push(`${path}: a hard link to ${e.linkpath}, ${problem}`);
      else if (!files.has(key(e.linkpath))) problems.push(`${path}: a hard link to ${e.linkpath}, which is not a file earlier in the release`);
    }
  }
  return problems;
}

/** Walks a link's target from `from`, step by step: null when it stays inside and crosses no symbolic link. */
function walkLink(from: string[], linkpath: string, symlinks: ReadonlySet<string>): string | null {
  if (linkpath === '' || isAbsolute(linkpath)) return 'outside the release';
  const at = [...from];
  const steps = linkpath.split('/').filter((p) => p !== '' && p !== '.');
  for (const [i, step] of steps.entries()) {
    if (step === '..') {
      if (at.length === 0) return 'outside the release';
      at.pop();
      continue;
    }
    at.push(step);
    // Through another link (the last step may name one only if it is not one either: no chains).
    if (symlinks.has(at.join('/'))) return i === steps.length - 1 ? 'another link (no chains of links)' : `through the link ${at.join('/')}`;
  }
  return null;
}

/**
 * No setuid, setgid or sticky bit and nothing writable by everyone, on anything unpacked; and all of
 * it readable by others (folders enterable): the release runs as its own user, which owns none of
 * it (releases/ itself is closed to everyone but that user's group).
 */
export function stripModes(dir: string): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stat = lstatSync(path);
    if (stat.isSymbolicLink()) continue;
    const mode = (stat.mode & 0o775) | (stat.isDirectory() ? 0o005 : 0o004);
    if ((stat.mode & 0o7777) !== mode) chmodSync(path, mode);
    if (stat.isDirectory()) stripModes(path);
  }
}

/** The app's directory in an unpacked artifact: `npm pack` and many build tools wrap everything in one top-level directory. */
export function releaseRoot(dir: string): string {
  const entries = readdirSync(dir);
  // lstat: a lone link is not a directory to descend into.
  return entries.length === 1 && lstatSync(join(dir, entries[0]!)).isDirectory() && !existsSync(join(dir, 'package.json')) ? join(dir, entries[0]!) : dir;
}

