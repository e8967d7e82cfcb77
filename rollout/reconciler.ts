// The reconciler: drives the one running deployment from its start to its end. It starts the
// candidate colour, moves it step by step as its strategy says, acts on each window's verdict and
// on fast trips, and ends it (promotion, rollback, abort, failure) — persisting every transition
// through the store and the state machine. Operator actions take the same lock and wake it. A
// proxy that restarts takes over what the previous one left running.
//
// Where a canary moves to its next step: `analyse` → `passStep` (or `holdAtGate`, until
// `promoteStep` → `approveGate`). Who changes the routing table:
// this file only, through `Traffic` (traffic.ts), in `init`, `enterStep`/`setWeights`, `toStable`,
// `finishPromotion` and `finish`.
import type { Color } from '../lib/config.js';
import { CL_ERR_DEPLOYMENT_RUNNING, CL_ERR_INVALID_REQUEST, CL_ERR_NO_DEPLOYMENT, CL_ERR_ROLLOUT_BAD_TRANSITION } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import type { Logger } from '../lib/logger.js';
import type { RuleResult, WindowJudgement, WindowVerdict } from '../monitoring/index.js';
import { GRACE_MS, type WindowAnalysis } from './analysis.js';
import type { StartAnalysisLoad } from './analysis-load.js';
import { onceBooted, other, type Colours } from './colours.js';
import type { RolloutEvents } from './events.js';
import { FastTrips } from './fast-trips.js';
import type { Deployment, DeployRequest, Release, StoredVerdict } from './model.js';
import { sleep, type Clock, type FleetLink, type MirrorLink, type RolloutStore, type SupervisorLink } from './ports.js';
import { prepareRelease } from './release-import.js';
import { judging, newRun, type Run } from './run.js';
import { atGate, GATE, initialStatus, isTerminal, transition, candidateWeight, type DeploymentEvent, type Phase } from './state-machine.js';
import { pollGate } from './gate-webhook.js';
import { strategyOf } from './strategies/index.js';
import { summarise } from './summary.js';
import type { Traffic } from './traffic.js';
import { warmUp } from './warmup.js';

/** After a rollback's swap: requests in flight at it finish, and any that still reach the candidate are counted. */
const ROLLBACK_SETTLE_MS = 200;

export interface ReconcilerParts {
  store: RolloutStore;
  supervisor: SupervisorLink;
  clock: Clock;
  log: Logger;
  traffic: Traffic;
  colours: Colours;
  analysis: WindowAnalysis;
  events: RolloutEvents;
  releasesDir: string;
  /** Drives both colours for a plan with an analysis load (the proxy's own port); absent: not offered. */
  analysisLoad?: StartAnalysisLoad;
  /** The proxy's mirror, for warm-ups; absent: a candidate takes its first step cold. */
  mirror?: MirrorLink;
  /** The other instances of a fleet (rollout/ports.ts); absent on a single appliance. */
  fleet?: FleetLink;
  /** How long past a window's end it is judged: the fleet's slices arrive a publication later. Default GRACE_MS. */
  judgeDelayMs?: number;
  /** How long every fleet instance has to run the candidate ready (the supervisor's own start bound). */
  readyTimeoutMs?: number;
  /** Asked (POST) every window while a deployment waits at a gate: a 2xx approves (CHANGELENS_GATE_URL). */
  gateUrl?: string;
  /** How long the gate webhook may take to answer (the hooks' timeout). */
  gateTimeoutMs?: number;
  /** The active colour the routing snapshot gave at start, and the release it runs. */
  activeColor: Color;
  initialRelease: { version: string; artifact: string; env: Record<string, string> };
}

export interface RolloutStatus {
  active: { version: string; color: Color };
  deployment: (Deployment & { weight: number; lastVerdict: WindowVerdict | null; lastExplanation: string | null }) | null;
}

/** How the judge's and the deadline's pauses begin (an operator's is anything else): read back on take-over. */
const INCONCLUSIVE = 'no window of step';
const DEADLINE = 'progress deadline';

/** What a caller of promoteStep saw: it moves only that deployment, from that step (and gate). */
export interface StepExpectation { deploymentId: string; stepIndex: number; atGate: boolean }

/** Finished, or rolling back (a row a proxy of an earlier version left in that phase). */
const ending = (run: Run): boolean => isTerminal(run.d.status.phase) || run.d.status.phase === 'rolling_back';

export class Reconciler {
  private active: { version: string; color: Color };
  private current: Run | null = null;
  /** A rolled-back run whose timing still counts candidate requests, until it settles or a new deployment starts. */
  private settling: Run | null = null;
  private lock: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Stood down: another instance of the fleet drives; nothing here changes routing or processes any more. */
  private deposed = false;
  private readonly trips: FastTrips;

  constructor(private readonly o: ReconcilerParts) {
    this.active = { version: o.initialRelease.version, color: o.activeColor };
    this.trips = new FastTrips({
      supervisor: o.supervisor, analysis: o.analysis, clock: o.clock,
      trip: (run, rule, observed, threshold, message, kind) => this.trip(run, rule, observed, threshold, message, kind),
      watching: (run) => !this.closed && this.current === run,
    });
  }

  /** The running deployment's candidate colour, if any. */
  get candidateColor(): Color | null {
    return this.current?.d.candidateColor ?? null;
  }

  get runningVersion(): string | undefined {
    return this.current?.d.version;
  }

  get activeColor(): Color {
    return this.active.color;
  }

