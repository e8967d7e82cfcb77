// What an instance of a fleet that is not the controller does: it follows the running deployment
// from its row in Postgres (read every 500 ms; a rollback's signal comes at once), starts the candidate
// colour here, says when it is ready (the controller waits for every live instance), and applies
// the weights of the step the row is at; stable only while its own candidate is not ready. A swap
// to stable comes at once (`stableNow`), before the row says so. Its own candidate's crash or a run
// of 5xx routes to stable here and is sent to the controller, which rolls the fleet back.
//
// It also keeps this instance on the fleet's active release: an instance that was down during a
// promotion, or joins after one, boots the colour its own snapshot names, so it starts the active
// release first and routes to what it runs until then.
import type { Color } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import { onceBooted, other, type Colours } from './colours.js';
import type { Deployment } from './model.js';
import { systemClock, type MirrorLink, type RolloutStore, type SupervisorLink } from './ports.js';
import type { RolloutStatus } from './reconciler.js';
import { candidateWeight } from './state-machine.js';
import type { Traffic } from './traffic.js';
import { warmUp } from './warmup.js';

const READ_EVERY_MS = 500;

export interface FollowerTrip {
  deploymentId: string;
  rule: 'consecutive_5xx' | 'readiness';
  observed: number;
  threshold: number;
  message: string;
}

export interface Following {
  id: string;
  ready: boolean;
  failed: string | null;
  /** The deployment's revision whose routing this instance applies. */
  revision: number;
}

export class Follower {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private syncing: Promise<void> | null = null;
  private again = false;
  /** Starting the fleet's active release here, while it runs. */
  private converging: Promise<void> | null = null;
  private d: Deployment | null = null;
  /** The deployment this instance follows (runs its candidate for): only its end is acted on, only its candidate's 5xx count. */
  private followed: Deployment | null = null;
  /** The fleet's active release (the pointer). */
  private active: { version: string; color: Color };
  /** What this instance serves as its stable colour: the pointer once it runs it here. */
  private local: { version: string; color: Color };
  private followingNow: Following | null = null;
  /** The deployment whose candidate warms up here now (live requests are copied to it). */
  private warmingFor: string | null = null;
  /** The deployment swapped to stable here for good (a fast trip here, the controller's word, its rollback). */
  private stableFor: string | null = null;
  private consecutive5xx = 0;
  private tripped = false;
  /** Why it cannot read the row (Postgres), or null. */
  private unreadable: string | null = null;
  /** Why the candidate takes nothing here though the row gives it weight, or null. */
  private unjudged: string | null = null;

  constructor(private readonly o: {
    store: RolloutStore;
    supervisor: SupervisorLink;
    colours: Colours;
    traffic: Traffic;
    log: Logger;
    /** What this instance booted serving (its routing snapshot). */
    active: { version: string; color: Color };
    /** Something changed that the controller waits on (readiness, the revision applied): say it now. */
    changed: () => void;
    /** A fast trip here: the controller rolls the fleet back. */
    trip: (t: FollowerTrip) => void;
    /** Why this instance's candidate traffic would go unjudged now (no controller renews the lease; its Redis is gone), or null. */
    unjudged: () => string | null;
    /** The proxy's mirror: a candidate started here is warmed with synthetic GETs before it says it is ready (absent: it starts cold). */
    mirror?: MirrorLink;
  }) {
    this.active = o.active;
    this.local = o.active;
  }

