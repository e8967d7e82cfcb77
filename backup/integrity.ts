// A backup's integrity and confidentiality: every stored file checked against the manifest (size
// and sha256) before any use, decrypted into a private temp folder for that use only, and a fresh
// backup's files replaced by their encrypted forms (with the secrets, which travel encrypted only).
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { decryptFile, encryptFile, ENCRYPTION_ALGORITHM, type BackupKey } from './encryption.js';
import { describeFile, manifestAuthentic, type BackupEntry, type BackupFile, type Check, type Manifest } from './manifest.js';
import type { BackupKind } from './retention.js';
import { sha256Of } from './tools.js';

/** A backup's files in plain form (decrypted copies when it is encrypted). */
export type PlainFiles = Partial<Record<BackupKind, string>>;

/**
 * The checks every use of a backup starts with — each stored file's size and sha256, decryption
 * when encrypted, then `inspect` of each plain file (the dump's table of contents) — then `fn`
 * with the files in plain form (null when a check failed). Decrypted copies live in a private temp
 * folder inside `scratchDir` for the duration of `fn` only.
 */
export async function withPlainFiles<T>(
  entry: BackupEntry, dir: string, scratchDir: string, key: BackupKey | undefined, checks: Check[],
  inspect: (kind: BackupKind, file: string) => Promise<Check[]>, fn: (plain: PlainFiles | null) => Promise<T>,
): Promise<T> {
  // First the manifest itself: it vouches for every file below, so it must be this appliance's.
  if (key) {
    const ok = manifestAuthentic(entry, key.macKey);
    checks.push({
      name: 'manifest', ok,
      detail: ok ? 'signed with this appliance\'s backup key'
        : entry.mac ? 'its signature does not match: altered, or taken with another backup key (CHANGELENS_BACKUP_KEY)'
        : 'unsigned: planted, or taken before backups were signed (2026-11-30); take a new backup',
    });
    if (!ok) return fn(null);
  }
  for (const f of entry.files) {
    const path = join(dir, f.name);
    if (!existsSync(path)) {
      checks.push({ name: f.name, ok: false, detail: 'missing' });
      continue;
    }
    const bytes = statSync(path).size;
    const sha = await sha256Of(path);
    const ok = bytes === f.bytes && sha === f.sha256;
    checks.push({ name: f.name, ok, detail: ok ? `sha256 ${sha.slice(0, 12)}…, ${bytes} bytes` : `sha256 ${sha.slice(0, 12)}… (${bytes} bytes) does not match the manifest's ${f.sha256.slice(0, 12)}… (${f.bytes} bytes)` });
  }
  if (!checks.every((c) => c.ok)) return fn(null);
  let tmp: string | null = null;
  try {
    const plain: PlainFiles = {};
    if (entry.encryption) {
      if (!key || (key.id !== entry.encryption.keyId && key.legacyId !== entry.encryption.keyId)) {
        checks.push({ name: 'decrypt', ok: false, detail: key ? `encrypted with key ${entry.encryption.keyId}, this appliance's key is ${key.id} (set CHANGELENS_BACKUP_KEY to the key it was taken with)` : `encrypted with key ${entry.encryption.keyId}; set CHANGELENS_BACKUP_KEY (and CHANGELENS_BACKUP_ENCRYPT=1) to read it` });
        return await fn(null);
      }
      tmp = mkdtempSync(join(scratchDir, '.plain-'));
      for (const f of entry.files) {
        if (f.kind === 'secrets') continue;
        const out = join(tmp, f.name.replace(/\.enc$/, ''));
        try {
          await decryptFile(join(dir, f.name), out, key);
        } catch (err) {
          checks.push({ name: 'decrypt', ok: false, detail: (err as Error).message });
          return await fn(null);
        }
        plain[f.kind as BackupKind] = out;
      }
      checks.push({ name: 'decrypt', ok: true, detail: `${ENCRYPTION_ALGORITHM}, key ${key.id}` });
    } else {
      for (const f of entry.files) if (f.kind !== 'secrets') plain[f.kind as BackupKind] = join(dir, f.name);
    }
    for (const [kind, file] of Object.entries(plain) as Array<[BackupKind, string]>) checks.push(...await inspect(kind, file));
    return await fn(checks.every((c) => c.ok) ? plain : null);
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

/** Replaces each file of a fresh backup by its encrypted form, and adds the secrets (encrypted only). */
export async function encryptAll(dir: string, manifest: Manifest, encryption: { key: BackupKey; secretsFile: string }): Promise<void> {
  const sources: Array<{ path: string; kind: BackupFile['kind']; remove: boolean }> = manifest.files.map((f) => ({ path: join(dir, f.name), kind: f.kind, remove: true }));
  if (existsSync(encryption.secretsFile)) sources.push({ path: encryption.secretsFile, kind: 'secrets', remove: false });
  const files: BackupFile[] = [];
  for (const src of sources) {
    const out = join(dir, `${src.path.split('/').pop()}.enc`);
    await encryptFile(src.path, out, encryption.key);
    if (src.remove) rmSync(src.path);
    files.push(await describeFile(out, src.kind));
  }
  manifest.files = files;
  manifest.encryption = { algorithm: ENCRYPTION_ALGORITHM, keyId: encryption.key.id };
}