  get activeRelease(): { version: string; color: Color } {
    return this.active;
  }

  /** One proxied response of `color`: counted against a rollback in progress, or fed to the fast trips. */
  observe(color: Color, latencyMs: number, statusCode: number): void {
    const run = this.current ?? this.settling;
    if (run === null || color !== run.d.candidateColor) return;
    const rb = run.rollback;
    if (rb) {
      const now = this.o.clock.now();
      if (now - latencyMs >= rb.swappedAtMs) rb.candidateRequestsAfterSwap++;
      else if (now >= rb.swappedAtMs) rb.candidateInFlightAtSwap++;
      return;
    }
    this.trips.count(run, latencyMs, statusCode);
  }

  /** One job attempt's outcome from `color`'s worker: the candidate's feed the fast trips while it is judged, the stable's their comparison. */
  observeJob(color: Color, failed: boolean): void {
    const run = this.current;
    if (run === null || run.rollback) return;
    if (color === run.d.candidateColor) this.trips.countJob(run, failed);
    else this.trips.countStableJob(run, failed);
  }

  /** Whether an analysis copy of rollout `rolloutId` to `color` is evidence now: its deployment runs, judged, not rolling back. */
  judgingCopiesOf(rolloutId: string | null, color: Color): boolean {
    const run = this.current;
    return run !== null && run.d.id === rolloutId && color === run.d.candidateColor && !run.rollback;
  }

  /** One answer to an analysis copy (--mirror-percent): evidence for the fast trips, never a client's request after a swap. */
  observeCopy(color: Color, latencyMs: number, statusCode: number): void {
    const run = this.current;
    if (run === null || run.rollback || color !== run.d.candidateColor) return;
    this.trips.count(run, latencyMs, statusCode);
  }

  /** Reads pointers and any deployment a previous proxy left running, and takes it over safely. */
  async init(): Promise<void> {
    const { store, traffic, colours, log } = this.o;
    await store.ensureInitialRelease({ ...this.o.initialRelease, createdBy: 'appliance' }, this.o.activeColor);
    const { active } = await store.pointers();
    if (active) {
      this.active = active;
      colours.serve(active.color, active.version);
      if (active.color !== this.o.activeColor) log.warn({ snapshot: this.o.activeColor, database: active.color }, 'routing snapshot and database disagree on the active colour; the database wins');
      traffic.allTo(active.color);
      const release = await store.release(active.version);
      traffic.snapshot(active.color, release ? { version: release.version, artifact: release.artifact, env: release.env } : undefined);
    }
    this.publish();
    const running = await store.runningDeployment();
    if (running) await this.takeOver(running);
  }

  /** Starts a deployment; resolves once it is recorded (the rollout goes on in the background). */
  deploy(req: DeployRequest): Promise<Deployment> {
    return this.locked(async () => {
      const { store, clock } = this.o;
      // Refused before anything is copied: one deployment at a time (Postgres decides races below).
      if (this.current) throw new CL_ERR_DEPLOYMENT_RUNNING(this.current.d.id, this.current.d.version, this.current.d.status.phase);
      const release = await prepareRelease(store, this.o.releasesDir, req);
      const steps = strategyOf(req.strategy).steps(req.steps);
      const stableColor = this.active.color;
      const d = await store.createDeployment({
        id: newId('dep'), version: release.version, strategy: req.strategy, stableVersion: this.active.version, stableColor,
        candidateColor: other(stableColor), status: initialStatus(steps), plan: req.plan, actor: req.actor,
      });
      await this.o.events.audit('deploy', d, req.actor, { strategy: d.strategy, steps, plan: d.plan, candidateColor: d.candidateColor, stableVersion: d.stableVersion });
      const run = newRun(d, release, clock.now());
      this.current = run;
      this.settling = null; // the candidate colour is this deployment's now
      this.publish();
      void this.o.events.announce('deploy', run.d);
      void this.drive(run);
      return d;
    });
  }

  promote(actor: string): Promise<Deployment> {
    return this.action('promote', (run) => this.finishPromotion(run, { type: 'promote' }, actor));
  }

  /**
   * The next step now (an operator's confirm-promotion, Flagger's gate): from shifting or from a
   * pause, whoever made it; the last step promotes. The new step is judged from its start.
   */
  promoteStep(actor: string, reason?: string, from?: StepExpectation): Promise<Deployment> {
    return this.action('step', async (run) => {
      const { d } = run;
      // A fast trip swapped to stable (its rollback waits for the lock): nothing to advance.
      if (run.rollback) throw new CL_ERR_ROLLOUT_BAD_TRANSITION('rolling back', 'advance', 'nothing: a fast trip is rolling it back');
      // What the caller saw, checked under the lock: a second click, a retry, or a webhook's
      // approval after a person's moves nothing a second time.
      if (from && (from.deploymentId !== d.id || from.stepIndex !== d.status.stepIndex || from.atGate !== atGate(d.status))) {
        throw new CL_ERR_ROLLOUT_BAD_TRANSITION(`${d.status.phase} at step ${d.status.stepIndex + 1}${atGate(d.status) ? ' (a gate)' : ''}`, 'step', `nothing from step ${from.stepIndex + 1}${from.atGate ? ' (a gate)' : ''}: it moved on already`);
      }
      if (atGate(d.status)) return this.approveGate(run, actor, reason);
      if (d.status.phase === 'shifting' || d.status.phase === 'paused') {
        if (d.status.stepIndex >= d.status.steps.length - 1) return this.finishPromotion(run, { type: 'promote' }, actor);
      }
      await this.apply(run, { type: 'advance' }); // refused (naming the phase) outside shifting and paused
      run.pausedByOperator = false;
      run.deadlinePassed = false;
      await this.o.events.audit('step', run.d, actor, { stepIndex: run.d.status.stepIndex, weight: run.d.status.steps[run.d.status.stepIndex], by: 'operator', ...(reason ? { reason } : {}) });
      this.enterStep(run);
      if (strategyOf(d.strategy).promotesOnEntering(run.d.status)) await this.finishPromotion(run, { type: 'step_passed' }, actor);
    });
  }

