// What the rollout needs from outside the proxy's memory, as interfaces: where it keeps its state
// (Postgres in the appliance, memory in tests), how it starts and stops colours (the supervisor),
// what it reports (Prometheus gauges) and what time it is. The reconciler sees only these.
import type { AuditEvent, NewAuditEvent } from '../lib/audit.js';
import type { Color } from '../lib/config.js';
import type { WindowVerdict } from '../monitoring/index.js';
import type { Bucket, Deployment, Pointers, Release, StoredVerdict } from './model.js';
import type { DeploymentStatus } from './state-machine.js';

/**
 * Releases, pointers, deployments and their analysis. Implemented by `PgRolloutStore` (store.ts)
 * and by the in-memory store of the tests; `test/helpers/rollout-store-contract.ts` holds both to it.
 */
export interface RolloutStore {
  /** Records a release, or returns the existing one when identical; a different one conflicts (CL_ERR_RELEASE_CONFLICT). */
  putRelease(release: Omit<Release, 'createdAt'>): Promise<Release>;
  release(version: string): Promise<Release | null>;
  /** Newest first, with which one the pointers name. */
  releases(): Promise<Array<Release & { active: boolean; lastGood: boolean }>>;
  pointers(): Promise<Pointers>;
  /** The first boot's release becomes active and last_good when there are no pointers yet. */
  ensureInitialRelease(release: Omit<Release, 'createdAt'>, color: Color): Promise<void>;
  /** Refused with CL_ERR_DEPLOYMENT_RUNNING while another deployment runs. */
  createDeployment(d: Omit<Deployment, 'startedAt' | 'updatedAt' | 'finishedAt' | 'result'>): Promise<Deployment>;
  /** Compare-and-swap on `from.revision`; `promoteTo` moves both pointers in the same step. */
  saveStatus(id: string, from: DeploymentStatus, to: DeploymentStatus, options?: { promoteTo?: { version: string; color: Color }; result?: unknown }): Promise<void>;
  /** Replaces a deployment's result (a rollback's timing, once the requests in flight at the swap settled). */
  saveResult(id: string, result: unknown): Promise<void>;
  runningDeployment(): Promise<Deployment | null>;
  /** CL_ERR_NOT_FOUND when there is none. */
  deployment(id: string): Promise<Deployment>;
  /** Newest first. */
  deployments(limit: number): Promise<Deployment[]>;
  addVerdict(deploymentId: string, v: Omit<StoredVerdict, 'at'>): Promise<void>;
  /** In seq order. */
  verdicts(deploymentId: string): Promise<StoredVerdict[]>;
  /** A bucket already stored (same colour and start) is kept. */
  addBuckets(deploymentId: string, buckets: readonly Bucket[]): Promise<void>;
  /** By start, then colour. */
  buckets(deploymentId: string): Promise<Bucket[]>;
  audit(e: NewAuditEvent): Promise<AuditEvent>;
  auditSince(sinceMs: number, limit?: number): Promise<AuditEvent[]>;
}

/** How the controller starts and stops a colour: the supervisor, over its control socket. */
export interface SupervisorLink {
  /** Starts the colour (its worker, then its API) with the release and resolves once both pass their readiness probes. */
  start(color: Color, release: Release): Promise<void>;
  /** Stops the colour: its API and its worker. */
  stop(color: Color): Promise<void>;
  /** Stops only the colour's worker: what it has not started moves to the active colour's (a rollback). */
  stopWorker(color: Color): Promise<void>;
  health(color: Color): Promise<ColorHealth>;
}

export interface ColorHealth {
  /** Started and not stopped. */
  running: boolean;
  /** Every pm2 instance online. */
  online: boolean;
  /** pm2 restarts of its instances so far: a rise is a crash. */
  restarts: number;
  /** It answered its readiness probe. */
  ready: boolean;
  error?: string;
  /** Its worker: running, and pm2 restarts of it so far (a rise is a crash); absent when unknown. */
  worker?: { running: boolean; restarts: number };
}

/**
 * The proxy's mirror (proxy/mirror.ts), as a warm-up needs it: copies of live requests follow the
 * routing table's mirror rule; synthetic GETs top them up when live traffic is short.
 */
export interface MirrorLink {
  /** One synthetic GET of `path` to `color`, answer discarded; false when the mirror's bounds refused it. */
  synthetic(color: Color, path: string): boolean;
  /** Totals since the proxy started: copies and synthetic requests sent, answers, 2xx/3xx answers, 5xx or no answer. */
  counts(color: Color): { mirrored: number; synthetic: number; answered: number; ok: number; failed: number };
}

/** What the Prometheus exposition needs to know of rollouts (monitoring/metrics.ts). */
export interface RolloutGauges {
  setRollout(s: { deploymentId: string | null; phase: string | null; candidateColor: Color | null; candidateWeight: number; activeColor: Color }): void;
  countVerdict(verdict: WindowVerdict): void;
  countRollback(trigger: string): void;
  /** A release no colour serves any more: its series can go. */
  forgetRelease(release: string): void;
}

/** Time, injected: the real one in the proxy, a hand-driven one in the reconciler's test. */
export interface Clock {
  /** Wall time in ms since the epoch: window boundaries and timestamps. */
  now(): number;
  /** Monotonic ms: durations (a verdict to the routing swap). */
  monotonic(): number;
  /** Calls fn after ms (never keeping the process alive); cancel() before it fires stops it. */
  after(ms: number, fn: () => void): { cancel(): void };
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  after(ms, fn) {
    const timer = setTimeout(fn, Math.max(0, ms));
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
};

/** Resolves after ms of the clock's time. */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.after(ms, resolve));
}

/**
 * The other instances of a fleet, as the controller needs them (fleet/ implements it; absent on a
 * single appliance). Followers start the candidate themselves and apply the weights they read from
 * the deployment's row; the controller waits for them and tells them to swap back at once.
 */
export interface FleetLink {
  /**
   * Resolves when every live instance runs the deployment's candidate ready, or as soon as `live()`
   * says the wait is moot (the deployment ended); throws naming one that failed, or those still not
   * ready at the deadline.
   */
  everyoneReady(d: Deployment, timeoutMs: number, live: () => boolean): Promise<void>;
  /** Whether every live instance applies the deployment's weights at its current revision (a step moves only then). */
  servingEverywhere(d: Deployment): Promise<boolean>;
  /** Every instance: all to the stable colour now (the row follows; this is the fast path). */
  stableNow(d: Deployment): void;
}
