// The backups folder (<data>/backups): one directory per backup, written under .partial-<id>/ and
// renamed whole when complete, so a crash or a failure never leaves something that looks like a
// backup. Beside each manifest: its last verification and its off-box copy.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { CL_ERR_NOT_FOUND } from '../lib/errors.js';
import { MANIFEST, type BackupEntry, type Manifest, type Verification } from './manifest.js';
import type { OffsiteCopy } from './offsite.js';
import type { BackupKind } from './retention.js';

const VERIFICATION = 'verification.json';
const OFFSITE = 'offsite.json';
const PARTIAL = '.partial-';

export class LocalStore {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
  }

  /** Every complete backup, newest first. */
  list(): BackupEntry[] {
    const entries: BackupEntry[] = [];
    for (const name of readdirSync(this.dir)) {
      if (name.startsWith('.')) continue;
      const manifest = readJson<Manifest>(join(this.dir, name, MANIFEST));
      if (!manifest || manifest.id !== name) continue;
      entries.push({ ...manifest, totalBytes: manifest.files.reduce((n, f) => n + f.bytes, 0), verification: readJson<Verification>(join(this.dir, name, VERIFICATION)), offsite: readJson<OffsiteCopy>(join(this.dir, name, OFFSITE)) });
    }
    return entries.sort((a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt) || (a.id < b.id ? 1 : -1));
  }

  get(id: string): BackupEntry {
    const entry = /^[A-Za-z0-9+_-]{1,100}$/.test(id) ? this.list().find((b) => b.id === id) : undefined;
    if (!entry) throw new CL_ERR_NOT_FOUND(`backup ${JSON.stringify(id)}`);
    return entry;
  }

  /** The folder of a complete backup. */
  path(id: string): string {
    return join(this.dir, id);
  }

  /** A new id: the start time and what it holds, unique in the folder. */
  newId(at: number, kinds: readonly BackupKind[]): string {
    const stamp = new Date(at).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
    const base = `${stamp}-${kinds.length === 2 ? 'full' : kinds[0]}`;
    let id = base;
    for (let n = 2; existsSync(join(this.dir, id)); n++) id = `${base}-${n}`;
    return id;
  }

  /** Creates the folder a backup is written into; only `commit` makes it a backup. */
  begin(id: string): string {
    mkdirSync(this.partial(id), { mode: 0o750 });
    return this.partial(id);
  }

  /** Deletes what a failed run wrote. */
  discard(id: string): void {
    rmSync(this.partial(id), { recursive: true, force: true });
  }

  private partial(id: string): string {
    return join(this.dir, PARTIAL + id);
  }

  /** Leftovers of runs that died: never backups, always safe to delete. */
  removeStalePartials(): void {
    for (const name of readdirSync(this.dir)) {
      if (name.startsWith(PARTIAL)) rmSync(join(this.dir, name), { recursive: true, force: true });
    }
  }

  /** Writes the manifest last, then renames the folder into place: the backup exists from now on. */
  commit(manifest: Manifest): void {
    const partial = this.partial(manifest.id);
    writeFileAtomic(join(partial, MANIFEST), JSON.stringify(manifest, null, 2) + '\n', 0o640);
    renameSync(partial, this.path(manifest.id));
  }

  writeVerification(v: Verification): void {
    writeFileAtomic(join(this.dir, v.id, VERIFICATION), JSON.stringify(v, null, 2) + '\n', 0o640);
  }

  writeOffsite(id: string, copy: OffsiteCopy): void {
    writeFileAtomic(join(this.dir, id, OFFSITE), JSON.stringify(copy, null, 2) + '\n', 0o640);
  }

  remove(id: string): void {
    rmSync(join(this.dir, id), { recursive: true, force: true });
  }

  freeBytes(): number {
    const fs = statfsSync(this.dir);
    return fs.bavail * fs.bsize;
  }
}

function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}