  /** A gate's approval: the step it held is entered (the last one promotes; direct promotes). */
  private async approveGate(run: Run, actor: string, reason?: string): Promise<void> {
    const { d } = run;
    const strategy = strategyOf(d.strategy);
    const first = d.status.stepIndex === 0;
    await this.apply(run, { type: 'approve' });
    run.pausedByOperator = false;
    run.deadlinePassed = false;
    await this.o.events.audit('approve', run.d, actor, { stepIndex: run.d.status.stepIndex, weight: run.d.status.steps[run.d.status.stepIndex], ...(reason ? { reason } : {}) });
    if (!strategy.judged) return this.finishPromotion(run, { type: 'promote' }, actor);
    // Blue/green is judged against the stable colour just before its switch: that is now.
    if (first && strategy.baseline === 'before-switch') this.o.analysis.captureBaseline(run, this.o.clock.now());
    this.enterStep(run);
    if (strategy.promotesOnEntering(run.d.status)) await this.finishPromotion(run, { type: 'step_passed' }, actor);
  }

  rollback(actor: string, reason = 'operator rollback'): Promise<Deployment> {
    return this.action('rollback', (run) => this.rollBack(run, reason, 'operator', actor, this.o.clock.monotonic()));
  }

  abort(actor: string, reason = 'aborted by operator'): Promise<Deployment> {
    return this.action('abort', async (run) => {
      transition(run.d.status, { type: 'abort', reason }); // refused (before any swap) when it cannot abort
      this.toStable(run, this.o.clock.monotonic());
      await this.apply(run, { type: 'abort', reason });
      await this.o.events.audit('abort', run.d, actor, { reason });
      void this.o.events.announce('aborted', run.d);
      this.o.colours.stopLater(run.d.candidateColor, run.d.plan.inspectSeconds, `aborted ${run.d.version}; kept ${run.d.plan.inspectSeconds} s for inspection`);
      this.finish(run);
    });
  }

  pause(actor: string, reason = 'paused by operator'): Promise<Deployment> {
    // A gate is told from an operator's pause by its reason's first words: those are the gate's.
    if (reason.startsWith(GATE)) return Promise.reject(new CL_ERR_INVALID_REQUEST(`reason: may not begin with "${GATE}" (how a gate's pause begins); say it another way`));
    return this.action('pause', async (run) => {
      await this.apply(run, { type: 'pause', reason });
      run.pausedByOperator = true;
      await this.o.events.audit('pause', run.d, actor, { reason, stepIndex: run.d.status.stepIndex });
    });
  }

  resume(actor: string): Promise<Deployment> {
    return this.action('resume', async (run) => {
      await this.apply(run, { type: 'resume' });
      // A resumed step gets its whole analysis period again, and the progress deadline starts over.
      run.stepStartedMs = run.progressMs = this.o.clock.now();
      run.pausedByOperator = false;
      run.deadlinePassed = false;
      await this.o.events.audit('resume', run.d, actor, { stepIndex: run.d.status.stepIndex });
    });
  }

  status(): RolloutStatus {
    const run = this.current;
    return {
      active: this.active,
      deployment: run ? { ...run.d, weight: this.o.traffic.candidateWeight, lastVerdict: run.history.at(-1) ?? null, lastExplanation: run.lastExplanation } : null,
    };
  }

  /** Stops the driver (the proxy is shutting down); persisted state stays as it is. */
  close(): void {
    this.standDown();
    this.o.colours.close();
  }

  /** Stops driving, changing nothing: another instance of the fleet holds the lease now. */
  standDown(): void {
    this.deposed = true;
    this.closed = true;
    if (this.current) this.stopLoad(this.current);
    this.current?.wake();
  }

  /** A fast trip on another instance of the fleet: the fleet rolls back, as for one here. */
  remoteTrip(deploymentId: string, instance: string, rule: RuleResult['rule'], observed: number, threshold: number, message: string): void {
    const run = this.current;
    if (!run || run.d.id !== deploymentId || !judging(run)) return;
    this.trip(run, rule, observed, threshold, `${message} (instance ${instance})`);
  }

  // ---- the driver ----

