// Encryption at rest of backup files: AES-256-GCM, streamed, one random IV per file, the tag at
// the end. File layout: "CLBKENC1" | IV (12 bytes) | ciphertext | tag (16 bytes). The key is
// derived from the backup key in the secrets (or CHANGELENS_BACKUP_KEY); its id (a keyed hash of
// the derived key, not the key) is recorded in the manifest so a wrong key is named, not guessed at.
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, openSync, readSync, closeSync, statSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';

const MAGIC = Buffer.from('CLBKENC1');
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const ENCRYPTION_ALGORITHM = 'aes-256-gcm';

export interface BackupKey {
  key: Buffer;
  /** Names the key in manifests: a keyed hash, so equal ids say nothing about keys elsewhere. */
  id: string;
  /** The id manifests written before 2026-11-30 carry (an unsalted hash): still recognised. */
  legacyId: string;
  /** Authenticates manifests (manifest.ts): a planted or altered backup is refused. */
  macKey: Buffer;
}

export function backupKey(secret: string): BackupKey {
  const key = createHash('sha256').update(`changelens-backup\0${secret}`).digest();
  return {
    key,
    id: createHmac('sha256', key).update('changelens backup key id v2').digest('hex').slice(0, 16),
    legacyId: createHash('sha256').update(key).digest('hex').slice(0, 16),
    macKey: createHmac('sha256', key).update('changelens backup manifest v1').digest(),
  };
}

export async function encryptFile(plain: string, encrypted: string, k: BackupKey): Promise<void> {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(ENCRYPTION_ALGORITHM, k.key, iv);
  const out = createWriteStream(encrypted, { mode: 0o600 });
  out.write(Buffer.concat([MAGIC, iv]));
  await pipeline(createReadStream(plain), cipher, out, { end: false });
  await new Promise<void>((resolve, reject) => out.end(cipher.getAuthTag(), () => resolve()).once('error', reject));
}

/** Decrypts to `plain`; rejects (and leaves `plain` for the caller to remove) when the tag does not match. */
export async function decryptFile(encrypted: string, plain: string, k: BackupKey): Promise<void> {
  const size = statSync(encrypted).size;
  if (size < MAGIC.length + IV_BYTES + TAG_BYTES) throw new Error(`${encrypted}: too short to be an encrypted backup file`);
  const head = Buffer.alloc(MAGIC.length + IV_BYTES);
  const tag = Buffer.alloc(TAG_BYTES);
  const fd = openSync(encrypted, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
    readSync(fd, tag, 0, TAG_BYTES, size - TAG_BYTES);
  } finally {
    closeSync(fd);
  }
  if (!head.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error(`${encrypted}: not an encrypted backup file`);
  const decipher = createDecipheriv(ENCRYPTION_ALGORITHM, k.key, head.subarray(MAGIC.length));
  decipher.setAuthTag(tag);
  try {
    await pipeline(createReadStream(encrypted, { start: head.length, end: size - TAG_BYTES - 1 }), decipher, createWriteStream(plain, { mode: 0o600 }));
  } catch (err) {
    throw new Error(`cannot decrypt ${encrypted.split('/').pop()}: ${(err as Error).message.includes('authenticate') ? 'the key is wrong or the file was altered' : (err as Error).message}`);
  }
}
