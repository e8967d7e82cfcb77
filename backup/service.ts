// Backups of the appliance's Postgres and Redis: taken, verified, listed, pruned and restored.
// It runs in the supervisor, which owns the services' binaries, credentials and processes.
//
// A backup is a directory backups/<id>/ with its files and a manifest (sizes, sha256, server
// versions, duration). It is written under backups/.partial-<id>/ and renamed whole when complete,
// so a crash or a failure never leaves something that looks like a backup; retention runs only
// after a good run, so a failing run never deletes an older good backup. One operation at a time.
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statfsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { createClient, RESP_TYPES } from '@redis/client';
import pg from 'pg';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { CL_ERR_BACKUP_FAILED, CL_ERR_BACKUP_INVALID, CL_ERR_NOT_FOUND } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { createRedisClient } from '../lib/redis.js';
import { backupsToDelete, type BackupKind, type RetentionPolicy } from './retention.js';
import type { OffsiteCopy, OffsiteStore } from './offsite.js';
import { decryptFile, encryptFile, ENCRYPTION_ALGORITHM, type BackupKey } from './encryption.js';
import { libpqTarget, pgTool, runTool, sha256Of, toBackground } from './tools.js';

/** A backup's files in plain form (decrypted copies when it is encrypted). */
type PlainFiles = Partial<Record<BackupKind, string>>;

type ScratchRedis = ReturnType<typeof scratchClient>;
const scratchClient = (path: string) => createClient({ socket: { path, reconnectStrategy: false, connectTimeout: 2_000 } });

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

export interface BackupServiceOptions {
  /** <data>/backups */
  dir: string;
  databaseUrl: string;
  redisUrl: string;
  /** Embedded Redis: its data dir (where BGSAVE writes dump.rdb) and the redis-server binary. Null: Redis is external and not backed up. */
  embeddedRedis: { dataDir: string; server: string } | null;
  /** Where pg_dump and pg_restore are (undefined: PATH). */
  pgBinDir: string | undefined;
  policy: RetentionPolicy;
  minFreeMb: number;
  /** Where each good backup is copied off the box (null: nowhere). */
  offsite?: OffsiteStore | null;
  /** The backup key: with `encrypt`, every file is encrypted at rest and state/secrets.json goes along (encrypted); either way it reads encrypted backups. */
  encryption?: { key: BackupKey; secretsFile: string; encrypt: boolean } | null;
  log: Logger;
  /** Called for every run, verification and restore, good or failed (audit log, alert hooks). */
  onEvent?: (event: BackupEvent) => void | Promise<void>;
  now?: () => number;
}

export interface BackupEvent {
  type: 'backup' | 'backup_verify' | 'backup_restore' | 'backup_offsite';
  id: string | null;
  ok: boolean;
  error?: string;
  details: Record<string, unknown>;
}

/**
 * The appliance's own tables: a restore brings back the app's data, never the release history,
 * the deployments or the audit log (a restore is itself an audited event), nor the record of
 * applied migrations. Their indexes and constraints are named after them (checked by a test).
 */
export const APPLIANCE_TABLES = ['schema_migrations', 'releases', 'pointers', 'deployments', 'verdicts', 'deployment_buckets', 'audit_events'] as const;

const MANIFEST = 'manifest.json';
const VERIFICATION = 'verification.json';
const OFFSITE = 'offsite.json';
const PG_FILE = 'postgres.dump';
const REDIS_FILE = 'redis.rdb';
const PARTIAL = '.partial-';
const MB = 1024 * 1024;
const BGSAVE_TIMEOUT_MS = 10 * 60_000;
const TOOL_TIMEOUT_MS = 60 * 60_000;
/**
 * zlib level of pg_dump: 1 costs a fraction of the default 6's CPU (which the live services need on
 * a small box) for a dump a little larger (bench:backup).
 */
const PG_DUMP_COMPRESSION = 1;
const DUMP_APP_NAME = 'changelens-pg_dump';