  private async drive(run: Run): Promise<void> {
    const { log, supervisor, colours, analysis, clock } = this.o;
    const { d } = run;
    const strategy = strategyOf(d.strategy);
    try {
      // A colour left running (kept warm, a rolled-back candidate kept for inspection, or still
      // starting for an aborted deployment) goes first. The supervisor runs one change at a time,
      // so this stop waits for any start in flight: the colour ends up running this release.
      colours.cancelStop(d.candidateColor);
      let started: boolean;
      try {
        // One deployment's stop-and-start of a colour never interleaves with another's (a deploy
        // right after an abort whose start is still in flight).
        started = await onceBooted(() => colours.op(async () => {
          if (ending(run)) return false;
          // The same release still warm there (kept after a promotion or a rollback): reuse it, so
          // switching back to the previous release is instant. A release never changes.
          if (colours.servedBy(d.candidateColor) === d.version && await colours.isUp(d.candidateColor)) return true;
          await supervisor.stop(d.candidateColor);
          if (ending(run)) return false;
          await supervisor.start(d.candidateColor, run.release);
          colours.serve(d.candidateColor, d.version);
          return true;
        }), () => !ending(run));

      } catch (err) {
        await this.locked(async () => {
          if (ending(run)) return;
          await this.apply(run, { type: 'not_ready', reason: `${d.candidateColor} did not become ready: ${(err as Error).message}` });
          await this.o.events.audit('failed', run.d, 'controller', { reason: run.d.status.reason }, false, (err as Error).message);
          void this.o.events.announce('failed', run.d);
          this.finish(run);
        });
        if (!this.deposed) await colours.op(() => supervisor.stop(d.candidateColor)).catch(() => {});
        return;
      }
      if (!started || !(await this.step(run, () => this.apply(run, { type: 'started' })))) {
        // Aborted while it started: nobody needs it, unless a newer deployment took the colour over.
        await colours.op(async () => {
          if (!this.deposed && this.current?.d.candidateColor !== d.candidateColor && this.active.color !== d.candidateColor) await supervisor.stop(d.candidateColor);
        }).catch(() => {});
        return;
      }
      // A preview: reachable by pin only (x-changelens-color), for a person or a smoke test to look first.
      const previewMs = strategy.previewMs(d.plan);
      if (previewMs > 0) await this.sleep(run, previewMs);
      // Blue/green's baseline is the stable colour before the warm-up's copies loaded the box.
      if (strategy.baseline === 'before-switch') analysis.captureBaseline(run, clock.now());
      await this.warmUp(run);
      // A fleet: no instance sends the candidate traffic before every live one runs it ready (they
      // start and warm theirs while this one warms its own).
      if (this.o.fleet && !(await this.fleetReady(run))) return;
      if (!(await this.step(run, async () => {
        const ready = (): Promise<void> => this.o.events.audit('ready', run.d, 'controller', { candidateColor: d.candidateColor, ...(run.warmup ? { warmup: run.warmup } : {}) });
        // A gate before the first step: ready, and held at no traffic until approved.
        if (d.plan.gates?.includes(0)) {
          await ready();
          await this.holdAtGate(run);
        } else {
          await this.apply(run, { type: 'ready' });
          await ready();
          if (!strategy.judged) await this.finishPromotion(run, { type: 'promote' }, 'controller');
          else this.enterStep(run);
        }
      }))) return;
      // Unjudged (direct) and held at a gate: its approval promotes; there are no windows to judge.
      if (!strategy.judged) return;
      this.trips.start(run);
      await this.analyse(run);
    } catch (err) {
      // Postgres unreachable, most likely: send everything to the stable colour and stay there.
      log.error({ err: (err as Error).message, deployment: d.id }, 'rollout driver failed; all traffic to the stable colour');
      if (!isTerminal(run.d.status.phase) && !run.rollback) this.toStable(run, clock.monotonic());
    }
  }

  /** Every live instance runs the candidate ready; else the deployment fails (naming the instance) and the candidate stops here. */
  private async fleetReady(run: Run): Promise<boolean> {
    const { d } = run;
    try {
      await this.o.fleet!.everyoneReady(d, this.o.readyTimeoutMs ?? 60_000, () => !ending(run) && !this.closed);
      return !ending(run) && !this.closed;
    } catch (err) {
      // Only the deployment this call failed gives up its candidate (a newer one may use the colour by now).
      const failedHere = await this.locked(async () => {
        if (ending(run) || this.deposed) return false;
        await this.apply(run, { type: 'not_ready', reason: `${d.candidateColor} did not become ready on every instance: ${(err as Error).message}` });
        await this.o.events.audit('failed', run.d, 'controller', { reason: run.d.status.reason }, false, (err as Error).message);
        void this.o.events.announce('failed', run.d);
        this.finish(run);
        return true;
      });
      if (failedHere) await this.o.colours.op(() => this.o.supervisor.stop(d.candidateColor)).catch(() => {});
      return false;
    }
  }

  /**
   * Before the first step: the candidate answers copies of live GET/HEAD requests (or synthetic
   * GETs of the plan's paths) until it is warm or the plan's warm-up time is over; nobody judges them.
   */
  private async warmUp(run: Run): Promise<void> {
    const { plan } = run.d;
    const { mirror, traffic, log, clock } = this.o;
    const seconds = plan.warmupSeconds ?? 0;
    if (!mirror || seconds <= 0 || ending(run) || this.closed) return;
    const live = (): boolean => !ending(run) && !this.closed && !run.rollback;
    traffic.warmup(run.d, plan.warmupMirror !== false);
    try {
      run.warmup = await warmUp({ clock, mirror, color: run.d.candidateColor, seconds, paths: plan.warmupPaths ?? ['/'], sleep: (ms) => this.sleep(run, ms), live });
      log.info({ deployment: run.d.id, ...run.warmup }, run.warmup.warm ? 'candidate warmed up' : 'candidate warm-up time over before it was warm');
    } finally {
      // No more copies; an abort meanwhile has already routed everything to stable.
      if (live()) traffic.warmup(run.d, false);
    }
  }

