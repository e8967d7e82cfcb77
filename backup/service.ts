// Backups of the appliance's Postgres and Redis: taken, verified, listed, pruned and restored.
// It runs in the supervisor, which owns the services' binaries, credentials and processes. This
// file orchestrates; each kind of data is a driver (kinds/), the folder is local-store.ts, checks
// and encryption are integrity.ts.
//
// Retention runs only after a good run, so a failing run never deletes an older good backup.
// One operation at a time.
import { CL_ERR_BACKUP_FAILED, CL_ERR_BACKUP_INVALID } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { BackupKey } from './encryption.js';
import { encryptAll, withPlainFiles, type PlainFiles } from './integrity.js';
import type { BackupDriver } from './kinds/driver.js';
import { PostgresDriver } from './kinds/postgres.js';
import { RedisDriver } from './kinds/redis.js';
import { LocalStore } from './local-store.js';
import { MANIFEST, manifestAuthentic, signManifest, type BackupEntry, type BackupReason, type Check, type Manifest, type RestoreResult, type Verification } from './manifest.js';
import type { OffsiteStore } from './offsite.js';
import { backupsToDelete, type BackupKind, type RetentionPolicy } from './retention.js';

export interface BackupServiceOptions {
  /** <data>/backups */
  dir: string;
  databaseUrl: string;
  redisUrl: string;
  /** Embedded Redis: its data dir (where BGSAVE writes dump.rdb) and the redis-server binary. Null: Redis is external and not backed up. */
  embeddedRedis: { dataDir: string; server: string; user?: { uid: number; gid: number } } | null;
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

const MB = 1024 * 1024;
/** Why a kind in a backup has no driver here: the only such kind is an external Redis. */
const NOT_HERE = 'Redis is external here (REDIS_URL); this appliance does not restore it';

export class BackupService {
  private tail: Promise<unknown> = Promise.resolve();
  private running: string | null = null;
  private readonly now: () => number;
  private readonly store: LocalStore;
  /** In backup order: Postgres, then Redis when it is ours (a managed Redis has its own backups). */
  private readonly drivers: ReadonlyMap<BackupKind, BackupDriver>;

  constructor(private readonly options: BackupServiceOptions) {
    this.now = options.now ?? Date.now;
    this.store = new LocalStore(options.dir);
    const drivers: BackupDriver[] = [new PostgresDriver({ databaseUrl: options.databaseUrl, pgBinDir: options.pgBinDir, log: options.log })];
    if (options.embeddedRedis) drivers.push(new RedisDriver({ redisUrl: options.redisUrl, embedded: options.embeddedRedis, now: this.now }));
    this.drivers = new Map(drivers.map((d) => [d.kind, d]));
  }

  /** What can be backed up here. */
  get kinds(): BackupKind[] {
    return [...this.drivers.keys()];
  }

  /** What runs now ("backup", "verify <id>", "restore <id>"), or null. */
  get busy(): string | null {
    return this.running;
  }

  list(): BackupEntry[] {
    return this.store.list();
  }

  /**
   * The backups this appliance signed (all of them when it has no key): what retention keeps and
   * deletes by, what "newest" and "overdue" mean. A planted manifest, however new it claims to be,
   * can neither push a real backup out nor hide a missed one.
   */
  authentic(): BackupEntry[] {
    const key = this.options.encryption?.key;
    return key ? this.list().filter((b) => manifestAuthentic(b, key.macKey)) : this.list();
  }

  get(id: string): BackupEntry {
    return this.store.get(id);
  }

