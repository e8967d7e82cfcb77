// Bringing a release's artifact into the data dir: a directory is copied and a .tar.gz unpacked
// into <data>/releases/<version>/, through a temporary directory renamed into place, so a release
// never points at something half-copied or at a path outside the appliance that could change.
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { BUILTIN_ARTIFACT, resolveArtifactEntry } from '../lib/contracts/releases.js';
import { CL_ERR_ARTIFACT_INVALID } from '../lib/errors.js';
import { releaseRoot, stripModes, unpackVetted } from './unpack.js';

/** Imports `source` (absolute path) for `version`; returns the release's artifact directory. */
export async function importArtifact(source: string, releasesDir: string, version: string): Promise<string> {
  if (source === BUILTIN_ARTIFACT) return BUILTIN_ARTIFACT;
  if (!isAbsolute(source)) throw new CL_ERR_ARTIFACT_INVALID(`artifact ${source}: expected an absolute path`);
  if (!existsSync(source)) throw new CL_ERR_ARTIFACT_INVALID(`artifact ${source}: no such file or directory`);
  const target = join(releasesDir, version);
  const tmp = `${target}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(releasesDir, { recursive: true });
  try {
    if (statSync(source).isDirectory()) {
      cpSync(source, tmp, { recursive: true, filter: (src) => !src.includes('/.git/') && !src.endsWith('/.git') });
    } else if (/\.(tar\.gz|tgz)$/.test(source)) {
      // The same vetting as an upload's: no absolute paths, no .., no link out of the release.
      await unpackVetted(source, tmp, `artifact ${source}`);
    } else {
      throw new CL_ERR_ARTIFACT_INVALID(`artifact ${source}: expected a directory or a .tar.gz`);
    }
    // Whatever modes it came with: readable by the release's user, nothing setuid or world-writable.
    chmodSync(tmp, 0o755);
    stripModes(tmp);
    const root = releaseRoot(tmp);
    const entry = resolveArtifactEntry(root);
    if ('error' in entry) throw new CL_ERR_ARTIFACT_INVALID(entry.error.replace(root, source));
    rmSync(target, { recursive: true, force: true });
    renameSync(root, target);
    return target;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Keeps the newest `keep` release directories in releases/ and every protected one (the active and
 * last_good releases, a running deployment's); removes the rest. Returns what it removed.
 */
export function pruneReleaseDirs(releasesDir: string, keep: number, protectedDirs: ReadonlySet<string>): string[] {
  if (!existsSync(releasesDir)) return [];
  const dirs = readdirSync(releasesDir)
    .filter((name) => !name.startsWith('.') && !name.includes('.tmp-'))
    .map((name) => join(releasesDir, name))
    .filter((dir) => statSync(dir).isDirectory())
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  const removed: string[] = [];
  for (const dir of dirs.slice(keep)) {
    if (protectedDirs.has(dir)) continue;
    rmSync(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}