  /** Judges one window after another until the deployment ends; a step that passed moves on. */
  private async analyse(run: Run): Promise<void> {
    const { analysis, clock } = this.o;
    const { plan } = run.d;
    const strategy = strategyOf(run.d.strategy);
    let windowEnd = analysis.firstWindowEnd(run);
    while (!this.closed && !ending(run)) {
      const delay = this.o.judgeDelayMs ?? GRACE_MS;
      await this.sleep(run, windowEnd + delay - clock.now());
      if (this.closed || ending(run)) return;
      if (clock.now() < windowEnd + delay) continue; // woken early (an operator action)
      const stepAtJudging = run.d.status.stepIndex;
      const startOfStep = run.stepStartedMs;
      const judgement = analysis.judge(run, windowEnd);
      const verdictAt = clock.monotonic();
      run.history.push(judgement.verdict);
      if (judgement.verdict !== 'insufficient') run.progressMs = clock.now();
      else run.lastUndecided = analysis.undecided(judgement);
      const trips = analysis.streakTrips(run);
      // The routing changes now, synchronously; persisting and auditing follow under the lock.
      if (trips && !run.rollback) this.toStable(run, verdictAt);
      const ended = await this.locked(async () => {
        if (ending(run)) return true;
        await analysis.record(run, judgement, this.o.traffic.candidateWeight, { buckets: true });
        if (trips) {
          await this.rollBack(run, `${plan.rules.failuresToRollback} consecutive failing windows: ${analysis.failures(judgement)}`, 'judge', 'controller', verdictAt);
          return true;
        }
        if (this.deadlinePassed(run)) {
          await this.onDeadline(run);
          return ending(run);
        }
        // An operator's step change or resume while judging starts the windows afresh.
        if (run.d.status.stepIndex !== stepAtJudging || run.stepStartedMs !== startOfStep) return false;
        // A fleet's step moves only once every live instance serves it.
        // Complete as of the window judged (a take-over's catch-up windows end in the past).
        if (strategy.stepComplete(run, Math.min(clock.now(), windowEnd + delay)) && (!this.o.fleet || await this.o.fleet.servingEverywhere(run.d))) {
          const outcome = analysis.stepOutcome(run, windowEnd);
          if (outcome === 'inconclusive') {
            const wanting = run.heldByJobs ? `${plan.rules.jobMinSamples ?? 20} job outcomes of the candidate's worker` : `${plan.rules.minSamples} candidate requests`;
            await this.apply(run, { type: 'inconclusive', reason: `${INCONCLUSIVE} ${run.d.status.stepIndex + 1} had ${wanting}; resume, promote or roll back` });
            await this.o.events.audit('pause', run.d, 'controller', { reason: run.d.status.reason });
            void this.o.events.announce('paused', run.d);
          } else if (outcome === 'passed') {
            await this.passStep(run);
          }
        }
        return ending(run);
      });
      if (ended) return;
      windowEnd = analysis.nextWindowEnd(run, windowEnd);
    }
  }

  /** No decisive verdict for the plan's progress deadline, and no operator holding it paused. */
  private deadlinePassed(run: Run): boolean {
    const seconds = run.d.plan.progressDeadlineSeconds ?? 0;
    return seconds > 0 && !run.pausedByOperator && !run.deadlinePassed && (run.d.status.phase === 'shifting' || run.d.status.phase === 'paused')
      && this.o.clock.now() - run.progressMs >= seconds * 1000;
  }

  /**
   * Too little traffic to judge by (Flagger's "no values found"): abort, traffic back to the stable
   * colour, or pause for an operator, as the plan says — audited, never waiting forever.
   */
  private async onDeadline(run: Run): Promise<void> {
    const { d } = run;
    const seconds = d.plan.progressDeadlineSeconds ?? 0;
    const action = d.plan.progressDeadlineAction ?? 'abort';
    // Why nothing was decided, in the last window's own words (few candidate requests, few stable ones, a metric not reported).
    const why = run.lastUndecided ?? 'no window was judged';
    const next = action === 'abort' ? 'send it traffic and deploy again' : 'send it traffic and resume, or promote or roll back';
    const reason = `${DEADLINE}: no decisive verdict for ${seconds} s (last window: ${why}); ${next}`;
    run.deadlinePassed = true;
    if (action === 'abort') {
      this.toStable(run, this.o.clock.monotonic());
      await this.apply(run, { type: 'abort', reason });
      this.o.colours.stopLater(d.candidateColor, d.plan.inspectSeconds, `progress deadline of ${d.version}; kept ${d.plan.inspectSeconds} s for inspection`);
    } else {
      // From shifting, or over the judge's own inconclusive pause: the reason becomes the deadline's.
      await this.apply(run, { type: 'pause', reason });
    }
    await this.o.events.audit('deadline', run.d, 'controller', { action, seconds, reason }, false, reason);
    void this.o.events.announce(action === 'abort' ? 'aborted' : 'paused', run.d);
    this.o.log.warn({ deployment: d.id, action, seconds }, 'progress deadline passed');
    if (action === 'abort') this.finish(run);
  }

