// The supervisor's side of backups: the service built from the config, its schedules, its events
// (audited; a failure fires the alert hooks), the quiesce/resume of a restore (the worker stops
// writing; the worker and the running API colours restart on the restored data), and the
// control-socket routes the proxy's admin API forwards to.
import { backupKey, BackupService, OffsiteStore, isOverdue, nextRun, startSchedules, type BackupEvent, type BackupKind, type ScheduleName, type Schedules } from '../backup/index.js';
import type { Config } from '../lib/config.js';
import type { BackupSummary } from '../lib/contracts/status.js';
import { createPgPool } from '../lib/db.js';
import { CL_ERR_INVALID_REQUEST } from '../lib/errors.js';
import { claimScheduledRun } from '../fleet/index.js';
import type { Logger } from '../lib/logger.js';
import type { DataPaths } from '../lib/paths.js';
import { recordAudit } from '../lib/audit.js';
import { postJson, runCommand } from '../lib/notify.js';
import { waitUntilReady, type ProbeDeps } from './boot.js';
import type { ControlRoute } from './control-socket.js';
import type { GraphNode } from './process-graph.js';
import type { ProcessManager } from './process-manager.js';

export interface BackupsDeps {
  config: Config;
  paths: DataPaths;
  pm: ProcessManager;
  log: Logger;
  urls: { database: string; redis: string };
  /** pg_dump/pg_restore's dir (the embedded server's; undefined: PATH). */
  pgBinDir: string | undefined;
  /** The embedded redis-server binary, or null when Redis is external. */
  redisServer: string | null;
  /** Who runs Redis when the supervisor is root: scratch servers (verification) run as it too. */
  serviceUser?: { uid: number; gid: number };
  /** The graph in dependency order, and whether a process of it runs now. */
  graph: readonly GraphNode[];
  isRunning: (name: string) => boolean;
  probe: ProbeDeps;
  /** When this appliance first started: a schedule is not overdue before its first run after this. */
  since: Date;
  /** From the secrets (or CHANGELENS_BACKUP_KEY). */
  backupKey: string;
  /** This appliance's name in a fleet: a scheduled run is claimed first, so one instance runs it. */
  fleetInstance?: string;
}

export interface Backups {
  service: BackupService;
  summary(): BackupSummary;
  routes: ControlRoute[];
  close(): Promise<void>;
}

