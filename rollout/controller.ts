// The rollout controller the proxy holds: a facade over the reconciler (reconciler.ts) and its
// parts, wired here. The proxy calls it on every response (`record`) and reads the routing table
// from it on every request; the admin API calls the operator actions. It runs in the proxy, so a
// failing verdict reaches the router in the same process.
import type { Color } from '../lib/config.js';
import type { MirrorRule, RoutingTable } from '../lib/contracts/routing.js';
import type { Logger } from '../lib/logger.js';
import { DEAD_LETTER_METRIC, SlicedWindow } from '../monitoring/index.js';
import type { JobOutcome } from '../lib/contracts/jobs.js';
import { WindowAnalysis } from './analysis.js';
import type { StartAnalysisLoad } from './analysis-load.js';
import { Colours } from './colours.js';
import { RolloutEvents } from './events.js';
import { Notifier, type NotificationStatus } from './notifications.js';
import type { StepExpectation } from './reconciler.js';
import type { NotifyTarget } from '../lib/contracts/notify-targets.js';
import type { HookOptions } from './hooks.js';
import type { Deployment, DeployRequest } from './model.js';
import { systemClock, type Clock, type FleetLink, type MirrorLink, type RolloutGauges, type RolloutStore, type SupervisorLink } from './ports.js';
import { Follower, type FollowerTrip, type Following } from './follower.js';
import { Reconciler, type RolloutStatus } from './reconciler.js';
import { CL_ERR_INVALID_REQUEST, CL_ERR_NOT_CONTROLLER } from '../lib/errors.js';
import { Traffic } from './traffic.js';

export interface ControllerOptions {
  store: RolloutStore;
  supervisor: SupervisorLink;
  window: SlicedWindow;
  /** Each colour's job outcomes (rollout/job-outcomes.ts feeds them through recordJob); default: a window of its own. */
  jobs?: SlicedWindow;
  log: Logger;
  routingPath: string;
  /** <data>/releases: where artifacts are imported. */
  releasesDir: string;
  /** How many release directories to keep (CHANGELENS_RELEASES_KEEP). */
  releasesKeep: number;
  hooks: HookOptions;
  /** Chat notifications (CHANGELENS_NOTIFY), with the public URL their links go to. */
  notify?: { targets: readonly NotifyTarget[]; timeoutMs: number; publicUrl?: string | undefined; backoffMs?: number };
  gauges?: RolloutGauges;
  /** The active colour the routing snapshot gave at start. */
  activeColor: Color;
  /** The env the booted release runs with (the initial release's, on first boot). */
  initialRelease: { version: string; artifact: string; env: Record<string, string> };
  /** Real time unless a test drives it. */
  clock?: Clock;
  /** How a plan's analysis load reaches the colours (through the proxy's own port); absent: refused. */
  analysisLoad?: StartAnalysisLoad;
  /** Directories no release names but a colour uses (its inherited worker code): never pruned. */
  keepDirs?: () => string[];
  /** The proxy's mirror (proxy/mirror.ts), for warm-ups; absent: a candidate takes its first step cold. */
  mirror?: MirrorLink;
  /** How long a colour has to start ready (every fleet instance's too). */
  readyTimeoutMs?: number;
  /** A deployment waiting at a gate asks it every window; a 2xx approves (with the hooks' timeout). */
  gate?: { url: string; timeoutMs: number };
  /** One instance of a fleet: it drives deployments only while it holds the lease (`lead`), else follows. */
  fleet?: ControllerFleet;
  /** Where a response is measured; default: `window` (in a fleet, the slices every proxy publishes). */
  measure?: { record(color: Color, latencyMs: number, isError: boolean, atMs: number): void; recordMetric(color: Color, name: string, value: number, atMs: number): void };
}

/** What an instance of a fleet needs beyond a single appliance's controller (fleet/ provides it). */
export interface ControllerFleet {
  link: FleetLink;
  /** Runs an operator's action on the controller, wherever it is. */
  send(action: string, args: unknown): Promise<unknown>;
  /** Something a controller waits on changed here (a candidate ready, a revision applied): say it now. */
  changed(): void;
  /** A fast trip on this instance while it follows. */
  trip(t: FollowerTrip): void;
  /** Why candidate traffic here would go unjudged now (no controller renews the lease, this instance's Redis is gone), or null. */
  unjudged(): string | null;
  /** How long past a window's end it is judged (the slices of other instances arrive a publication later). */
  judgeDelayMs: number;
  /** The store a controller writes through under the lease epoch it took: every write refused once that epoch is over. */
  storeFor(held: { holder: string; epoch: number }): RolloutStore;
}