  private async passStep(run: Run): Promise<void> {
    const { d } = run;
    // A fast trip swapped to stable meanwhile (its rollback waits for the lock): no step, no gate.
    if (run.rollback) return;
    if (d.status.stepIndex >= d.status.steps.length - 1) return this.finishPromotion(run, { type: 'step_passed' }, 'controller');
    if (d.plan.gates?.includes(d.status.stepIndex + 1)) return this.holdAtGate(run);
    await this.apply(run, { type: 'step_passed' });
    await this.o.events.audit('step', run.d, 'controller', { stepIndex: run.d.status.stepIndex, weight: run.d.status.steps[run.d.status.stepIndex] });
    this.enterStep(run);
    if (strategyOf(d.strategy).promotesOnEntering(run.d.status)) await this.finishPromotion(run, { type: 'step_passed' }, 'controller');
  }

  /**
   * Holds the deployment before its next step (the first, from warming) until a person or the gate
   * webhook approves: paused at the step before's weight, judged on meanwhile (a failing verdict
   * still rolls back), no progress deadline (a person decides), audited.
   */
  private async holdAtGate(run: Run): Promise<void> {
    const { d } = run;
    const next = d.status.phase === 'warming' ? 0 : d.status.stepIndex + 1;
    const by = ['changelens promote --step', 'the dashboard', ...(this.o.gateUrl ? ['a 2xx from the gate webhook'] : [])];
    await this.apply(run, { type: 'gate', reason: `${GATE} before step ${next + 1}/${d.status.steps.length} (${d.status.steps[next]} %): ${by.join(', ')}` });
    run.pausedByOperator = true;
    await this.o.events.audit('gate', run.d, 'controller', { stepIndex: next, weight: d.status.steps[next], webhook: this.o.gateUrl !== undefined });
    this.o.log.info({ deployment: d.id, stepIndex: next }, 'held at a gate: waiting for approval');
    void this.o.events.announce('gate', run.d);
    this.watchGate(run);
  }

  /** The gate webhook, asked every window while the deployment waits at a gate: a 2xx approves. */
  private watchGate(run: Run): void {
    const url = this.o.gateUrl;
    if (!url) return;
    const revision = run.d.status.revision;
    const still = (): boolean => !this.closed && this.current === run && run.d.status.revision === revision && atGate(run.d.status);
    // Its own timer: the driver's sleep (and its wake-up by an action) stays the analysis loop's.
    void pollGate({ url, deployment: run.d, everyMs: Math.max(5, run.d.plan.windowSeconds) * 1000, timeoutMs: this.o.gateTimeoutMs ?? 10_000, still, sleep: (ms) => sleep(this.o.clock, ms), log: this.o.log })
      .then((approved) => (approved && still() ? this.promoteStep('gate webhook', undefined, { deploymentId: run.d.id, stepIndex: run.d.status.stepIndex, atGate: true }) : undefined))
      .catch((err) => this.o.log.warn({ deployment: run.d.id, err: (err as Error).message }, 'the gate webhook\'s approval was not applied'));
  }

  private enterStep(run: Run): void {
    run.stepStartedMs = run.progressMs = this.o.clock.now();
    run.servingSinceMs ??= run.stepStartedMs;
    this.setWeights(run);
    this.startLoad(run);
  }

  /** The plan's analysis load, once the candidate takes traffic (pinned requests to both colours). */
  private startLoad(run: Run): void {
    const { analysisLoad } = run.d.plan;
    if (!analysisLoad || run.load || !this.o.analysisLoad || this.closed || run.rollback) return;
    run.load = this.o.analysisLoad(analysisLoad, [run.d.stableColor, run.d.candidateColor]);
  }

  private stopLoad(run: Run): void {
    run.load?.stop();
    run.load = null;
  }

  private setWeights(run: Run): void {
    const { traffic } = this.o;
    const copies = strategyOf(run.d.strategy).judged ? (run.d.plan.mirrorPercent ?? 0) / 100 : 0;
    traffic.split(run.d, candidateWeight(run.d.status), copies);
    run.maxWeight = Math.max(run.maxWeight, traffic.candidateWeight);
    this.publish();
  }

  /**
   * A fast trip rolls back without waiting for a window: the routing swaps synchronously, then the
   * trip is recorded as a failing verdict (explained like any other) and the rollback persisted.
   */
  private trip(run: Run, rule: RuleResult['rule'], observed: number, threshold: number, message: string, kind = 'fast trip'): void {
    if (run.rollback || ending(run)) return;
    const { clock, analysis, log } = this.o;
    const decidedAt = clock.monotonic();
    this.toStable(run, decidedAt);
    const judgement: WindowJudgement = {
      verdict: 'fail',
      window: { startMs: run.stepStartedMs, endMs: clock.now() },
      samples: { candidate: 0, stable: 0 },
      rules: [{ rule, verdict: 'fail', observed, threshold, message }],
    };
    run.history.push('fail');
    void this.locked(async () => {
      if (ending(run)) return;
      await analysis.record(run, judgement, this.o.traffic.candidateWeight, { buckets: false, explanation: `${kind}, without waiting for a window: ${message}` });
      await this.rollBack(run, `${kind}: ${message}`, 'trip', 'controller', decidedAt);
    }).catch((err: Error) => log.error({ err: err.message, deployment: run.d.id }, 'could not persist a fast-trip rollback; traffic is on the stable colour'));
  }

  // ---- endings ----