export class BackupService {
  private tail: Promise<unknown> = Promise.resolve();
  private running: string | null = null;
  private readonly now: () => number;

  constructor(private readonly options: BackupServiceOptions) {
    this.now = options.now ?? Date.now;
    mkdirSync(options.dir, { recursive: true, mode: 0o750 });
  }

  /** What can be backed up here: Redis only when it is ours (a managed Redis has its own backups). */
  get kinds(): BackupKind[] {
    return this.options.embeddedRedis ? ['postgres', 'redis'] : ['postgres'];
  }

  /** What runs now ("backup", "verify <id>", "restore <id>"), or null. */
  get busy(): string | null {
    return this.running;
  }

  list(): BackupEntry[] {
    const entries: BackupEntry[] = [];
    for (const name of readdirSync(this.options.dir)) {
      if (name.startsWith('.')) continue;
      const manifest = readJson<Manifest>(join(this.options.dir, name, MANIFEST));
      if (!manifest || manifest.id !== name) continue;
      entries.push({ ...manifest, totalBytes: manifest.files.reduce((n, f) => n + f.bytes, 0), verification: readJson<Verification>(join(this.options.dir, name, VERIFICATION)), offsite: readJson<OffsiteCopy>(join(this.options.dir, name, OFFSITE)) });
    }
    return entries.sort((a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt) || (a.id < b.id ? 1 : -1));
  }

  get(id: string): BackupEntry {
    const entry = /^[A-Za-z0-9+_-]{1,100}$/.test(id) ? this.list().find((b) => b.id === id) : undefined;
    if (!entry) throw new CL_ERR_NOT_FOUND(`backup ${JSON.stringify(id)}`);
    return entry;
  }

  /** Takes a backup of `kinds` (default: all this appliance can back up), then applies retention. */
  backup(kinds: readonly BackupKind[] = this.kinds, reason: BackupReason = 'manual'): Promise<Manifest> {
    return this.serially('backup', async () => {
      const wanted = this.kinds.filter((k) => kinds.includes(k));
      if (wanted.length === 0) throw new CL_ERR_BACKUP_FAILED(`${kinds.join(', ')}: Redis is external (REDIS_URL); back it up with its provider`);
      const started = this.now();
      const id = this.newId(started, wanted);
      const partial = join(this.options.dir, PARTIAL + id);
      try {
        this.removeStalePartials();
        await this.checkFreeSpace(wanted);
        mkdirSync(partial, { mode: 0o750 });
        const manifest: Manifest = { schemaVersion: 1, id, kinds: wanted, reason, startedAt: new Date(started).toISOString(), finishedAt: '', durationMs: 0, files: [], servers: {} };
        if (wanted.includes('postgres')) await this.dumpPostgres(partial, manifest);
        if (wanted.includes('redis')) await this.snapshotRedis(partial, manifest);
        if (this.options.encryption?.encrypt) await this.encryptAll(partial, manifest, this.options.encryption);
        const finished = this.now();
        manifest.finishedAt = new Date(finished).toISOString();
        manifest.durationMs = finished - started;
        writeFileAtomic(join(partial, MANIFEST), JSON.stringify(manifest, null, 2) + '\n', 0o640);
        renameSync(partial, join(this.options.dir, id));
        await this.copyOffsite(id, manifest);
        const pruned = await this.prune();
        this.options.log.info({ backup: id, kinds: wanted, ms: manifest.durationMs, bytes: manifest.files.reduce((n, f) => n + f.bytes, 0), pruned }, 'backup taken');
        await this.emit({ type: 'backup', id, ok: true, details: { kinds: wanted, reason, durationMs: manifest.durationMs, files: manifest.files, pruned } });
        return manifest;
      } catch (err) {
        rmSync(partial, { recursive: true, force: true });
        const message = (err as Error).message;
        this.options.log.error({ backup: id, kinds: wanted, err: message }, 'backup failed; older backups are untouched');
        await this.emit({ type: 'backup', id: null, ok: false, error: message, details: { kinds: wanted, reason } });
        throw err instanceof CL_ERR_BACKUP_FAILED ? err : new CL_ERR_BACKUP_FAILED(message, { cause: err });
      }
    });
  }