export function startBackups(deps: BackupsDeps): Backups {
  const { config, log } = deps;
  const schedules: Schedules = {
    postgres: off(config.backupPgSchedule),
    redis: deps.redisServer ? off(config.backupRedisSchedule) : null,
    verify: off(config.backupVerifySchedule),
  };
  const pool = createPgPool(deps.urls.database, { max: 1, applicationName: 'changelens-backup' });
  const hookUrls = config.hookUrls?.split(',').map((u) => u.trim()) ?? [];
  let lastFailure: BackupSummary['lastFailure'] = null;

  const onEvent = async (event: BackupEvent): Promise<void> => {
    if (!event.ok) lastFailure = { at: new Date().toISOString(), error: `${event.type}${event.id ? ` ${event.id}` : ''}: ${event.error}` };
    await recordAudit(pool, { eventType: event.type, deploymentId: null, actor: 'backup', version: null, details: { id: event.id, ...event.details }, success: event.ok, error: event.error ?? null });
    if (event.ok) return;
    // A failure is an alert: the same hooks as deployments, with the event as JSON.
    const body = JSON.stringify({ type: `${event.type}_failed`, id: event.id, error: event.error, at: new Date().toISOString() });
    const sent = await Promise.allSettled([
      ...hookUrls.map((url) => postJson(url, body, config.hookTimeoutMs)),
      ...(config.hookCommand ? [runCommand(config.hookCommand, body, `${event.type}_failed`, config.hookTimeoutMs)] : []),
    ]);
    for (const s of sent) if (s.status === 'rejected') log.warn({ err: (s.reason as Error).message }, 'a backup alert hook failed');
  };

  const offsite = config.backupS3Url
    ? new OffsiteStore({ url: config.backupS3Url, endpoint: config.backupS3Endpoint, region: config.backupS3Region, pathStyle: config.backupS3PathStyle === '1' })
    : null;
  const service = new BackupService({
    dir: deps.paths.backups,
    databaseUrl: deps.urls.database,
    redisUrl: deps.urls.redis,
    embeddedRedis: deps.redisServer ? { dataDir: deps.paths.redis, server: deps.redisServer, ...(deps.serviceUser ? { user: deps.serviceUser } : {}) } : null,
    pgBinDir: deps.pgBinDir,
    policy: { keep: config.backupKeep, maxAgeDays: config.backupMaxAgeDays },
    minFreeMb: config.backupMinFreeMb,
    encryption: { key: backupKey(deps.backupKey), secretsFile: deps.paths.secrets, encrypt: config.backupEncrypt === '1' },
    offsite,
    log: log.child({ component: 'backup' }),
    onEvent,
  });

  const scheduled = startSchedules(schedules, async (name: ScheduleName) => {
    try {
      if (deps.fleetInstance !== undefined && !(await claimScheduledRun(pool, `backup-${name}`, deps.fleetInstance))) {
        log.info({ schedule: name }, 'another instance of the fleet runs this scheduled backup');
        return;
      }
      if (name === 'verify') await service.verifyNewest();
      else await service.backup([name], 'scheduled');
    } catch {
      // Logged, audited and alerted by the service; the next tick tries again.
    }
  });

  /** A restore: the workers stop writing first; afterwards they and the running API colours restart on the restored data. */
  const writersRunning = (): GraphNode[] => deps.graph.filter((n) => (n.name.startsWith('worker-') || n.name.startsWith('api-')) && deps.isRunning(n.name));
  const hooks = {
    quiesce: async () => {
      await Promise.all(deps.graph.filter((n) => n.name.startsWith('worker-') && deps.isRunning(n.name)).map((n) => deps.pm.stop(n.name)));
    },
    resume: async () => {
      const nodes = writersRunning();
      for (const node of nodes) await deps.pm.restart(node.name);
      await Promise.all(nodes.map((node) => waitUntilReady(node, deps.probe, AbortSignal.timeout(config.readyTimeoutMs + 5_000))));
    },
  };

  const summary = (): BackupSummary => {
    const now = Date.now();
    const list = service.authentic();
    const last: BackupSummary['last'] = {};
    for (const kind of service.kinds) {
      const b = list.find((x) => x.kinds.includes(kind));
      if (b) last[kind] = { id: b.id, at: b.startedAt, ageSeconds: Math.round((now - Date.parse(b.startedAt)) / 1000), bytes: b.totalBytes, durationMs: b.durationMs, verified: b.verification?.ok ?? null, verifiedAt: b.verification?.at ?? null };
    }
    const overdue = service.kinds.filter((k) => isOverdue(schedules[k], last[k] ? Date.parse(last[k]!.at) : null, deps.since.getTime(), now));
    const next = Object.fromEntries((Object.keys(schedules) as ScheduleName[]).map((k) => [k, schedules[k] ? new Date(nextRun(schedules[k]!, now)).toISOString() : null])) as BackupSummary['next'];
    return { running: service.busy, kinds: service.kinds, count: list.length, totalBytes: list.reduce((n, b) => n + b.totalBytes, 0), last, lastFailure, next, overdue };
  };

  const routes: ControlRoute[] = [
    { method: 'GET', path: /^\/backups$/, handler: () => ({ summary: summary(), backups: service.list() }) },
    { method: 'POST', path: /^\/backups(?:\?(.*))?$/, handler: (query) => {
      const params = new URLSearchParams(query ?? '');
      const kinds = params.getAll('kind');
      for (const k of kinds) if (k !== 'postgres' && k !== 'redis') throw new CL_ERR_INVALID_REQUEST(`kind: expected postgres or redis, got ${JSON.stringify(k)}`);
      const reason = params.get('reason') ?? 'manual';
      if (reason !== 'manual' && reason !== 'pre-deploy') throw new CL_ERR_INVALID_REQUEST(`reason: expected manual or pre-deploy, got ${JSON.stringify(reason)}`);
      return service.backup(kinds.length ? (kinds as BackupKind[]) : service.kinds, reason);
    } },
    { method: 'POST', path: /^\/backups\/([^/?]+)\/verify$/, handler: (id) => service.verify(decodeURIComponent(id!)) },
    { method: 'POST', path: /^\/backups\/([^/?]+)\/restore$/, handler: (id) => service.restore(decodeURIComponent(id!), hooks) },
  ];

  return {
    service, summary, routes,
    async close() {
      await scheduled.stop();
      offsite?.close();
      await pool.end().catch(() => {});
    },
  };
}

function off(expression: string): string | null {
  return expression === 'off' ? null : expression;
}