  private async finishPromotion(run: Run, event: DeploymentEvent, actor: string): Promise<void> {
    const { d } = run;
    const { traffic, store, colours, events, log } = this.o;
    // A fast trip swapped to stable (its rollback waits for the lock): it is rolling back, not promotable.
    if (run.rollback) throw new CL_ERR_ROLLOUT_BAD_TRANSITION('rolling back', event.type, 'nothing: a fast trip is rolling it back');
    const next = transition(run.d.status, event);
    if (next.phase !== 'promoted') throw new Error(`expected promotion, got ${next.phase}`);
    // The new colour takes everything at once; the old one stays warm so switching back is instant.
    traffic.allTo(d.candidateColor);
    this.active = { version: d.version, color: d.candidateColor };
    await store.saveStatus(d.id, run.d.status, next, { promoteTo: this.active, result: await this.result(run, next.phase, null) });
    run.d.status = next;
    traffic.snapshot(d.candidateColor, { version: run.release.version, artifact: run.release.artifact, env: run.release.env });
    await events.audit('promote', run.d, actor, { activeColor: d.candidateColor, previous: d.stableVersion, keepWarmSeconds: d.plan.keepWarmSeconds });
    log.info({ deployment: d.id, version: d.version, color: d.candidateColor }, 'promoted');
    colours.stopLater(d.stableColor, d.plan.keepWarmSeconds, `kept warm ${d.plan.keepWarmSeconds} s after promoting ${d.version}`);
    this.finish(run);
    void events.announce('promote', run.d);
  }

  /**
   * The routing first (the next request goes to stable), then one write: the deployment rolled
   * back, with its result. The requests in flight at the swap are counted for a moment after, and
   * the result's timing updated once they settled.
   */
  private async rollBack(run: Run, reason: string, trigger: 'judge' | 'trip' | 'operator' | 'restart', actor: string, decidedAt: number): Promise<void> {
    const { events, log, store, colours } = this.o;
    const from = run.d.status;
    // Both steps checked before any swap: refused when it cannot roll back (starting, finished).
    const rolledBack = transition(transition(from, { type: 'rollback', reason }), { type: 'rolled_back' });
    if (!run.rollback) this.toStable(run, decidedAt);
    events.countRollback(trigger);
    await store.saveStatus(run.d.id, from, rolledBack, { result: await this.result(run, 'rolled_back', reason) });
    run.d.status = rolledBack;
    try {
      await events.audit('rollback', run.d, actor, { reason, trigger, inspectSeconds: run.d.plan.inspectSeconds });
    } finally {
      log.warn({ deployment: run.d.id, version: run.d.version, reason, timing: run.rollback }, 'rolled back');
      void events.announce('rollback', run.d);
      colours.stopLater(run.d.candidateColor, run.d.plan.inspectSeconds, `rolled back ${run.d.version}; kept ${run.d.plan.inspectSeconds} s for inspection`);
      this.settling = run;
      this.finish(run);
      void this.settleTiming(run, reason);
    }
  }

  /** After the settle, the rollback's timing is final: written into its result (even if the proxy is closing). */
  private async settleTiming(run: Run, reason: string): Promise<void> {
    const { clock, store, log } = this.o;
    await sleep(clock, ROLLBACK_SETTLE_MS);
    if (this.settling === run) this.settling = null;
    if (run.rollback) run.rollback.settled = true;
    try {
      await store.saveResult(run.d.id, await this.result(run, 'rolled_back', reason));
    } catch (err) {
      log.warn({ err: (err as Error).message, deployment: run.d.id }, 'could not record the settled rollback timing; the result keeps the counts at the swap');
    }
  }

  /** All traffic to the stable colour, now (synchronous: no await before the swap). */
  private toStable(run: Run, decidedAt: number): void {
    const { traffic, clock } = this.o;
    // Stood down (another instance drives now): its failing writes change nothing here.
    if (this.deposed) return;
    traffic.toStable(run.d);
    this.o.fleet?.stableNow(run.d);
    // Its pinned requests would reach the candidate after the swap (and be counted as such).
    this.stopLoad(run);
    // Its worker stops taking jobs: those it has not started run on the stable colour.
    this.o.colours.stopWorker(run.d.candidateColor, `${run.d.version} leaves the traffic`);
    run.rollback = { verdictToSwapUs: Math.round((clock.monotonic() - decidedAt) * 1000), candidateRequestsAfterSwap: 0, candidateInFlightAtSwap: 0, swappedAtMs: clock.now(), settled: false };
    this.publish();
  }

  private finish(run: Run): void {
    this.stopLoad(run);
    void this.o.colours.pruneReleases();
    if (this.current === run) this.current = null;
    // Whatever raced with the ending (a verdict swapping to stable), the active colour takes all.
    this.o.traffic.allTo(this.active.color);
    this.publish();
    run.wake();
  }

  private async result(run: Run, status: Phase, reason: string | null): Promise<unknown> {
    return summarise(run, status, reason, await this.o.store.buckets(run.d.id), this.o.clock.now());
  }

  // ---- restart ----