  /** Checksums, pg_restore --list, then a restore into a scratch database (and a scratch Redis). */
  verify(id: string): Promise<Verification> {
    return this.serially(`verify ${id}`, async () => {
      const entry = this.get(id);
      const started = this.now();
      const checks: Check[] = [];
      await this.withPlainFiles(entry, checks, async (plain) => {
        if (plain?.postgres) checks.push(await this.scratchRestorePostgres(entry, plain.postgres));
        if (plain?.redis) checks.push(await this.scratchRestoreRedis(entry, plain.redis));
      });
      const result: Verification = { id, at: new Date(started).toISOString(), ok: checks.every((c) => c.ok), durationMs: this.now() - started, checks };
      writeFileAtomic(join(this.options.dir, id, VERIFICATION), JSON.stringify(result, null, 2) + '\n', 0o640);
      const failed = checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`).join('; ');
      if (result.ok) this.options.log.info({ backup: id, ms: result.durationMs }, 'backup verified');
      else this.options.log.error({ backup: id, failed }, 'backup failed verification');
      await this.emit({ type: 'backup_verify', id, ok: result.ok, ...(result.ok ? {} : { error: failed }), details: { checks } });
      return result;
    });
  }

  /** Verifies the newest backup of each kind (what a restore would use). */
  async verifyNewest(): Promise<Verification[]> {
    const newest = new Map<string, string>();
    for (const b of this.list()) for (const k of b.kinds) if (!newest.has(k)) newest.set(k, b.id);
    const results: Verification[] = [];
    for (const id of new Set(newest.values())) results.push(await this.verify(id));
    return results;
  }

  /**
   * Restores a backup over the live data. Refused, touching nothing, when a checksum or the
   * dump's listing fails or when the backup's schema is not the database's. `quiesce` stops what
   * writes (the worker) and `resume` restarts the services once the data are back.
   */
  restore(id: string, hooks: { quiesce?: () => Promise<void>; resume?: () => Promise<void> } = {}): Promise<RestoreResult> {
    return this.serially(`restore ${id}`, async () => {
      const entry = this.get(id);
      const started = this.now();
      const checks: Check[] = [];
      return this.withPlainFiles(entry, checks, async (plain) => this.restorePlain(entry, plain, checks, hooks, started));
    });
  }

  private async restorePlain(entry: BackupEntry, plain: PlainFiles | null, checks: Check[], hooks: { quiesce?: () => Promise<void>; resume?: () => Promise<void> }, started: number): Promise<RestoreResult> {
    const id = entry.id;
    {
      const bad = checks.filter((c) => !c.ok);
      if (entry.kinds.includes('redis') && !this.options.embeddedRedis) bad.push({ name: 'redis', ok: false, detail: 'Redis is external here (REDIS_URL); this appliance does not restore it' });
      if (entry.database) {
        const current = await this.appliedMigrations();
        if (current.join(',') !== entry.database.migrations.join(',')) {
          bad.push({ name: 'schema', ok: false, detail: `taken at migrations [${entry.database.migrations.join(', ')}], the database is at [${current.join(', ')}]` });
        }
      }
      if (bad.length > 0) {
        const why = bad.map((c) => `${c.name}: ${c.detail}`).join('; ');
        await this.emit({ type: 'backup_restore', id, ok: false, error: why, details: { checks } });
        throw new CL_ERR_BACKUP_INVALID(id, why);
      }
      let tables: Record<string, number> = {};
      let redisKeys: number | null = null;
      try {
        await hooks.quiesce?.();
        this.options.log.info({ backup: id, kinds: entry.kinds }, 'restoring: writers stopped');
        if (plain?.postgres) tables = await this.restorePostgres(entry, plain.postgres);
        if (plain?.redis) redisKeys = await this.restoreRedis(plain.redis);
        this.options.log.info({ backup: id }, 'restoring: data restored, restarting the services');
      } catch (err) {
        const message = (err as Error).message;
        this.options.log.error({ backup: id, err: message }, 'restore failed');
        await hooks.resume?.().catch(() => {});
        await this.emit({ type: 'backup_restore', id, ok: false, error: message, details: {} });
        throw new CL_ERR_BACKUP_FAILED(`restore of ${id}: ${message}`, { cause: err });
      }
      await hooks.resume?.();
      const result: RestoreResult = { id, kinds: entry.kinds, durationMs: this.now() - started, checks, tables, redisKeys };
      this.options.log.info({ backup: id, ms: result.durationMs, tables, redisKeys }, 'backup restored');
      await this.emit({ type: 'backup_restore', id, ok: true, details: { durationMs: result.durationMs, tables, redisKeys } });
      return result;
    }
  }

  // --- taking ---

  private async dumpPostgres(dir: string, manifest: Manifest): Promise<void> {
    const file = join(dir, PG_FILE);
    const target = libpqTarget(this.options.databaseUrl);
    const pgDump = pgTool('pg_dump', this.options.pgBinDir);
    const [server, migrations, version] = await Promise.all([
      this.pgQuery<{ v: string; db: string }>('SELECT current_setting(\'server_version\') AS v, current_database() AS db'),
      this.appliedMigrations(),
      runTool(pgDump, ['--version']),
    ]);
    const dumping = runTool(pgDump, ['--format=custom', `--compress=${PG_DUMP_COMPRESSION}`, '--no-password', `--file=${file}`, `--dbname=${target.dbname}`], { env: { ...target.env, PGAPPNAME: DUMP_APP_NAME }, timeoutMs: TOOL_TIMEOUT_MS, background: true });
    void this.lowerBackendPriority(dumping);
    await dumping;
    const tables = await this.dumpTables(file);
    manifest.servers.postgres = server[0]!.v;
    manifest.servers.pgDump = version.trim();
    manifest.database = { name: server[0]!.db, tables, migrations };
    manifest.files.push(await describeFile(file, 'postgres'));
  }

  /**
   * The server process reading the tables for pg_dump works as hard as pg_dump itself: on our own
   * Postgres (same machine) it goes to the background too, so requests keep the CPU first.
   */
  private async lowerBackendPriority(dumping: Promise<unknown>): Promise<void> {
    let done = false;
    void dumping.then(() => { done = true; }, () => { done = true; });
    // One connection for the whole wait: a new one per poll would cost a SCRAM handshake each.
    const client = new pg.Client({ connectionString: this.options.databaseUrl, connectionTimeoutMillis: 5_000, application_name: 'changelens-backup' });
    client.on('error', () => {});
    try {
      await client.connect();
      for (let i = 0; i < 50 && !done; i++) {
        const { rows } = await client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [DUMP_APP_NAME]);
        if (rows.length > 0) {
          for (const { pid } of rows) toBackground(pid);
          return;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    } catch {
      // A managed Postgres, or not permitted: the dump runs at the server's priority.
    } finally {
      await client.end().catch(() => {});
    }
  }

  private async snapshotRedis(dir: string, manifest: Manifest): Promise<void> {
    const embedded = this.options.embeddedRedis!;
    const client = createRedisClient(this.options.redisUrl, { name: 'changelens-backup', reconnect: false });
    await client.connect();
    try {
      // rdb_saves counts completed snapshots: LASTSAVE has a one-second resolution, and two saves
      // in one second would look like none.
      const saves = async (): Promise<Record<string, string>> => parseInfo(await client.info('persistence'));
      const before = Number((await saves()).rdb_saves ?? 0);
      // SCHEDULE: if an AOF rewrite runs, the save starts right after it instead of failing.
      await client.sendCommand(['BGSAVE', 'SCHEDULE']);
      const deadline = this.now() + BGSAVE_TIMEOUT_MS;
      for (;;) {
        const info = await saves();
        if (info.rdb_bgsave_in_progress === '0' && Number(info.rdb_saves ?? 0) > before) {
          if (info.rdb_last_bgsave_status !== 'ok') throw new Error(`Redis BGSAVE failed (rdb_last_bgsave_status: ${info.rdb_last_bgsave_status}); see the redis log`);
          break;
        }
        if (this.now() > deadline) throw new Error(`Redis BGSAVE did not finish within ${BGSAVE_TIMEOUT_MS / 60_000} minutes`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const serverInfo = parseInfo(await client.info('server'));
      const keys = await client.dbSize();
      const file = join(dir, REDIS_FILE);
      // Redis writes a new snapshot to a temp file and renames it: this copy reads one whole file.
      copyFileSync(join(embedded.dataDir, 'dump.rdb'), file);
      manifest.servers.redis = serverInfo.redis_version ?? 'unknown';
      manifest.redis = { keys };
      manifest.files.push(await describeFile(file, 'redis'));
    } finally {
      await client.close().catch(() => {});
    }
  }

  private async checkFreeSpace(kinds: readonly BackupKind[]): Promise<void> {
    let estimate = 0;
    if (kinds.includes('postgres')) {
      // The custom format compresses; the database's size is a safe upper bound.
      estimate += Number((await this.pgQuery<{ size: string }>('SELECT pg_database_size(current_database()) AS size'))[0]!.size);
    }
    if (kinds.includes('redis')) {
      const rdb = join(this.options.embeddedRedis!.dataDir, 'dump.rdb');
      estimate += existsSync(rdb) ? statSync(rdb).size * 2 : 64 * MB;
    }
    const fs = statfsSync(this.options.dir);
    const free = fs.bavail * fs.bsize;
    const needed = estimate + this.options.minFreeMb * MB;
    if (free < needed) {
      throw new CL_ERR_BACKUP_FAILED(`not enough disk space in ${this.options.dir}: ${mb(free)} MB free, a backup of about ${mb(estimate)} MB must leave ${this.options.minFreeMb} MB (CHANGELENS_BACKUP_MIN_FREE_MB)`);
    }
  }

  /** Applies retention to the good backups, here and off the box; returns what it deleted. */
  private async prune(): Promise<string[]> {
    const good = this.list().map((b) => ({ id: b.id, at: Date.parse(b.startedAt), kinds: b.kinds }));
    const doomed = backupsToDelete(good, this.options.policy, this.now());
    for (const id of doomed) {
      rmSync(join(this.options.dir, id), { recursive: true, force: true });
      await this.options.offsite?.remove(id).catch((err: Error) => this.options.log.warn({ backup: id, err: err.message }, 'could not delete the off-box copy of a pruned backup'));
    }
    return doomed;
  }

  /** A good backup stays good if its copy fails: the failure is reported (audit, alert hooks) and the next run copies its own. */
  private async copyOffsite(id: string, manifest: Manifest): Promise<void> {
    const offsite = this.options.offsite;
    if (!offsite) return;
    const dir = join(this.options.dir, id);
    try {
      const copy = await offsite.upload(dir, id, [...manifest.files, { name: MANIFEST }]);
      writeFileAtomic(join(dir, OFFSITE), JSON.stringify(copy, null, 2) + '\n', 0o640);
      await this.emit({ type: 'backup_offsite', id, ok: true, details: { ...copy } });
    } catch (err) {
      const message = (err as Error).message || (err as Error).name;
      this.options.log.error({ backup: id, err: message }, 'could not copy the backup off the box; it is kept here');
      await this.emit({ type: 'backup_offsite', id, ok: false, error: message, details: {} });
    }
  }

  private removeStalePartials(): void {
    for (const name of readdirSync(this.options.dir)) {
      if (name.startsWith(PARTIAL)) rmSync(join(this.options.dir, name), { recursive: true, force: true });
    }
  }

  // --- checking ---

  /**
   * The checks every use of a backup starts with — each stored file's size and sha256, decryption
   * when encrypted, the dump's table of contents — then `fn` with the files in plain form (null when
   * a check failed). Decrypted copies live in a private temp dir for the duration of `fn` only.
   */
  private async withPlainFiles<T>(entry: BackupEntry, checks: Check[], fn: (plain: PlainFiles | null) => Promise<T>): Promise<T> {
    const dir = join(this.options.dir, entry.id);
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
        const key = this.options.encryption?.key;
        if (!key || key.id !== entry.encryption.keyId) {
          checks.push({ name: 'decrypt', ok: false, detail: key ? `encrypted with key ${entry.encryption.keyId}, this appliance's key is ${key.id} (set CHANGELENS_BACKUP_KEY to the key it was taken with)` : `encrypted with key ${entry.encryption.keyId}; set CHANGELENS_BACKUP_KEY (and CHANGELENS_BACKUP_ENCRYPT=1) to read it` });
          return await fn(null);
        }
        tmp = mkdtempSync(join(this.options.dir, '.plain-'));
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
      if (plain.postgres) {
        try {
          const tables = await this.dumpTables(plain.postgres);
          const missing = (entry.database?.tables ?? []).filter((t) => !tables.includes(t));
          checks.push({ name: 'pg_restore --list', ok: missing.length === 0, detail: missing.length === 0 ? `${tables.length} tables` : `tables missing from the dump: ${missing.join(', ')}` });
        } catch (err) {
          checks.push({ name: 'pg_restore --list', ok: false, detail: (err as Error).message });
        }
      }
      return await fn(checks.every((c) => c.ok) ? plain : null);
    } finally {
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    }
  }

