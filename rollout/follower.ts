// What an instance of a fleet that is not the controller does: it follows the running deployment
// from its row in Postgres (woken through Redis, reading every 500 ms anyway), starts the candidate
// colour here, says when it is ready (the controller waits for every live instance), and applies
// the weights of the step the row is at; stable only while its own candidate is not ready. A swap
// to stable comes at once (`stableNow`), before the row says so. Its own candidate's crash or a run
// of 5xx routes to stable here and is sent to the controller, which rolls the fleet back.
import type { Color } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import { other, type Colours } from './colours.js';
import type { Deployment } from './model.js';
import type { RolloutStore, SupervisorLink } from './ports.js';
import type { RolloutStatus } from './reconciler.js';
import { candidateWeight, isTerminal } from './state-machine.js';
import type { Traffic } from './traffic.js';

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
  revision: number;
}

export class Follower {
  private timer: NodeJS.Timeout | null = null;
  private syncing: Promise<void> | null = null;
  private again = false;
  private d: Deployment | null = null;
  private active: { version: string; color: Color };
  private followingNow: Following | null = null;
  /** The deployment swapped to stable here (a fast trip here, or the controller's word): it takes no more traffic here. */
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
    active: { version: string; color: Color };
    /** Something changed that the controller waits on (readiness, the revision applied): say it now. */
    changed: () => void;
    /** A fast trip here: the controller rolls the fleet back. */
    trip: (t: FollowerTrip) => void;
    /** Why this instance's candidate traffic would go unjudged now (no controller renews the lease; its Redis is gone), or null. */
    unjudged: () => string | null;
  }) {
    this.active = o.active;
  }

  start(): void {
    const tick = (): void => {
      void this.sync().finally(() => {
        if (this.timer !== null) this.timer = setTimeout(tick, READ_EVERY_MS);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  following(): Following | null {
    return this.followingNow;
  }

  /** Why this instance routes to the stable colour only, when a dependency is gone, or null. */
  why(): string | null {
    return this.unreadable ?? this.unjudged;
  }

  status(): RolloutStatus {
    const d = this.d;
    return { active: this.active, deployment: d ? { ...d, weight: this.o.traffic.candidateWeight, lastVerdict: null, lastExplanation: null } : null };
  }

  /** The controller's word: deployment `id` takes no more traffic, here neither. */
  stableNow(id: string): void {
    const d = this.d;
    if (!d || d.id !== id) return;
    this.toStable(d);
  }

  /** One response of `color` here: a run of 5xx from the candidate trips, as on the controller. */
  observe(color: Color, statusCode: number): void {
    const d = this.d;
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

  /** Reads the row and acts on it; a call while one runs makes that one read again after. */
  sync(): Promise<void> {
    if (this.syncing) {
      this.again = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      do {
        this.again = false;
        await this.syncOnce();
      } while (this.again);
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
      // Not knowing the step, it routes as it safely can: everything to the stable colour.
      if (!this.unreadable) log.warn({ err: (err as Error).message }, 'cannot read the deployment from Postgres; routing to the stable colour only');
      this.unreadable = `Postgres unreachable: ${(err as Error).message}`;
      if (this.d) this.toStable(this.d);
      return;
    }
    const previous = this.d;
    if (previous && previous.id !== d?.id) await this.ended(previous);
    this.d = d;
    if (!d) {
      traffic.allTo(this.active.color);
      this.followingNow = null;
      return;
    }
    if (this.followingNow?.id !== d.id) {
      this.followingNow = { id: d.id, ready: false, failed: null, revision: 0 };
      this.stableFor = null;
      this.consecutive5xx = 0;
      this.tripped = false;
      void this.startCandidate(d);
    }
    const f = this.followingNow;
    const { phase } = d.status;
    if (phase === 'shifting' || phase === 'paused') {
      // Stable only until its own candidate is ready here (an instance that joined mid-rollout).
      // And stable only while nobody would judge it here (no controller: another takes over within
      // the lease; or this instance's measurements cannot reach the verdict).
      const unjudged = this.o.unjudged();
      if (unjudged !== this.unjudged) {
        if (unjudged) log.warn({ deployment: d.id, why: unjudged }, 'routing to the stable colour only here');
        else log.info({ deployment: d.id }, 'following the deployment\'s weights again');
      }
      this.unjudged = unjudged;
      if (f.ready && this.stableFor !== d.id && !unjudged) traffic.split(d, candidateWeight(d.status));
      else traffic.toStable(d);
      if (f.ready && this.stableFor !== d.id) await this.watchCandidate(d);
    } else if (phase === 'rolling_back' || isTerminal(phase)) {
      this.toStable(d);
    } else {
      traffic.allTo(d.stableColor); // starting, warming: the candidate takes nothing yet
    }
    if (f.revision !== d.status.revision && (f.ready || phase !== 'shifting')) {
      f.revision = d.status.revision;
      log.info({ deployment: d.id, phase, revision: f.revision, weight: traffic.candidateWeight }, 'applying the deployment\'s step here');
      this.o.changed();
    }
  }

  /** The candidate here: the release started (or the same one still warm reused), then ready. */
  private async startCandidate(d: Deployment): Promise<void> {
    const { colours, supervisor, store, log } = this.o;
    const f = this.followingNow!;
    try {
      colours.cancelStop(d.candidateColor);
      await colours.op(async () => {
        if (colours.servedBy(d.candidateColor) === d.version && await colours.isUp(d.candidateColor)) return;
        const release = await store.release(d.version);
        if (!release) throw new Error(`release ${d.version} is not recorded`);
        await supervisor.stop(d.candidateColor);
        if (this.d?.id !== d.id) return;
        await supervisor.start(d.candidateColor, release);
        colours.serve(d.candidateColor, d.version);
      });
      if (this.followingNow !== f) return;
      f.ready = true;
      log.info({ deployment: d.id, color: d.candidateColor, version: d.version }, 'candidate ready on this instance');
    } catch (err) {
      f.failed = (err as Error).message;
      log.error({ deployment: d.id, err: f.failed }, 'could not start the candidate on this instance');
    }
    this.o.changed();
    void this.sync();
  }

  /** A candidate that crashed or stopped here trips, once. */
  private async watchCandidate(d: Deployment): Promise<void> {
    if (this.tripped) return;
    const up = await this.o.colours.isUp(d.candidateColor);
    if (!up && this.d?.id === d.id && this.stableFor !== d.id && this.d.status.phase === 'shifting') {
      this.localTrip(d, { deploymentId: d.id, rule: 'readiness', observed: 0, threshold: 1, message: `the candidate ${d.candidateColor} is not running or not ready on this instance` });
    }
  }

  private localTrip(d: Deployment, t: FollowerTrip): void {
    if (this.tripped) return;
    this.tripped = true;
    this.toStable(d);
    this.o.log.warn({ deployment: d.id, rule: t.rule, message: t.message }, 'fast trip on this instance: stable only here, and the controller rolls the fleet back');
    this.o.trip(t);
  }

  private toStable(d: Deployment): void {
    this.o.traffic.toStable(d);
    if (this.stableFor === d.id) return;
    this.stableFor = d.id;
    this.o.colours.stopWorker(d.candidateColor, `${d.version} leaves the traffic`);
  }

  /** A deployment this instance followed has ended: what it runs now follows how it ended. */
  private async ended(prev: Deployment): Promise<void> {
    const { store, colours, traffic, log } = this.o;
    let final: Deployment;
    try {
      final = await store.deployment(prev.id);
    } catch {
      return;
    }
    if (final.status.phase === 'promoted') {
      traffic.allTo(final.candidateColor);
      const release = await store.release(final.version);
      traffic.snapshot(final.candidateColor, release ? { version: release.version, artifact: release.artifact, env: release.env } : undefined);
      colours.stopLater(other(final.candidateColor), final.plan.keepWarmSeconds, `kept warm ${final.plan.keepWarmSeconds} s after promoting ${final.version}`);
      log.info({ deployment: final.id, color: final.candidateColor }, 'the fleet promoted; this instance follows');
    } else {
      traffic.allTo(final.stableColor);
      if (this.stableFor !== final.id) colours.stopWorker(final.candidateColor, `${final.version} ${final.status.phase}`);
      colours.stopLater(final.candidateColor, final.plan.inspectSeconds, `${final.version} ${final.status.phase}; kept ${final.plan.inspectSeconds} s for inspection`);
    }
  }
}