  /** Follows from now on (a second call while it runs changes nothing). */
  start(): void {
    if (this.running) return;
    this.running = true;
    const tick = (): void => {
      void this.sync().finally(() => {
        if (this.running) this.timer = setTimeout(tick, READ_EVERY_MS);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  /** Stops following; resolves once nothing it began still acts (a read, a colour it was starting). */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.syncing;
    await this.converging;
  }

  /**
   * Forgets what it followed before this instance drove (it ended those deployments itself, and
   * made `active` run here): it follows afresh from the running deployment's row.
   */
  reset(active: { version: string; color: Color }): void {
    this.active = active;
    this.local = active;
    this.d = null;
    this.followed = null;
    this.followingNow = null;
    this.stableFor = null;
    this.consecutive5xx = 0;
    this.tripped = false;
    this.unjudged = null;
  }

  following(): Following | null {
    return this.followingNow;
  }

  /** Why this instance routes to the stable colour only, when a dependency is gone, or null. */
  why(): string | null {
    return this.unreadable ?? this.unjudged;
  }

  /** What this instance serves as stable (once the fleet's active release runs here, that one). */
  serving(): { version: string; color: Color } {
    return this.local;
  }

  status(): RolloutStatus {
    const d = this.d;
    return { active: this.local, deployment: d ? { ...d, weight: this.o.traffic.candidateWeight, lastVerdict: null, lastExplanation: null } : null };
  }

  /** The controller's word (sent at `sentAtMs`): deployment `id` takes no more traffic, here neither. */
  stableNow(id: string, sentAtMs?: number): void {
    const d = this.followed;
    if (!this.running || !d || d.id !== id) return;
    this.leave(d, 'signal', sentAtMs);
  }

  /** One response of `color` here: a run of 5xx from the candidate trips, as on the controller. */
  observe(color: Color, statusCode: number): void {
    const d = this.followed;
    if (!d || color !== d.candidateColor || this.stableFor === d.id || d.status.phase !== 'shifting') return;
    if (statusCode < 500) {
      this.consecutive5xx = 0;
      return;
    }
    const limit = d.plan.tripConsecutive5xx;
    if (++this.consecutive5xx === limit && limit > 0) {
      this.localTrip(d, { deploymentId: d.id, rule: 'consecutive_5xx', observed: this.consecutive5xx, threshold: limit, message: `${this.consecutive5xx} 5xx in a row from the candidate` });
    }
  }

  /** Reads the row and acts on it; a call while one runs makes that one read again after. Never rejects. */
  sync(): Promise<void> {
    if (this.syncing) {
      this.again = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      do {
        this.again = false;
        try {
          await this.syncOnce();
        } catch (err) {
          this.o.log.error({ err: (err as Error).message }, 'following the deployment failed; tried again at the next read');
        }
      } while (this.again && this.running);
    })().finally(() => { this.syncing = null; });
    return this.syncing;
  }

  private async syncOnce(): Promise<void> {
    const { store, traffic, log } = this.o;
    let d: Deployment | null;
    try {
      const [running, pointers] = await Promise.all([store.runningDeployment(), store.pointers()]);
      d = running;
      if (pointers.active) this.active = pointers.active;
      if (this.unreadable) log.info('reading the deployment from Postgres again');
      this.unreadable = null;
    } catch (err) {
      // Not knowing the step, it routes as it safely can: everything to the stable colour (not for good: it reads again).
      if (!this.unreadable) log.warn({ err: (err as Error).message }, 'cannot read the deployment from Postgres; routing to the stable colour only');
      this.unreadable = `Postgres unreachable: ${(err as Error).message}`;
      if (this.running) traffic.allTo(this.local.color);
      return;
    }
    if (!this.running) return;
    const previous = this.followed;
    if (previous && previous.id !== d?.id) {
      this.followed = null;
      await this.ended(previous);
    }
    if (!this.running) return;
    this.d = d;
    // The fleet's active release runs here before anything else: a colour this instance does not run takes no traffic.
    const converged = this.local.color === this.active.color && this.local.version === this.active.version;
    if (!converged) this.converge();
    if (!d) {
      traffic.allTo(this.local.color);
      this.followingNow = null;
      return;
    }
    if (!converged || d.stableColor !== this.local.color) {
      traffic.allTo(this.local.color); // it follows once it runs the deployment's stable release
      return;
    }
    if (this.followingNow?.id !== d.id) {
      this.followingNow = { id: d.id, ready: false, failed: null, revision: 0 };
      this.followed = d;
      this.stableFor = null;
      this.consecutive5xx = 0;
      this.tripped = false;
      void this.startCandidate(d);
    }
    this.followed = d;
    const f = this.followingNow;
    const { phase } = d.status;
    let applied = true;
    if (phase === 'shifting' || phase === 'paused') {
      // Stable only until its own candidate is ready here (an instance that joined mid-rollout), and
      // while nobody would judge it (no controller: another takes over within the lease; or this
      // instance's measurements cannot reach the verdict).
      const unjudged = this.o.unjudged();
      if (unjudged !== this.unjudged) {
        if (unjudged) log.warn({ deployment: d.id, why: unjudged }, 'routing to the stable colour only here');
        else log.info({ deployment: d.id }, 'following the deployment\'s weights again');
      }
      this.unjudged = unjudged;
      applied = f.ready && this.stableFor !== d.id && !unjudged;
      if (applied) traffic.split(d, candidateWeight(d.status));
      else this.withoutCandidate(d);
      if (applied) await this.watchCandidate(d);
    } else if (phase === 'rolling_back') {
      this.leave(d, 'row');
    } else {
      this.withoutCandidate(d); // starting, warming: the candidate takes nothing yet
    }
    // The controller moves a step only once every live instance applies it: said only when it does.
    if (applied && f.revision !== d.status.revision) {
      f.revision = d.status.revision;
      log.info({ deployment: d.id, phase, revision: f.revision, weight: traffic.candidateWeight }, 'applying the deployment\'s step here');
      this.o.changed();
    }
  }

  /** Every request to the stable colour; copies of them to the candidate while it warms up here. */
  private withoutCandidate(d: Deployment): void {
    if (this.warmingFor === d.id && this.stableFor !== d.id) this.o.traffic.warmup(d, d.plan.warmupMirror !== false);
    else this.o.traffic.toStable(d);
  }

  /** Starts the fleet's active release here (once at a time, in the background), then serves it. */
  private converge(): void {
    if (this.converging) return;
    this.converging = this.runActive(false).catch((err: Error) => {
      this.o.log.error({ err: err.message, color: this.active.color, version: this.active.version }, 'could not start the fleet\'s active release here; serving what runs, trying again');
    }).finally(() => { this.converging = null; });
  }

  /**
   * Before this instance drives (stopped as a follower): the fleet's active release, read now, runs
   * here and is what it serves, or this throws (the take-over tries again). Returns it.
   */
  async ensureActive(): Promise<{ version: string; color: Color }> {
    await this.converging;
    const { active } = await this.o.store.pointers();
    if (active) this.active = active;
    await this.runActive(true);
    return this.local;
  }

  private async runActive(evenStopped: boolean): Promise<void> {
    const { colours, supervisor, store, traffic, log } = this.o;
    const want = this.active;
    if (this.local.color === want.color && this.local.version === want.version) return;
    const release = await store.release(want.version);
    if (!release) throw new Error(`release ${want.version} is not recorded`);
    await onceBooted(() => colours.op(async () => {
      if (colours.servedBy(want.color) === want.version && await colours.isUp(want.color)) return;
      log.info({ color: want.color, version: want.version, serving: this.local }, 'starting the fleet\'s active release here');
      colours.cancelStop(want.color);
      await supervisor.stop(want.color);
      await supervisor.start(want.color, release);
      colours.serve(want.color, want.version);
    }), () => this.running || evenStopped);
    if (!this.running && !evenStopped) return;
    const previous = this.local;
    this.local = want;
    traffic.snapshot(want.color, { version: release.version, artifact: release.artifact, env: release.env });
    traffic.allTo(want.color);
    // The colour it served before: stopped soon, unless a stop is already set for it (kept warm after a promotion).
    if (previous.color !== want.color && !colours.stopScheduled(previous.color)) colours.stopLater(previous.color, 2, `this instance serves the fleet's active ${want.version} on ${want.color} now`);
    log.info({ color: want.color, version: want.version }, 'serving the fleet\'s active release here');
  }

  /** The candidate here: the release started (or the same one still warm reused), then ready. */
  private async startCandidate(d: Deployment): Promise<void> {
    const { colours, supervisor, store, log } = this.o;
    const f = this.followingNow!;
    try {
      colours.cancelStop(d.candidateColor);
      await onceBooted(() => colours.op(async () => {
        if (colours.servedBy(d.candidateColor) === d.version && await colours.isUp(d.candidateColor)) return;
        const release = await store.release(d.version);
        if (!release) throw new Error(`release ${d.version} is not recorded`);
        if (!this.running || this.d?.id !== d.id) return;
        await supervisor.stop(d.candidateColor);
        if (!this.running || this.d?.id !== d.id) return;
        await supervisor.start(d.candidateColor, release);
        colours.serve(d.candidateColor, d.version);
      }), () => this.running && this.followingNow === f);
      if (this.followingNow !== f || !this.running) return;
      // Warm, as the controller warms its own, before any user here reaches it (a cold candidate's
      // first answers would count against it in the fleet's windows).
      const seconds = d.plan.warmupSeconds ?? 0;
      if (this.o.mirror && seconds > 0 && colours.servedBy(d.candidateColor) === d.version) {
        // Copies of this instance's live GET/HEAD requests, topped up with synthetic GETs, as on the controller.
        this.warmingFor = d.id;
        this.withoutCandidate(d);
        let report: Awaited<ReturnType<typeof warmUp>>;
        try {
          report = await warmUp({
            clock: systemClock, mirror: this.o.mirror, color: d.candidateColor, seconds, paths: d.plan.warmupPaths ?? ['/'],
            sleep: (ms) => new Promise((r) => setTimeout(r, ms)), live: () => this.running && this.followingNow === f && this.stableFor !== d.id,
          });
        } finally {
          this.warmingFor = null;
        }
        if (this.running && this.d?.id === d.id) this.withoutCandidate(d);
        log.info({ deployment: d.id, ...report }, report.warm ? 'candidate warmed up on this instance' : 'candidate warm-up time over on this instance before it was warm');
      }
      if (this.followingNow !== f || !this.running) return;
      f.ready = colours.servedBy(d.candidateColor) === d.version;
      if (f.ready) log.info({ deployment: d.id, color: d.candidateColor, version: d.version }, 'candidate ready on this instance');
    } catch (err) {
      f.failed = (err as Error).message;
      log.error({ deployment: d.id, err: f.failed }, 'could not start the candidate on this instance');
    }
    if (!this.running) return;
    this.o.changed();
    void this.sync();
  }

  /** A candidate that crashed or stopped here trips, once. */
  private async watchCandidate(d: Deployment): Promise<void> {
    if (this.tripped) return;
    const up = await this.o.colours.isUp(d.candidateColor);
    if (!up && this.running && this.d?.id === d.id && this.stableFor !== d.id && this.d.status.phase === 'shifting') {
      this.localTrip(d, { deploymentId: d.id, rule: 'readiness', observed: 0, threshold: 1, message: `the candidate ${d.candidateColor} is not running or not ready on this instance` });
    }
  }

  private localTrip(d: Deployment, t: FollowerTrip): void {
    if (this.tripped) return;
    this.tripped = true;
    this.leave(d, 'trip');
    this.o.log.warn({ deployment: d.id, rule: t.rule, message: t.message }, 'fast trip on this instance: stable only here, and the controller rolls the fleet back');
    this.o.trip(t);
  }

  /** The deployment leaves the traffic here for good: stable only, and its worker stops. */
  private leave(d: Deployment, via: 'signal' | 'row' | 'trip' | 'end', sentAtMs?: number): void {
    this.o.traffic.toStable(d);
    if (this.stableFor === d.id) return;
    this.stableFor = d.id;
    // When (bench:fleet reads it: the controller's swap to this line is the rollback's propagation).
    this.o.log.info({ deployment: d.id, via, ...(sentAtMs ? { signalAgeMs: Date.now() - sentAtMs } : {}) }, 'the candidate left the traffic on this instance');
    this.o.colours.stopWorker(d.candidateColor, `${d.version} leaves the traffic`);
  }

  /** A deployment this instance followed has ended: what it runs now follows how it ended. */
  private async ended(prev: Deployment): Promise<void> {
    const { store, colours, traffic, log } = this.o;
    this.followingNow = null;
    let final: Deployment;
    try {
      final = await store.deployment(prev.id);
    } catch (err) {
      log.warn({ err: (err as Error).message, deployment: prev.id }, 'could not read how a followed deployment ended; the pointers decide');
      return;
    }
    if (!this.running) return;
    if (final.status.phase === 'promoted') {
      // The pointer names the candidate now: converge() makes it this instance's stable release
      // (the colour runs it already, so without a restart).
      log.info({ deployment: final.id, color: final.candidateColor }, 'the fleet promoted; this instance follows');
      colours.stopLater(other(final.candidateColor), final.plan.keepWarmSeconds, `kept warm ${final.plan.keepWarmSeconds} s after promoting ${final.version}`);
    } else {
      if (this.stableFor !== final.id) this.leave(final, 'end');
      traffic.allTo(this.local.color);
      colours.stopLater(final.candidateColor, final.plan.inspectSeconds, `${final.version} ${final.status.phase}; kept ${final.plan.inspectSeconds} s for inspection`);
    }
  }
}