  /** Replaces each file of a fresh backup by its encrypted form, and adds the secrets (encrypted only). */
  private async encryptAll(dir: string, manifest: Manifest, encryption: { key: BackupKey; secretsFile: string }): Promise<void> {
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

  /** The tables in a custom-format dump's table of contents, as schema.name. */
  private async dumpTables(file: string): Promise<string[]> {
    const list = await runTool(pgTool('pg_restore', this.options.pgBinDir), ['--list', file], { timeoutMs: TOOL_TIMEOUT_MS });
    return [...list.matchAll(/^\d+; \d+ \d+ TABLE (?!DATA )(\S+) (\S+) /gm)].map((m) => `${m[1]}.${m[2]}`).sort();
  }

  private async scratchRestorePostgres(entry: BackupEntry, file: string): Promise<Check> {
    const scratch = `changelens_verify_${randomBytes(4).toString('hex')}`;
    const target = libpqTarget(this.options.databaseUrl, scratch);
    await this.pgQuery(`CREATE DATABASE ${scratch}`);
    try {
      await runTool(pgTool('pg_restore', this.options.pgBinDir), ['--no-owner', '--no-acl', '--exit-on-error', '--no-password', `--dbname=${target.dbname}`, file], { env: target.env, timeoutMs: TOOL_TIMEOUT_MS });
      const counts = await this.countRows(entry.database?.tables ?? [], scratch);
      const migrations = await this.appliedMigrations(scratch);
      const ok = migrations.join(',') === (entry.database?.migrations ?? []).join(',');
      const rows = Object.values(counts).reduce((a, b) => a + b, 0);
      return { name: 'restore into a scratch database', ok, detail: ok ? `${Object.keys(counts).length} tables, ${rows} rows` : `schema_migrations reads [${migrations.join(', ')}], the manifest says [${entry.database?.migrations.join(', ')}]` };
    } catch (err) {
      return { name: 'restore into a scratch database', ok: false, detail: (err as Error).message };
    } finally {
      await this.pgQuery(`DROP DATABASE IF EXISTS ${scratch} WITH (FORCE)`).catch((err: Error) => this.options.log.warn({ database: scratch, err: err.message }, 'could not drop the scratch database'));
    }
  }

  private async scratchRestoreRedis(entry: BackupEntry, file: string): Promise<Check> {
    try {
      const keys = await this.withScratchRedis(file, async (client) => client.dbSize());
      const ok = keys === entry.redis?.keys;
      return { name: 'load into a scratch Redis', ok, detail: ok ? `${keys} keys` : `${keys} keys, the manifest says ${entry.redis?.keys}` };
    } catch (err) {
      return { name: 'load into a scratch Redis', ok: false, detail: (err as Error).message };
    }
  }

  // --- restoring ---

  /**
   * pg_restore --clean in one transaction: either every app table is back as it was in the
   * backup, or (on any error) nothing changed. The appliance's own tables are left out.
   */
  private async restorePostgres(entry: BackupEntry, file: string): Promise<Record<string, number>> {
    const pgRestore = pgTool('pg_restore', this.options.pgBinDir);
    const list = await runTool(pgRestore, ['--list', file]);
    const tmp = mkdtempSync(join(tmpdir(), 'changelens-restore-'));
    try {
      const listFile = join(tmp, 'restore.list');
      writeFileAtomic(listFile, appDataOnly(list), 0o600);
      const target = libpqTarget(this.options.databaseUrl);
      await runTool(pgRestore, ['--clean', '--if-exists', '--single-transaction', '--exit-on-error', '--no-owner', '--no-acl', '--no-password', `--use-list=${listFile}`, `--dbname=${target.dbname}`, file], {
        // A table some session holds a lock on makes the restore fail (and roll back) instead of hanging.
        env: { ...target.env, PGOPTIONS: '-c lock_timeout=30s' }, timeoutMs: TOOL_TIMEOUT_MS,
      });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    const own = new Set<string>(APPLIANCE_TABLES.map((t) => `public.${t}`));
    return this.countRows((entry.database?.tables ?? []).filter((t) => !own.has(t)));
  }

  /** FLUSHALL, then every key of the snapshot (with its TTL) copied from a scratch Redis loaded with it. */
  private async restoreRedis(file: string): Promise<number> {
    return this.withScratchRedis(file, async (scratch) => {
      const live = createRedisClient(this.options.redisUrl, { name: 'changelens-restore', reconnect: false });
      await live.connect();
      try {
        await live.flushAll();
        // Keys and values as bytes, and a SCAN loop of our own: node-redis's scanIterator never
        // ends when replies are mapped to Buffers (its cursor comparison expects a string).
        const bytes = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } };
        let copied = 0;
        let cursor = '0';
        do {
          const [next, keys] = (await scratch.sendCommand(['SCAN', cursor, 'COUNT', '500'], bytes)) as unknown as [Buffer, Buffer[]];
          cursor = next.toString();
          for (const key of keys) {
            const [value, ttl] = (await Promise.all([scratch.sendCommand(['DUMP', key], bytes), scratch.sendCommand(['PTTL', key])])) as unknown as [Buffer | null, number];
            if (value === null || ttl === -2) continue;
            await live.sendCommand(['RESTORE', key, String(ttl > 0 ? ttl : 0), value, 'REPLACE']);
            copied++;
          }
        } while (cursor !== '0');
        return copied;
      } finally {
        await live.close().catch(() => {});
      }
    });
  }

