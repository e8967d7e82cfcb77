// What a backup is on disk: its manifest (files with sizes and sha256, server versions, what the
// kinds recorded), the verification and restore results, and how a stored file is described.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { statSync } from 'node:fs';
import type { OffsiteCopy } from './offsite.js';
import type { BackupKind } from './retention.js';
import { sha256Of } from './tools.js';

export type BackupReason = 'scheduled' | 'manual' | 'pre-deploy';

export interface BackupFile {
  name: string;
  /** secrets: state/secrets.json, only ever stored encrypted. */
  kind: BackupKind | 'secrets';
  bytes: number;
  sha256: string;
}

export interface Manifest {
  schemaVersion: 1;
  id: string;
  kinds: BackupKind[];
  reason: BackupReason;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  files: BackupFile[];
  servers: { postgres?: string; pgDump?: string; redis?: string };
  /** Set when the files are encrypted at rest; keyId names the key without revealing it. */
  encryption?: { algorithm: string; keyId: string };
  /** Postgres: the tables in the dump and the schema migrations applied when it was taken. */
  database?: { name: string; tables: string[]; migrations: number[] };
  redis?: { keys: number };
  /**
   * HMAC-SHA256 of everything above, with a key derived from the backup key: a manifest (and so
   * every file it vouches for by sha256) written by anyone without that key is refused.
   */
  mac?: string;
}

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export interface Verification {
  id: string;
  at: string;
  ok: boolean;
  durationMs: number;
  checks: Check[];
}

export interface BackupEntry extends Manifest {
  totalBytes: number;
  verification: Verification | null;
  /** The off-box copy, when one was made. */
  offsite: OffsiteCopy | null;
}

export interface RestoreResult {
  id: string;
  kinds: BackupKind[];
  durationMs: number;
  checks: Check[];
  /** Postgres tables restored, with their row counts after the restore. */
  tables: Record<string, number>;
  redisKeys: number | null;
}

export const MANIFEST = 'manifest.json';

/** Signs a finished manifest (sets `mac`). */
export function signManifest(manifest: Manifest, macKey: Buffer): void {
  manifest.mac = macOf(manifest, macKey);
}

/** Whether a manifest (or a listed entry, whose extra fields are not signed) carries a valid signature. */
export function manifestAuthentic(entry: Manifest & Partial<Pick<BackupEntry, 'totalBytes' | 'verification' | 'offsite'>>, macKey: Buffer): boolean {
  if (typeof entry.mac !== 'string' || !/^[0-9a-f]{64}$/.test(entry.mac)) return false;
  const { totalBytes: _t, verification: _v, offsite: _o, ...manifest } = entry;
  return timingSafeEqual(Buffer.from(entry.mac, 'hex'), Buffer.from(macOf(manifest, macKey), 'hex'));
}

function macOf(manifest: Manifest, macKey: Buffer): string {
  const { mac: _mac, ...signed } = manifest;
  return createHmac('sha256', macKey).update(canonical(signed)).digest('hex');
}

/** JSON with object keys sorted at every level: the same manifest always signs the same. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value).sort().filter((k) => (value as Record<string, unknown>)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export async function describeFile(path: string, kind: BackupFile['kind']): Promise<BackupFile> {
  return { name: path.split('/').pop()!, kind, bytes: statSync(path).size, sha256: await sha256Of(path) };
}
