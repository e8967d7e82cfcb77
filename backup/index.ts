// backup/: scheduled and on-demand backups of Postgres and Redis, their manifests, retention,
// verification and restore. The supervisor runs it; everything else reads its summary.
export { BackupService, appDataOnly, APPLIANCE_TABLES, type BackupEntry, type BackupEvent, type BackupReason, type Manifest, type RestoreResult, type Verification } from './service.js';
export { OffsiteStore, type OffsiteCopy, type OffsiteOptions } from './offsite.js';
export { backupKey, decryptFile, encryptFile, type BackupKey } from './encryption.js';
export { backupsToDelete, type BackupKind, type RetentionPolicy } from './retention.js';
export { isOverdue, nextRun, previousRun, startSchedules, type ScheduleName, type Schedules } from './schedule.js';
