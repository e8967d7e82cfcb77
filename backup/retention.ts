// Which backups a successful run may delete. Pure, so its promises are property-tested: the newest
// `keep` good backups of each kind stay, the newest good one of each kind stays whatever its age,
// and nothing else is touched by age unless it is older than `maxAgeDays`.
export type BackupKind = 'postgres' | 'redis';

export interface RetainedBackup {
  id: string;
  /** When the backup was taken (ms since the epoch). */
  at: number;
  kinds: readonly BackupKind[];
}

export interface RetentionPolicy {
  /** Good backups kept per kind, newest first. */
  keep: number;
  /** Older backups go, except the newest of each kind. 0 = no age limit. */
  maxAgeDays: number;
}

const DAY_MS = 86_400_000;

/** The ids to delete, oldest first. Only complete, good backups should be passed in. */
export function backupsToDelete(backups: readonly RetainedBackup[], policy: RetentionPolicy, now: number): string[] {
  const newestFirst = [...backups].sort((a, b) => b.at - a.at || (a.id < b.id ? 1 : -1));
  const kept = new Set<string>();
  const newestOfKind = new Set<string>();
  for (const kind of ['postgres', 'redis'] as const) {
    const ofKind = newestFirst.filter((b) => b.kinds.includes(kind));
    if (ofKind[0]) newestOfKind.add(ofKind[0].id);
    for (const b of ofKind.slice(0, policy.keep)) kept.add(b.id);
  }
  const tooOld = (b: RetainedBackup): boolean => policy.maxAgeDays > 0 && now - b.at > policy.maxAgeDays * DAY_MS;
  return newestFirst
    .filter((b) => !newestOfKind.has(b.id) && (!kept.has(b.id) || tooOld(b)))
    .reverse()
    .map((b) => b.id);
}