/** The operator's actions, as a follower sends them to the controller. */
type Action = 'deploy' | 'promote' | 'step' | 'rollback' | 'abort' | 'pause' | 'resume' | 'trip';

export class RolloutController {
  private readonly traffic: Traffic;
  private readonly notifier: Notifier | undefined;
  private readonly colours: Colours;
  private reconciler: Reconciler;
  /** A fleet instance that does not hold the lease: it follows the deployment row. */
  private readonly follower: Follower | null = null;
  private leading: boolean;
  /** The lease epoch this instance drives under (a fleet's controller), else null. */
  private epoch: number | null = null;
  /** The take-over in progress: an action waits for it. */
  private leadingReady: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly clock: Clock;
  /** Each colour's job outcomes in 1 s slices (enqueue-to-outcome latency; a failed attempt is an error). */
  readonly jobs: SlicedWindow;
  /** Jobs on each colour's stream, as last read (proxy/job-outcomes.ts). */
  private readonly backlog: Record<Color, number> = { blue: 0, green: 0 };

  constructor(private readonly o: ControllerOptions) {
    const clock = (this.clock = o.clock ?? systemClock);
    const { store, supervisor, log, gauges, window } = o;
    const jobs = (this.jobs = o.jobs ?? new SlicedWindow());
    // Until init() has read the store: everything to the snapshot's active colour, never a candidate.
    this.traffic = new Traffic(o.routingPath, o.activeColor);
    // One notifier for the controller's life: its delivery state outlives a take-over's reconciler.
    this.notifier = o.notify && o.notify.targets.length > 0 ? new Notifier({
      ...o.notify, log: log.child({ component: 'notify' }),
      audit: ({ event, deployment: d, target, attempts, ok, error }) => store.audit({ eventType: 'notify', deploymentId: d.id, actor: 'controller', version: d.version, details: { event, target, attempts }, success: ok, error }).then(() => undefined),
    }) : undefined;
    this.colours = new Colours({
      supervisor, store, clock, log, gauges, releasesDir: o.releasesDir, releasesKeep: o.releasesKeep,
      inUse: (color) => this.inUse(color),
      running: () => (this.leading ? this.reconciler.runningVersion : this.follower?.status().deployment?.version),
      ...(o.keepDirs ? { keepDirs: o.keepDirs } : {}),
    });
    this.reconciler = this.newReconciler(o.activeColor, store);
    this.leading = o.fleet === undefined;
    if (o.fleet) {
      const fleet = o.fleet;
      this.follower = new Follower({
        store, supervisor, colours: this.colours, traffic: this.traffic, log,
        active: { version: o.initialRelease.version, color: o.activeColor },
        changed: () => fleet.changed(),
        trip: (t) => fleet.trip(t),
        unjudged: () => fleet.unjudged(),
        ...(o.mirror ? { mirror: o.mirror } : {}),
      });
    }
    this.colours.serve(o.activeColor, o.initialRelease.version);
  }

  /** Read per request by the router: an immutable object, swapped whole. */
  routingTable = (): RoutingTable => this.traffic.current();

  /** The release a colour serves, for metric labels. */
  releaseServedBy(color: Color): string {
    return this.colours.servedBy(color) ?? 'none';
  }

  /** One proxied response: into its colour's slice, then to the running deployment's fast trips. */
  record(color: Color, latencyMs: number, statusCode: number): void {
    (this.o.measure ?? this.o.window).record(color, latencyMs, statusCode >= 500, this.clock.now());
    if (this.leading) this.reconciler.observe(color, latencyMs, statusCode);
    else this.follower?.observe(color, statusCode);
  }

  /**
   * One answer to a copy of a live request (proxy/mirror.ts). An analysis copy is judged as the
   * candidate's request, if its deployment still runs; a warm-up's is not judged at all, nor is a
   * copy that got no answer (status 0: the mirror's own timeout or socket, not the release's doing;
   * a candidate that crashed is the fast trips' to see).
   */
  recordCopy(color: Color, purpose: MirrorRule['purpose'], latencyMs: number, statusCode: number, rolloutId: string | null): void {
    if (purpose !== 'analysis' || statusCode === 0 || !this.leading || !this.reconciler.judgingCopiesOf(rolloutId, color)) return;
    (this.o.measure ?? this.o.window).record(color, latencyMs, statusCode >= 500, this.clock.now());
    this.reconciler.observeCopy(color, latencyMs, statusCode);
  }