  /** A deployment a previous proxy left unfinished: judged again, or ended safely. Never unjudged. */
  private async takeOver(d: Deployment): Promise<void> {
    const { store, log, colours, clock, analysis, events, supervisor } = this.o;
    const release = (await store.release(d.version)) as Release;
    // The failure streak goes on where it was: the stored verdicts are the history.
    const stored = await store.verdicts(d.id);
    const run = newRun(d, release, clock.now(), stored.map((v) => v.verdict));
    this.current = run;
    const { phase } = d.status;
    log.warn({ deployment: d.id, phase, verdicts: stored.length }, 'taking over a deployment left unfinished by a restart');
    await this.locked(async () => {
      if (phase === 'starting' || phase === 'warming') {
        await this.apply(run, { type: 'not_ready', reason: 'the proxy restarted while the candidate was starting; deploy again' });
        await events.audit('failed', run.d, 'controller', { reason: run.d.status.reason }, false, run.d.status.reason);
        void events.announce('failed', run.d);
        this.finish(run);
        await supervisor.stop(d.candidateColor).catch(() => {});
        return;
      }
      if (phase === 'rolling_back') {
        await this.apply(run, { type: 'rolled_back' }, await this.result(run, 'rolled_back', d.status.reason));
        this.finish(run);
        return;
      }
      // The previous proxy had decided (its failing windows are stored; its swap may have stopped the
      // candidate's worker already) but could not persist the rollback.
      if (analysis.streakTrips(run)) {
        await this.rollBack(run, `${d.plan.rules.failuresToRollback} consecutive failing windows before the proxy restarted`, 'restart', 'controller', clock.monotonic());
        return;
      }
      // shifting or paused: resume judging from a fresh window, if the candidate still runs.
      if (!(await colours.isUp(d.candidateColor))) {
        await this.rollBack(run, `the candidate ${d.candidateColor} was not running after a restart`, 'restart', 'controller', clock.monotonic());
        return;
      }
      colours.serve(d.candidateColor, d.version);
      run.servingSinceMs = clock.now();
      // A fleet's window holds every instance's slices from before the take-over (read back from
      // Redis): judging goes on from where the previous controller's last window of this step
      // ended, so the candidate's requests while no controller ran are judged too.
      const since = this.o.fleet ? judgedUpTo(stored, d, clock.now()) : null;
      if (since !== null) run.stepStartedMs = run.servingSinceMs = since;
      // Who paused it, from its reason: the judge and the deadline say so; anything else is an operator's hold.
      const pausedBy = d.status.phase === 'paused' ? d.status.reason ?? '' : null;
      run.pausedByOperator = pausedBy !== null && !pausedBy.startsWith(INCONCLUSIVE) && !pausedBy.startsWith(DEADLINE);
      run.deadlinePassed = pausedBy?.startsWith(DEADLINE) ?? false;
      // blue/green's pre-switch baseline died with the old proxy: it is judged against the stable colour alongside.
      this.setWeights(run);
      this.startLoad(run);
      await events.audit('resume', run.d, 'controller', { reason: since !== null ? `controller taken over; judging goes on from ${new Date(since).toISOString()}` : 'proxy restarted; judging resumes with fresh windows', stepIndex: d.status.stepIndex });
    });
    if (this.current !== run || ending(run)) return;
    if (atGate(run.d.status)) {
      this.watchGate(run);
      // An unjudged (direct) deployment at its gate has no windows: its approval promotes it.
      if (!strategyOf(d.strategy).judged) return;
    }
    this.trips.start(run);
    void this.analyse(run).catch((err) => {
      log.error({ err: (err as Error).message }, 'rollout driver failed; all traffic to the stable colour');
      if (!run.rollback) this.toStable(run, clock.monotonic());
    });
  }

  // ---- plumbing ----

  private action(name: string, fn: (run: Run) => Promise<void>): Promise<Deployment> {
    return this.locked(async () => {
      const run = this.current;
      if (!run) throw new CL_ERR_NO_DEPLOYMENT(name);
      await fn(run);
      run.wake();
      return run.d;
    });
  }

  /** The state machine's next status, persisted by compare-and-swap, then applied in memory. */
  private async apply(run: Run, event: DeploymentEvent, result?: unknown): Promise<void> {
    const next = transition(run.d.status, event);
    await this.o.store.saveStatus(run.d.id, run.d.status, next, result === undefined ? {} : { result });
    run.d.status = next;
    if (next.phase === 'shifting' || next.phase === 'paused') this.setWeights(run);
    this.publish();
  }

  /** Runs fn under the lock unless the deployment ended meanwhile; false when it had. */
  private step(run: Run, fn: () => Promise<void>): Promise<boolean> {
    return this.locked(async () => {
      if (ending(run) || this.closed) return false;
      await fn();
      return !ending(run);
    });
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.lock.then(fn, fn);
    this.lock = next.catch(() => {});
    return next;
  }

  /** Sleeps on the clock; `run.wake()` ends it early. */
  private sleep(run: Run, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.o.clock.after(ms, done);
      function done(): void {
        timer.cancel();
        resolve();
      }
      run.wake = done;
    });
  }

  private publish(): void {
    this.o.events.publish(this.current?.d ?? null, this.o.traffic.candidateWeight, this.active.color);
  }
}

/** How far back a take-over's first window may reach: well within the two minutes of slices kept. */
const TAKE_OVER_REACH_MS = 60_000;

/**
 * Where judging of `d`'s current step stopped: the end of its last stored window of this step, or
 * when the row last changed (the step began or resumed); null when that is too long ago.
 */
function judgedUpTo(stored: readonly StoredVerdict[], d: Deployment, nowMs: number): number | null {
  const last = stored.filter((v) => v.stepIndex === d.status.stepIndex).at(-1);
  // A resume after the last window gives the step its whole period again: from the resume, then.
  // (Whole seconds: a window starts on one, and rounding up would skip the first.)
  const changed = Math.floor(Date.parse(d.updatedAt) / 1000) * 1000;
  const since = last ? (d.status.phase === 'shifting' ? Math.max(last.window.endMs, changed) : last.window.endMs) : changed;
  return Number.isFinite(since) && nowMs - since <= TAKE_OVER_REACH_MS && since <= nowMs ? since : null;
}
