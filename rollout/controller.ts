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
import type { HookOptions } from './hooks.js';
import type { Deployment, DeployRequest } from './model.js';
import { systemClock, type Clock, type MirrorLink, type RolloutGauges, type RolloutStore, type SupervisorLink } from './ports.js';
import { Reconciler, type RolloutStatus } from './reconciler.js';
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
}

export class RolloutController {
  private readonly traffic: Traffic;
  private readonly colours: Colours;
  private readonly reconciler: Reconciler;
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
    this.colours = new Colours({
      supervisor, store, clock, log, gauges, releasesDir: o.releasesDir, releasesKeep: o.releasesKeep,
      inUse: (color) => color === this.reconciler.activeColor || color === this.reconciler.candidateColor,
      running: () => this.reconciler.runningVersion,
      ...(o.keepDirs ? { keepDirs: o.keepDirs } : {}),
    });
    this.reconciler = new Reconciler({
      store, supervisor, clock, log, traffic: this.traffic, colours: this.colours,
      analysis: new WindowAnalysis({ window, jobs, store, log, gauges, jobBacklog: (color) => this.backlog[color] }),
      events: new RolloutEvents({ store, hooks: o.hooks, log, gauges, now: () => clock.now() }),
      releasesDir: o.releasesDir, activeColor: o.activeColor, initialRelease: o.initialRelease,
      ...(o.analysisLoad ? { analysisLoad: o.analysisLoad } : {}),
      ...(o.mirror ? { mirror: o.mirror } : {}),
    });
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
    this.o.window.record(color, latencyMs, statusCode >= 500, this.clock.now());
    this.reconciler.observe(color, latencyMs, statusCode);
  }

  /**
   * One answer to a copy of a live request (proxy/mirror.ts). An analysis copy is judged as the
   * candidate's request, if its deployment still runs; a warm-up's is not judged at all, nor is a
   * copy that got no answer (status 0: the mirror's own timeout or socket, not the release's doing;
   * a candidate that crashed is the fast trips' to see).
   */
  recordCopy(color: Color, purpose: MirrorRule['purpose'], latencyMs: number, statusCode: number, rolloutId: string | null): void {
    if (purpose !== 'analysis' || statusCode === 0 || !this.reconciler.judgingCopiesOf(rolloutId, color)) return;
    this.o.window.record(color, latencyMs, statusCode >= 500, this.clock.now());
    this.reconciler.observeCopy(color, latencyMs, statusCode);
  }

  /** One job attempt's outcome, reported by `color`'s worker: into its colour's job slice, then to the running deployment's fast trips. */
  recordJob(o: JobOutcome): void {
    const now = this.clock.now();
    const failed = o.outcome !== 'completed';
    this.jobs.record(o.color, o.latencyMs, failed, now);
    if (o.outcome === 'dead') this.jobs.recordMetric(o.color, DEAD_LETTER_METRIC, 1, now);
    this.reconciler.observeJob(o.color, failed);
  }

  /** How many jobs wait (or run) on a colour's stream now. */
  noteJobBacklog(color: Color, jobs: number): void {
    this.backlog[color] = jobs;
  }

  /** One value of an app-reported metric (x-changelens-metric-<name>), into its colour's slice. */
  recordMetric(color: Color, name: string, value: number): void {
    this.o.window.recordMetric(color, name, value, this.clock.now());
  }

  init(): Promise<void> {
    return this.reconciler.init();
  }

  deploy(req: DeployRequest): Promise<Deployment> {
    return this.reconciler.deploy(req);
  }

  promote(actor: string): Promise<Deployment> {
    return this.reconciler.promote(actor);
  }

  rollback(actor: string, reason?: string): Promise<Deployment> {
    return this.reconciler.rollback(actor, reason);
  }

  abort(actor: string, reason?: string): Promise<Deployment> {
    return this.reconciler.abort(actor, reason);
  }

  pause(actor: string, reason?: string): Promise<Deployment> {
    return this.reconciler.pause(actor, reason);
  }

  resume(actor: string): Promise<Deployment> {
    return this.reconciler.resume(actor);
  }

  /** The running deployment (or null), with the routing it implies now. */
  status(): RolloutStatus & { routing: RoutingTable } {
    return { ...this.reconciler.status(), routing: this.traffic.current() };
  }

  /** Stops the driver's timers (the proxy is shutting down); persisted state stays as it is. */
  close(): void {
    this.reconciler.close();
  }
}