  /** One job attempt's outcome, reported by `color`'s worker: into its colour's job slice, then to the running deployment's fast trips. */
  recordJob(o: JobOutcome): void {
    const now = this.clock.now();
    const failed = o.outcome !== 'completed';
    this.jobs.record(o.color, o.latencyMs, failed, now);
    if (o.outcome === 'dead') this.jobs.recordMetric(o.color, DEAD_LETTER_METRIC, 1, now);
    if (this.leading) this.reconciler.observeJob(o.color, failed);
  }

  /** How many jobs wait (or run) on a colour's stream now. */
  noteJobBacklog(color: Color, jobs: number): void {
    this.backlog[color] = jobs;
  }

  /** One value of an app-reported metric (x-changelens-metric-<name>), into its colour's slice. */
  recordMetric(color: Color, name: string, value: number): void {
    (this.o.measure ?? this.o.window).recordMetric(color, name, value, this.clock.now());
  }

  /** A single appliance drives at once; a fleet instance follows until it takes the lease. */
  async init(): Promise<void> {
    if (this.leading) return this.reconciler.init();
    this.follower!.start();
    await this.follower!.sync();
  }

  /**
   * This fleet instance took the controller lease (epoch `held.epoch`): once its follower has
   * stopped, a fresh reconciler, writing under that epoch only and routing only while it still
   * drives, takes the running deployment over as after a restart (retried until it can, or until
   * the lease is lost). Resolves when it drives.
   */
  lead(held: { holder: string; epoch: number }): Promise<void> {
    const fleet = this.o.fleet;
    if (this.closed || !fleet || !this.follower) return Promise.resolve();
    if (this.leading && this.epoch === held.epoch) return this.leadingReady;
    if (this.leading) this.reconciler.standDown(); // an earlier epoch's, whatever it still had in flight
    this.leading = true;
    this.epoch = held.epoch;
    const follower = this.follower;
    const still = (): boolean => this.leading && this.epoch === held.epoch && !this.closed;
    this.leadingReady = (async () => {
      await follower.stop();
      for (let attempt = 1; still(); attempt++) {
        try {
          // What the fleet serves runs here first: the take-over routes everything to it.
          const serving = await follower.ensureActive();
          if (!still()) return;
          const reconciler: Reconciler = this.newReconciler(serving.color, fleet.storeFor(held), () => this.reconciler === reconciler && still());
          this.reconciler = reconciler;
          await reconciler.init();
          return;
        } catch (err) {
          this.o.log.warn({ err: (err as Error).message, attempt }, 'could not take the running deployment over as the controller; retrying');
          await new Promise((r) => setTimeout(r, Math.min(5_000, 250 * attempt)));
        }
      }
    })();
    return this.leadingReady;
  }

  /** This fleet instance lost the lease (or never had it): it stops driving and follows the row. */
  follow(): void {
    if (this.closed || !this.leading || !this.follower) return;
    this.leading = false;
    this.epoch = null;
    this.reconciler.standDown();
    // What it ended and started while it drove is done; what the fleet serves runs here.
    this.follower.reset(this.reconciler.activeRelease);
    this.follower.start();
  }

  /** Why this follower routes to the stable colour only (a dependency gone), or null. */
  degraded(): string | null {
    return this.leading ? null : this.follower?.why() ?? null;
  }

  /** Whether this instance drives deployments (always, on a single appliance). */
  get isController(): boolean {
    return this.leading;
  }

  /** What a follower runs and applies (its readiness, the revision), for its heartbeat; null on the controller. */
  following(): Following | null {
    return this.leading ? null : this.follower?.following() ?? null;
  }

  /** The controller's word that a deployment takes no more traffic (the fast path of a rollback). */
  stableNow(deploymentId: string, sentAtMs?: number): void {
    if (!this.leading) this.follower?.stableNow(deploymentId, sentAtMs);
  }

  deploy(req: DeployRequest): Promise<Deployment> {
    // Every instance starts the candidate from its own data dir: an artifact lives in one of them.
    if (this.o.fleet && req.artifact !== undefined) {
      return Promise.reject(new CL_ERR_INVALID_REQUEST('body/artifact: a fleet deploys built-in releases (their env and settings) only: an artifact is kept in one instance\'s data dir, and every instance must start the candidate'));
    }
    return this.act('deploy', req);
  }

