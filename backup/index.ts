// backup/: scheduled and on-demand backups of Postgres and Redis, their manifests, retention,
// verification and restore. The supervisor runs it; everything else reads its summary.
export { BackupService, type BackupEvent } from './service.js';
export type { BackupEntry, BackupReason, Manifest, RestoreResult, Verification } from './manifest.js';
export type { BackupDriver } from './kinds/driver.js';
export { appDataOnly, APPLIANCE_TABLES, PostgresDriver } from './kinds/postgres.js';
export { RedisDriver } from './kinds/redis.js';
export { OffsiteStore, type OffsiteCopy, type OffsiteOptions } from './offsite.js';
export { backupKey, decryptFile, encryptFile, type BackupKey } from './encryption.js';
export { backupsToDelete, type BackupKind, type RetentionPolicy } from './retention.js';
export { isOverdue, nextRun, previousRun, startSchedules, type ScheduleName, type Schedules } from './schedule.js';