  /** A throwaway redis-server on a unix socket in a temp dir, loaded with the backup's snapshot. */
  private async withScratchRedis<T>(snapshot: string, fn: (client: ScratchRedis) => Promise<T>): Promise<T> {
    const embedded = this.options.embeddedRedis;
    if (!embedded) throw new Error('no redis-server here to load the snapshot into (Redis is external)');
    const tmp = mkdtempSync(join(tmpdir(), 'changelens-redis-'));
    const socket = join(tmp, 'redis.sock');
    copyFileSync(snapshot, join(tmp, 'dump.rdb'));
    const child = spawn(embedded.server, ['--port', '0', '--unixsocket', socket, '--dir', tmp, '--dbfilename', 'dump.rdb', '--appendonly', 'no', '--save', '', '--daemonize', 'no', '--loglevel', 'warning'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    // Redis logs to stdout: keep both, for the reason it refused a snapshot.
    for (const s of [child.stdout, child.stderr]) s.setEncoding('utf8').on('data', (c: string) => { stderr = (stderr + c).slice(-4_000); });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let client: ScratchRedis | null = null;
    try {
      const deadline = this.now() + 30_000;
      while (client === null) {
        if (child.exitCode !== null) throw new Error(`redis-server refused the snapshot: ${stderr.trim().split('\n').slice(-2).join(' / ') || `exit code ${child.exitCode}`}`);
        if (existsSync(socket)) {
          const attempt = scratchClient(socket);
          attempt.on('error', () => {});
          try {
            await attempt.connect();
            // While it loads, Redis answers LOADING errors: wait until it serves.
            await attempt.ping();
            client = attempt;
            break;
          } catch {
            if (attempt.isOpen) await attempt.close().catch(() => {});
          }
        }
        if (this.now() > deadline) throw new Error('redis-server did not load the snapshot within 30 s');
        await new Promise((r) => setTimeout(r, 50));
      }
      return await fn(client);
    } finally {
      if (client?.isOpen) await client.close().catch(() => {});
      child.kill('SIGKILL');
      await exited;
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  // --- helpers ---

  private async pgQuery<R extends pg.QueryResultRow>(sql: string, database?: string): Promise<R[]> {
    const url = new URL(this.options.databaseUrl);
    if (database) url.pathname = `/${database}`;
    const client = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 5_000, application_name: 'changelens-backup' });
    client.on('error', () => {});
    await client.connect();
    try {
      return (await client.query<R>(sql)).rows;
    } finally {
      await client.end().catch(() => {});
    }
  }

  private async appliedMigrations(database?: string): Promise<number[]> {
    const rows = await this.pgQuery<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version', database);
    return rows.map((r) => Number(r.version));
  }

  private async countRows(tables: readonly string[], database?: string): Promise<Record<string, number>> {
    if (tables.length === 0) return {};
    const sql = tables.map((t) => `SELECT '${t}' AS t, count(*)::bigint AS n FROM ${t.split('.').map((p) => `"${p}"`).join('.')}`).join(' UNION ALL ');
    const rows = await this.pgQuery<{ t: string; n: string }>(sql, database);
    return Object.fromEntries(rows.map((r) => [r.t, Number(r.n)]));
  }

  private newId(at: number, kinds: readonly BackupKind[]): string {
    const stamp = new Date(at).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
    const base = `${stamp}-${kinds.length === 2 ? 'full' : kinds[0]}`;
    let id = base;
    for (let n = 2; existsSync(join(this.options.dir, id)); n++) id = `${base}-${n}`;
    return id;
  }

  private serially<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(async () => {
      this.running = what;
      try {
        return await fn();
      } finally {
        this.running = null;
      }
    });
    this.tail = run.catch(() => {});
    return run;
  }

  private async emit(event: BackupEvent): Promise<void> {
    try {
      await this.options.onEvent?.(event);
    } catch (err) {
      this.options.log.warn({ err: (err as Error).message, event: event.type }, 'could not record a backup event');
    }
  }
}

/**
 * A pg_restore list without the appliance's own tables: every entry whose object is one of them
 * or is named after one (their data, indexes, constraints, sequences) is commented out.
 */
export function appDataOnly(list: string): string {
  const own = (name: string): boolean => APPLIANCE_TABLES.some((t) => name === t || name.startsWith(`${t}_`));
  return list.split('\n').map((line) => {
    const m = /^\d+; \d+ \d+ (.*)$/.exec(line);
    if (!m) return line;
    // "TABLE public items owner", "CONSTRAINT public releases releases_pkey owner": object names are lower case, types upper.
    const names = m[1]!.split(' ').slice(0, -1).filter((w) => w !== '-' && w !== 'public' && !/^[A-Z]+$/.test(w));
    return names.some(own) ? `;${line}` : line;
  }).join('\n');
}

async function describeFile(path: string, kind: BackupFile['kind']): Promise<BackupFile> {
  return { name: path.split('/').pop()!, kind, bytes: statSync(path).size, sha256: await sha256Of(path) };
}

function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) out[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return out;
}

function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

const mb = (bytes: number): number => Math.round(bytes / MB);
