// What the backup service asks of each kind of data it backs up. Postgres and Redis implement it
// (kinds/postgres.ts, kinds/redis.ts); the service orchestrates — the one-at-a-time queue, the
// partial folder, encryption, retention, the off-box copy, events — and never knows which is which.
import type { BackupEntry, Check, Manifest } from '../manifest.js';
import type { BackupKind } from '../retention.js';

export interface BackupDriver {
  readonly kind: BackupKind;
  /** An upper bound of the next backup's size, for the free-space check. */
  estimateBytes(): Promise<number>;
  /** Writes this kind's file into `dir` and records it (file, server version, contents) in the manifest. */
  take(dir: string, manifest: Manifest): Promise<void>;
  /** Checks of the plain file that need no server (the dump's table of contents); [] when none. */
  inspect(entry: BackupEntry, file: string): Promise<Check[]>;
  /** Loads the plain file into a scratch copy and compares it with the manifest. */
  verify(entry: BackupEntry, file: string): Promise<Check>;
  /** Why the backup must not be restored over the live data now; [] when it may. */
  refuseRestore(entry: BackupEntry): Promise<Check[]>;
  /** Replaces the live data with the file's. */
  restore(entry: BackupEntry, file: string): Promise<{ tables?: Record<string, number>; redisKeys?: number }>;
}