  promote(actor: string): Promise<Deployment> {
    return this.act('promote', { actor });
  }

  rollback(actor: string, reason?: string): Promise<Deployment> {
    return this.act('rollback', { actor, reason });
  }

  promoteStep(actor: string, reason?: string, from?: StepExpectation): Promise<Deployment> {
    return this.act('step', { actor, reason, from });
  }

  abort(actor: string, reason?: string): Promise<Deployment> {
    return this.act('abort', { actor, reason });
  }

  pause(actor: string, reason?: string): Promise<Deployment> {
    return this.act('pause', { actor, reason });
  }

  resume(actor: string): Promise<Deployment> {
    return this.act('resume', { actor });
  }

  /**
   * Runs an action here when this instance drives, else on the controller (through the fleet).
   * The controller's command handler calls this with `local` (never forwarded again).
   */
  async act(action: Action, args: unknown, local = false): Promise<Deployment> {
    if (this.leading) await this.leadingReady;
    if (!this.leading) {
      if (local) throw new CL_ERR_NOT_CONTROLLER('it passed to another instance', action);
      return await this.o.fleet!.send(action, args) as Deployment;
    }
    const a = args as { actor: string; reason?: string };
    switch (action) {
      case 'deploy': return this.reconciler.deploy(args as DeployRequest);
      case 'promote': return this.reconciler.promote(a.actor);
      case 'step': return this.reconciler.promoteStep(a.actor, a.reason, (args as { from?: StepExpectation }).from);
      case 'rollback': return this.reconciler.rollback(a.actor, a.reason);
      case 'abort': return this.reconciler.abort(a.actor, a.reason);
      case 'pause': return this.reconciler.pause(a.actor, a.reason);
      case 'resume': return this.reconciler.resume(a.actor);
      case 'trip': {
        const t = args as FollowerTrip & { instance: string };
        this.reconciler.remoteTrip(t.deploymentId, t.instance, t.rule, t.observed, t.threshold, t.message);
        return this.reconciler.status().deployment as Deployment;
      }
    }
  }

  /** The running deployment (or null), with the routing it implies now. */
  status(): RolloutStatus & { routing: RoutingTable } {
    const s = this.leading || !this.follower ? this.reconciler.status() : this.follower.status();
    return { ...s, routing: this.traffic.current() };
  }

  /** Each notification target (shown by kind and host) with its last delivery and last failure. */
  notifications(): NotificationStatus[] {
    // Only the controller sends; another instance of a fleet has nothing true to say of them.
    return this.leading ? this.notifier?.status() ?? [] : [];
  }

  /** Stops the driver's timers (the proxy is shutting down); persisted state stays as it is. */
  close(): void {
    this.closed = true;
    void this.follower?.stop();
    this.reconciler.close();
  }

  /** A reconciler reads the pointers and any running deployment in `init` (a take-over, after a restart or for a lost lease). */
  private newReconciler(activeColor: Color, store: RolloutStore, drives?: () => boolean): Reconciler {
    const o = this.o;
    const { supervisor, log, gauges } = o;
    const clock = this.clock;
    return new Reconciler({
      store, supervisor, clock, log, traffic: drives ? this.traffic.fenced(drives) : this.traffic, colours: this.colours,
      analysis: new WindowAnalysis({ window: o.window, jobs: this.jobs, store, log, gauges, jobBacklog: (color) => this.backlog[color] }),
      events: new RolloutEvents({ store, hooks: o.hooks, notifier: this.notifier, log, gauges, now: () => clock.now() }),
      releasesDir: o.releasesDir, activeColor, initialRelease: o.initialRelease,
      ...(o.analysisLoad ? { analysisLoad: o.analysisLoad } : {}),
      ...(o.mirror ? { mirror: o.mirror } : {}),
      ...(o.fleet ? { fleet: o.fleet.link, judgeDelayMs: o.fleet.judgeDelayMs } : {}),
      ...(o.readyTimeoutMs !== undefined ? { readyTimeoutMs: o.readyTimeoutMs } : {}),
      ...(o.gate ? { gateUrl: o.gate.url, gateTimeoutMs: o.gate.timeoutMs } : {}),
    });
  }

  /** Active, or the running deployment's candidate: never stopped by a timer. */
  private inUse(color: Color): boolean {
    if (this.leading) return color === this.reconciler.activeColor || color === this.reconciler.candidateColor;
    const s = this.follower!.status();
    return color === s.active.color || color === s.deployment?.candidateColor;
  }
}
