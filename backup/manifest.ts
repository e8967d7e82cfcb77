// What a backup is on disk: its manifest (files with sizes and sha256, server versions, what the
// kinds recorded), the verification and restore results, and how a stored file is described.
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

export async function describeFile(path: string, kind: BackupFile['kind']): Promise<BackupFile> {
  return { name: path.split('/').pop()!, kind, bytes: statSync(path).size, sha256: await sha256Of(path) };
}