  /** Takes a backup of `kinds` (default: all this appliance can back up), then applies retention. */
  backup(kinds: readonly BackupKind[] = this.kinds, reason: BackupReason = 'manual'): Promise<Manifest> {
    return this.serially('backup', async () => {
      const wanted = this.kinds.filter((k) => kinds.includes(k));
      if (wanted.length === 0) throw new CL_ERR_BACKUP_FAILED(`${kinds.join(', ')}: Redis is external (REDIS_URL); back it up with its provider`);
      const started = this.now();
      const id = this.store.newId(started, wanted);
      try {
        this.store.removeStalePartials();
        await this.checkFreeSpace(wanted);
        const partial = this.store.begin(id);
        const manifest: Manifest = { schemaVersion: 1, id, kinds: wanted, reason, startedAt: new Date(started).toISOString(), finishedAt: '', durationMs: 0, files: [], servers: {} };
        for (const kind of wanted) await this.drivers.get(kind)!.take(partial, manifest);
        if (this.options.encryption?.encrypt) await encryptAll(partial, manifest, this.options.encryption);
        const finished = this.now();
        manifest.finishedAt = new Date(finished).toISOString();
        manifest.durationMs = finished - started;
        if (this.options.encryption?.key) signManifest(manifest, this.options.encryption.key.macKey);
        this.store.commit(manifest);
        await this.copyOffsite(id, manifest);
        const pruned = await this.prune();
        this.options.log.info({ backup: id, kinds: wanted, ms: manifest.durationMs, bytes: manifest.files.reduce((n, f) => n + f.bytes, 0), pruned }, 'backup taken');
        await this.emit({ type: 'backup', id, ok: true, details: { kinds: wanted, reason, durationMs: manifest.durationMs, files: manifest.files, pruned } });
        return manifest;
      } catch (err) {
        this.store.discard(id);
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
        for (const [kind, file] of Object.entries(plain ?? {}) as Array<[BackupKind, string]>) {
          const driver = this.drivers.get(kind);
          checks.push(driver ? await driver.verify(entry, file) : { name: 'load into a scratch Redis', ok: false, detail: 'no redis-server here to load the snapshot into (Redis is external)' });
        }
      });
      const result: Verification = { id, at: new Date(started).toISOString(), ok: checks.every((c) => c.ok), durationMs: this.now() - started, checks };
      this.store.writeVerification(result);
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
    for (const b of this.authentic()) for (const k of b.kinds) if (!newest.has(k)) newest.set(k, b.id);
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
    const bad = checks.filter((c) => !c.ok);
    for (const kind of entry.kinds) if (!this.drivers.has(kind)) bad.push({ name: kind, ok: false, detail: NOT_HERE });
    for (const kind of entry.kinds) bad.push(...(await this.drivers.get(kind)?.refuseRestore(entry)) ?? []);
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
      for (const [kind, file] of Object.entries(plain ?? {}) as Array<[BackupKind, string]>) {
        const restored = await this.drivers.get(kind)!.restore(entry, file);
        tables = restored.tables ?? tables;
        redisKeys = restored.redisKeys ?? redisKeys;
      }
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

  private withPlainFiles<T>(entry: BackupEntry, checks: Check[], fn: (plain: PlainFiles | null) => Promise<T>): Promise<T> {
    const inspect = async (kind: BackupKind, file: string): Promise<Check[]> => (await this.drivers.get(kind)?.inspect(entry, file)) ?? [];
    return withPlainFiles(entry, this.store.path(entry.id), this.store.dir, this.options.encryption?.key, checks, inspect, fn);
  }

  private async checkFreeSpace(kinds: readonly BackupKind[]): Promise<void> {
    let estimate = 0;
    for (const kind of kinds) estimate += await this.drivers.get(kind)!.estimateBytes();
    const free = this.store.freeBytes();
    const needed = estimate + this.options.minFreeMb * MB;
    if (free < needed) {
      throw new CL_ERR_BACKUP_FAILED(`not enough disk space in ${this.options.dir}: ${mb(free)} MB free, a backup of about ${mb(estimate)} MB must leave ${this.options.minFreeMb} MB (CHANGELENS_BACKUP_MIN_FREE_MB)`);
    }
  }

  /** Applies retention to the good backups, here and off the box; returns what it deleted. */
  private async prune(): Promise<string[]> {
    const good = this.authentic().map((b) => ({ id: b.id, at: Date.parse(b.startedAt), kinds: b.kinds }));
    const doomed = backupsToDelete(good, this.options.policy, this.now());
    for (const id of doomed) {
      this.store.remove(id);
      await this.options.offsite?.remove(id).catch((err: Error) => this.options.log.warn({ backup: id, err: err.message }, 'could not delete the off-box copy of a pruned backup'));
    }
    return doomed;
  }

  /** A good backup stays good if its copy fails: the failure is reported (audit, alert hooks) and the next run copies its own. */
  private async copyOffsite(id: string, manifest: Manifest): Promise<void> {
    const offsite = this.options.offsite;
    if (!offsite) return;
    try {
      const copy = await offsite.upload(this.store.path(id), id, [...manifest.files, { name: MANIFEST }]);
      this.store.writeOffsite(id, copy);
      await this.emit({ type: 'backup_offsite', id, ok: true, details: { ...copy } });
    } catch (err) {
      const message = (err as Error).message || (err as Error).name;
      this.options.log.error({ backup: id, err: message }, 'could not copy the backup off the box; it is kept here');
      await this.emit({ type: 'backup_offsite', id, ok: false, error: message, details: {} });
    }
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

const mb = (bytes: number): number => Math.round(bytes / MB);
