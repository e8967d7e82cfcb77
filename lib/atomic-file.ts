// Writing a file so that a crash or power loss leaves either the old content or the new, never a
// torn or empty file: write a temp file, fsync it, rename it over, fsync the directory.
import { randomBytes } from 'node:crypto';
import { closeSync, fchownSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export function writeFileAtomic(path: string, content: string, mode: number, owner?: { uid: number; gid: number }): void {
  // An unguessable name, created exclusively: in a folder another user can write (the proxy's), a
  // link planted at the temp name is never written through (O_EXCL does not follow it).
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, content);
    if (owner) fchownSync(fd, owner.uid, owner.gid);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
