// The shape of `changelens status --json` (and of the supervisor's /status answer). Scripts rely
// on it: add fields freely, but rename or remove only with a new schemaVersion.
import type { Color } from '../config.js';

export interface ProcessStatus {
  name: string;
  /** pm2's state (online, stopping, stopped, launching, errored), or `not started` / `external`. */
  state: string;
  pmId: number | null;
  pid: number | null;
  uptimeMs: number | null;
  restarts: number;
  rssBytes: number | null;
  cpuPercent: number | null;
}

export interface ServiceStatus {
  mode: 'embedded' | 'external';
  reachable: boolean;
  latencyMs: number;
  /** Host and port only: never the password. */
  endpoint: string;
  error?: string;
}

/** One stage of the boot: the supervisor's own start, its preparation of the data dir, or a node of the process graph. */
export interface BootStageStatus {
  name: string;
  startedMs: number;
  /** null: started, not ready yet (a boot in progress, or one that failed there). */
  readyMs: number | null;
}

export interface ApplianceStatus {
  schemaVersion: 1;
  running: true;
  phase: 'booting' | 'ready' | 'stopping' | 'failed';
  version: string;
  supervisorPid: number;
  dataDir: string;
  activeColor: Color;
  boot: {
    startedAt: string;
    firstBoot: boolean;
    /** Milliseconds from the supervisor process's start to ready (its own start-up included, as in `stages`); null while booting. */
    durationMs: number | null;
    /** Milliseconds from the start of the process graph's boot until each node was ready. */
    readyMs: Record<string, number>;
    /** The boot's stages, in milliseconds from the supervisor process's start, as they start and become ready (absent from a supervisor older than this field). */
    stages?: BootStageStatus[];
  };
  processes: ProcessStatus[];
  services: { postgres: ServiceStatus; redis: ServiceStatus };
  /** The job queue; null when Redis does not answer. */
  jobs: JobsStatus | null;
  /** Added by the CLI from the admin API: the active release and the running deployment; null when the proxy does not answer. */
  rollout?: RolloutSummary | null;
  /** The monitor's rules: which hold now and the latest actions; null when there are none. */
  monitor?: MonitorStatusSummary | null;
  /** Backups: the newest of each kind, the next scheduled runs, what is overdue; null before the boot ends. */
  backups?: BackupSummary | null;
  /** The public port, which the supervisor holds and hands to the proxy (see supervisor/public-listener.ts). */
  publicPort?: PublicPortStatus;
  /** How releases are confined (supervisor/confinement.ts). */
  confinement?: ConfinementStatus;
}

export interface ConfinementStatus {
  /** The user releases run as; null when the supervisor is not root (they run as its user), with why. */
  user: { name: string; uid: number; gid: number } | null;
  userOff?: string;
  /** The app's Postgres role and schema. */
  database: string;
  /** The app's Redis user, or why it shares the appliance's. */
  redis: string;
}

export interface PublicPortStatus {
  listening: boolean;
  /** The proxy that takes connections now; null while none does (it is restarting). */
  proxyPid: number | null;
  handedOff: number;
  /** Connections that waited for a proxy to come back. */
  waited: number;
  /** Connections the supervisor answered 503: waited too long, or too many waiting. */
  refused: number;
  waitingNow: number;
}

export interface BackupSummary {
  /** What runs now ("backup", "verify <id>", "restore <id>"), or null. */
  running: string | null;
  kinds: Array<'postgres' | 'redis'>;
  count: number;
  totalBytes: number;
  /** The newest good backup holding each kind. */
  last: Partial<Record<'postgres' | 'redis', { id: string; at: string; ageSeconds: number; bytes: number; durationMs: number; verified: boolean | null; verifiedAt: string | null }>>;
  lastFailure: { at: string; error: string } | null;
  /** ISO time of each schedule's next run; null when that schedule is off. */
  next: Record<'postgres' | 'redis' | 'verify', string | null>;
  /** Kinds whose last good backup is older than their schedule allows (healthz reports degraded). */
  overdue: Array<'postgres' | 'redis'>;
}

export interface MonitorStatusSummary {
  intervalSeconds: number;
  rules: number;
  breaching: Array<{ rule: string; metric: string; since: string }>;
  recent: Array<{ rule: string; metric: string; value: number; action: string; at: string; ok: boolean; outcome: string }>;
  ruleNames: string[];
  firings: Record<string, number>;
  lastSample: Record<string, number> | null;
}

export interface RolloutSummary {
  active: { version: string; color: Color };
  deployment: { id: string; version: string; strategy: string; phase: string; step: number; steps: number; weight: number; lastVerdict: string | null; lastExplanation: string | null } | null;
  /** External mode: this instance, who holds the controller lease, and every instance seen in the last hour. */
  fleet?: FleetSummary;
  /** Chat notification targets (shown by kind and host): the last delivery and the last failure of each. */
  notifications?: Array<{ target: string; lastOkAt: string | null; lastFailure: { at: string; event: string; version: string; error: string } | null }>;
}

export interface FleetSummary {
  instance: string;
  controller: boolean;
  lease: { holder: string; epoch: number; expiresInMs: number } | null;
  instances: Array<{
    id: string; version: string; address: string | null; lastSeenMsAgo: number; gone: boolean;
    state: { controller?: boolean; degraded?: string | null; routing?: { stable: Color; candidate: Color | null; candidateWeight: number }; colours?: Record<Color, string | null> };
  }>;
}

export interface JobsStatus {
  /** Entries on the stream not yet handed to any worker. */
  waiting: number;
  /** Handed to a worker, not yet acknowledged (in progress, or left by a dead worker). */
  pending: number;
  /** Jobs that failed every attempt (the dead-letter stream). */
  deadLetters: number;
  /** Per colour: its stream's waiting and in-progress entries, and which worker code runs it. */
  byColor?: Record<Color, { waiting: number; pending: number; worker: string | null }>;
}

export interface NotRunningStatus {
  schemaVersion: 1;
  running: false;
  dataDir: string;
}
