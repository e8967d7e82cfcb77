// The rollout controller: the only thing that changes the routing table. It runs in the proxy, so a
// failing verdict reaches the router in the same process: the candidate's weight goes to 0 in
// memory first (the next request already goes to the stable colour), then the state is persisted,
// audited and the hooks fire. One deployment runs at a time, driven by `drive()`; operator actions
// (promote, rollback, pause, resume, abort) take the same lock and wake the driver.
import type { Color } from '../lib/config.js';
import { BUILTIN_ARTIFACT } from '../lib/contracts/releases.js';
import { CL_ERR_DEPLOYMENT_RUNNING, CL_ERR_INVALID_REQUEST, CL_ERR_NO_DEPLOYMENT, CL_ERR_RELEASE_CONFLICT } from '../lib/errors.js';
import { importArtifact, pruneReleaseDirs } from './artifacts.js';
import { uploadedArtifact } from './upload.js';
import { existsSync } from 'node:fs';
import type { Logger } from '../lib/logger.js';
import { consecutiveFailures, judgeWindow, type JudgeRules, type RuleResult, type SlicedWindow, type WindowJudgement, type WindowStats, type WindowVerdict } from '../monitoring/index.js';
import { SequentialJudge } from '../monitoring/sequential.js';
import type { RoutingTable } from '../lib/contracts/routing.js';
import { Traffic } from './traffic.js';
import { fireHooks, type HookEventType, type HookOptions } from './hooks.js';
import { candidateWeight, initialStatus, isTerminal, transition, type DeploymentEvent, type Phase } from './state-machine.js';
import { newId } from '../lib/ids.js';
import type { Bucket, Deployment, Plan, Release, RolloutStore, Strategy } from './store.js';

/** How the controller starts and stops a colour: the supervisor, over its control socket. */
export interface SupervisorLink {
  /** Starts the colour with the release and resolves once it passes its readiness probe. */
  start(color: Color, release: Release): Promise<void>;
  stop(color: Color): Promise<void>;
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
}

/** What the Prometheus exposition needs to know of rollouts (monitoring/metrics.ts). */
export interface RolloutGauges {
  setRollout(s: { deploymentId: string | null; phase: string | null; candidateColor: Color | null; candidateWeight: number; activeColor: Color }): void;
  countVerdict(verdict: WindowVerdict): void;
  countRollback(trigger: string): void;
  /** A release no colour serves any more: its series can go. */
  forgetRelease(release: string): void;
}

export interface DeployRequest {
  version: string;
  strategy: Strategy;
  /** Canary weights; bluegreen and direct always switch 100 %. */
  steps: number[];
  /** The release's env; undefined: a new release gets none, an existing one keeps its own. */
  env: Record<string, string> | undefined;
  /** An absolute path (directory or .tar.gz) to import; undefined: the built-in API, or the existing release's. */
  artifact: string | undefined;
  plan: Plan;
  actor: string;
}

export interface ControllerOptions {
  store: RolloutStore;
  supervisor: SupervisorLink;
  window: SlicedWindow;
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
}

/** How fast a rollback took effect, measured in process (see the note of issue 4). */
export interface RollbackTiming {
  /** Verdict (or operator call) to the routing table swap, microseconds. */
  verdictToSwapUs: number;
  /** Candidate requests that started after the swap (pinned previews only; else a bug). */
  candidateRequestsAfterSwap: number;
  /** Candidate requests in flight at the swap that finished after it. */
  candidateInFlightAtSwap: number;
}

interface Run {
  d: Deployment;
  release: Release;
  history: WindowVerdict[];
  seq: number;
  stepStartedMs: number;
  /** bluegreen: the stable colour's latency before the switch, the baseline of its analysis. */
  baseline: WindowStats | null;
  wake: () => void;
  rollback: (RollbackTiming & { swappedAtMs: number }) | null;
  /** The largest candidate weight so far. */
  maxWeight: number;
  /** 5xx in a row from the candidate (a fast trip at plan.tripConsecutive5xx). */
  consecutive5xx: number;
  /** The early-verdict tests, fed once a second with what `acc` counted; null when off. */
  sequential: SequentialJudge | null;
  acc: { count: number; slow: number; errors: number };
  /** A candidate request slower than this (the stable P99) counts as slow; null: not known yet. */
  slowThresholdMs: number | null;
  lastExplanation: string | null;
}

/** A deploy's artifact that PUT /api/releases/<version>/artifact uploaded before. */
export const UPLOADED = 'uploaded';
const GRACE_MS = 30; // a response that ended in a window's last millisecond is recorded by now
const WATCH_INTERVAL_MS = 250;
const SEQUENTIAL_TICK_MS = 1_000;
/** Stable requests needed before its P99 defines "slow" for the latency test. */
const SEQUENTIAL_MIN_BASELINE = 100;
/** How long the sequential latency test ignores a new candidate's slow answers (its cold start). */
const COLD_START_GRACE_MS = 3_000;
const WATCH_NOT_READY = 2;

/** The candidate takes traffic and is being judged. */
const judging = (run: Run): boolean => run.d.status.phase === 'shifting' || run.d.status.phase === 'paused';
const BASELINE_SECONDS = 30;

export class RolloutController {
  /** The only writer of the routing table (and its snapshot). */
  private readonly traffic: Traffic;
  private active: { version: string; color: Color };
  private run: Run | null = null;
  private lock: Promise<unknown> = Promise.resolve();
  private readonly timers = new Map<Color, NodeJS.Timeout>();
  private readonly releaseOf: Record<Color, string | null> = { blue: null, green: null };
  private closed = false;

  constructor(private readonly o: ControllerOptions) {
    // Until init() has read Postgres: everything to the snapshot's active colour, never a candidate.
    this.traffic = new Traffic(o.routingPath, o.activeColor);
    this.active = { version: o.initialRelease.version, color: o.activeColor };
    this.releaseOf[o.activeColor] = o.initialRelease.version;
  }

  /** Read per request by the router: an immutable object, swapped whole. */
  routingTable = (): RoutingTable => this.traffic.current();

  /** The release a colour serves, for metric labels. */
  releaseServedBy(color: Color): string {
    return this.releaseOf[color] ?? 'none';
  }

  /** One proxied response: into its colour's slice, and counted against a rollback in progress. */
  record(color: Color, latencyMs: number, statusCode: number): void {
    const now = Date.now();
    this.o.window.record(color, latencyMs, statusCode >= 500, now);
    const run = this.run;
    if (run === null || color !== run.d.candidateColor) return;
    const rb = run.rollback;
    if (rb) {
      if (now - latencyMs >= rb.swappedAtMs) rb.candidateRequestsAfterSwap++;
      else if (now >= rb.swappedAtMs) rb.candidateInFlightAtSwap++;
      return;
    }
    const acc = run.acc;
    acc.count++;
    if (run.slowThresholdMs !== null && latencyMs > run.slowThresholdMs) acc.slow++;
    if (statusCode >= 500) acc.errors++;
    // Fast trip: a run of 5xx does not wait for a window (Envoy ejects a host after 5 in a row).
    if (statusCode < 500) run.consecutive5xx = 0;
    else if (++run.consecutive5xx === run.d.plan.tripConsecutive5xx && run.d.plan.tripConsecutive5xx > 0 && judging(run)) {
      this.trip(run, 'consecutive_5xx', run.consecutive5xx, run.d.plan.tripConsecutive5xx, `${run.consecutive5xx} 5xx in a row from the candidate`);
    }
  }

  /** One value of an app-reported metric (x-changelens-metric-<name>), into its colour's slice. */
  recordMetric(color: Color, name: string, value: number): void {
    this.o.window.recordMetric(color, name, value, Date.now());
  }

  /** Reads pointers and any deployment a previous proxy left running, and takes it over safely. */
  async init(): Promise<void> {
    const { store } = this.o;
    await store.ensureInitialRelease({ ...this.o.initialRelease, createdBy: 'appliance' }, this.o.activeColor);
    const { active } = await store.pointers();
    if (active) {
      this.active = active;
      this.serve(active.color, active.version);
      if (active.color !== this.o.activeColor) this.o.log.warn({ snapshot: this.o.activeColor, database: active.color }, 'routing snapshot and database disagree on the active colour; the database wins');
      this.traffic.allTo(active.color);
      const release = await store.release(active.version);
      this.traffic.snapshot(active.color, release ? { version: release.version, artifact: release.artifact, env: release.env } : undefined);
    }
    this.publish();
    const running = await store.runningDeployment();
    if (running) await this.takeOver(running);
  }

  /** Starts a deployment; resolves once it is recorded (the rollout goes on in the background). */
  deploy(req: DeployRequest): Promise<Deployment> {
    return this.locked(async () => {
      const { store } = this.o;
      // Refused before anything is copied: one deployment at a time (Postgres decides races below).
      if (this.run) throw new CL_ERR_DEPLOYMENT_RUNNING(this.run.d.id, this.run.d.version, this.run.d.status.phase);
      const existing = await store.release(req.version);
      // "uploaded": what PUT /api/releases/<version>/artifact stored (from CI).
      const uploaded = req.artifact === UPLOADED ? uploadedArtifact(this.o.releasesDir, req.version) : null;
      if (req.artifact === UPLOADED && uploaded === null) throw new CL_ERR_INVALID_REQUEST(`body/artifact: no artifact was uploaded for ${req.version} (PUT /_changelens/api/releases/${req.version}/artifact first)`);
      if (existing && req.artifact !== undefined && !(uploaded !== null && existing.artifact === uploaded)) throw new CL_ERR_RELEASE_CONFLICT(req.version, 'artifact');
      if (existing && existing.artifact !== BUILTIN_ARTIFACT && !existsSync(existing.artifact)) {
        throw new CL_ERR_INVALID_REQUEST(`release ${req.version}: its artifact was pruned from releases/; upload it again`);
      }
      const release = await store.putRelease({
        version: req.version,
        artifact: existing?.artifact ?? uploaded ?? (await importArtifact(req.artifact ?? BUILTIN_ARTIFACT, this.o.releasesDir, req.version)),
        env: req.env ?? existing?.env ?? {},
        createdBy: req.actor,
      });
      const steps = req.strategy === 'canary' ? req.steps : [100];
      const stableColor = this.active.color;
      const d = await store.createDeployment({
        id: newId('dep'), version: release.version, strategy: req.strategy, stableVersion: this.active.version, stableColor,
        candidateColor: other(stableColor), status: initialStatus(steps), plan: req.plan, actor: req.actor,
      });
      await this.audit('deploy', d, req.actor, { strategy: d.strategy, steps, plan: d.plan, candidateColor: d.candidateColor, stableVersion: d.stableVersion });
      const run: Run = { d, release, history: [], seq: 0, stepStartedMs: Date.now(), baseline: null, wake: () => {}, rollback: null, maxWeight: 0, consecutive5xx: 0, lastExplanation: null, sequential: null, acc: { count: 0, slow: 0, errors: 0 }, slowThresholdMs: null };
      this.run = run;
      this.publish();
      void this.hooks('deploy', run);
      void this.drive(run);
      return d;
    });
  }

  promote(actor: string): Promise<Deployment> {
    return this.action('promote', async (run) => {
      await this.finishPromotion(run, { type: 'promote' }, actor);
    });
  }

  rollback(actor: string, reason = 'operator rollback'): Promise<Deployment> {
    return this.action('rollback', (run) => this.rollBack(run, reason, 'operator', actor, performance.now()));
  }

  abort(actor: string, reason = 'aborted by operator'): Promise<Deployment> {
    return this.action('abort', async (run) => {
      this.toStable(run, performance.now());
      await this.apply(run, { type: 'abort', reason });
      await this.audit('abort', run.d, actor, { reason });
      this.stopLater(run.d.candidateColor, run.d.plan.inspectSeconds, `aborted ${run.d.version}; kept ${run.d.plan.inspectSeconds} s for inspection`);
      this.finish(run);
    });
  }

  pause(actor: string, reason = 'paused by operator'): Promise<Deployment> {
    return this.action('pause', async (run) => {
      await this.apply(run, { type: 'pause', reason });
      await this.audit('pause', run.d, actor, { reason, stepIndex: run.d.status.stepIndex });
    });
  }

  resume(actor: string): Promise<Deployment> {
    return this.action('resume', async (run) => {
      await this.apply(run, { type: 'resume' });
      // A resumed step gets its whole analysis period again.
      run.stepStartedMs = Date.now();
      await this.audit('resume', run.d, actor, { stepIndex: run.d.status.stepIndex });
    });
  }

  /** The running deployment (or null), with the routing it implies now. */
  status(): { active: { version: string; color: Color }; routing: RoutingTable; deployment: (Deployment & { weight: number; lastVerdict: WindowVerdict | null; lastExplanation: string | null }) | null } {
    const run = this.run;
    return {
      active: this.active,
      routing: this.traffic.current(),
      deployment: run ? { ...run.d, weight: this.traffic.candidateWeight, lastVerdict: run.history.at(-1) ?? null, lastExplanation: run.lastExplanation } : null,
    };
  }

  /** Stops the driver's timers (the proxy is shutting down); persisted state stays as it is. */
  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.run?.wake();
  }

  // ---- the driver ----

  private async drive(run: Run): Promise<void> {
    const { log, supervisor } = this.o;
    const { d } = run;
    try {
      // A colour left running (kept warm, a rolled-back candidate kept for inspection, or still
      // starting for an aborted deployment) goes first. The supervisor runs one change at a time,
      // so this stop waits for any start in flight: the colour ends up running this release.
      this.cancelTimer(d.candidateColor);
      let started: boolean;
      try {
        // One deployment's stop-and-start of a colour never interleaves with another's (a deploy
        // right after an abort whose start is still in flight).
        started = await this.colorOp(async () => {
          if (isTerminal(run.d.status.phase)) return false;
          // The same release still warm there (kept after a promotion or a rollback): reuse it, so
          // switching back to the previous release is instant. A release never changes.
          if (this.releaseOf[d.candidateColor] === d.version && await this.isUp(d.candidateColor)) return true;
          await supervisor.stop(d.candidateColor);
          if (isTerminal(run.d.status.phase)) return false;
          await supervisor.start(d.candidateColor, run.release);
          this.serve(d.candidateColor, d.version);
          return true;
        });
      } catch (err) {
        await this.locked(async () => {
          if (isTerminal(run.d.status.phase)) return;
          await this.apply(run, { type: 'not_ready', reason: `${d.candidateColor} did not become ready: ${(err as Error).message}` });
          await this.audit('failed', run.d, 'controller', { reason: run.d.status.reason }, false, (err as Error).message);
          this.finish(run);
        });
        await this.colorOp(() => supervisor.stop(d.candidateColor)).catch(() => {});
        return;
      }
      if (!started || !(await this.step(run, () => this.apply(run, { type: 'started' })))) {
        // Aborted while it started: nobody needs it, unless a newer deployment took the colour over.
        await this.colorOp(async () => {
          if (this.run?.d.candidateColor !== d.candidateColor && this.active.color !== d.candidateColor) await supervisor.stop(d.candidateColor);
        }).catch(() => {});
        return;
      }
      if (d.strategy === 'bluegreen' && d.plan.previewSeconds > 0) {
        // Reachable by pin only (x-changelens-color), for a person or a smoke test to look first.
        await this.sleep(run, d.plan.previewSeconds * 1000);
      }
      if (!(await this.step(run, async () => {
        if (d.strategy === 'bluegreen') run.baseline = this.o.window.window(d.stableColor, Date.now(), BASELINE_SECONDS * 1000);
        await this.apply(run, { type: 'ready' });
        await this.audit('ready', run.d, 'controller', { candidateColor: d.candidateColor });
        if (d.strategy === 'direct') await this.finishPromotion(run, { type: 'promote' }, 'controller');
        else this.enterStep(run);
      }))) return;
      void this.watch(run);
      void this.sequentialLoop(run);
      await this.analyse(run);
    } catch (err) {
      // Postgres unreachable, most likely: send everything to the stable colour and stay there.
      log.error({ err: (err as Error).message, deployment: d.id }, 'rollout driver failed; all traffic to the stable colour');
      if (!isTerminal(run.d.status.phase)) this.toStable(run, performance.now());
    }
  }

  /** Judges one window after another until the deployment ends. */
  private async analyse(run: Run): Promise<void> {
    const { plan } = run.d;
    const windowMs = plan.windowSeconds * 1000;
    // Windows are whole slices: the first starts at the first whole second of the step.
    let windowEnd = Math.ceil(run.stepStartedMs / 1000) * 1000 + windowMs;
    while (!this.closed && !isTerminal(run.d.status.phase)) {
      await this.sleep(run, windowEnd + GRACE_MS - Date.now());
      if (this.closed || isTerminal(run.d.status.phase)) return;
      if (Date.now() < windowEnd + GRACE_MS) continue; // woken early (an operator action)
      const stepAtJudging = run.d.status.stepIndex;
      const startOfStep = run.stepStartedMs;
      const judgement = this.judge(run, windowEnd);
      const verdictAt = performance.now();
      run.history.push(judgement.verdict);
      const trips = consecutiveFailures(run.history) >= plan.rules.failuresToRollback;
      // The routing changes now, synchronously; persisting and auditing follow under the lock.
      if (trips && !isTerminal(run.d.status.phase)) this.toStable(run, verdictAt);
      const ended = await this.locked(async () => {
        if (isTerminal(run.d.status.phase)) return true;
        await this.recordVerdict(run, judgement);
        if (trips) {
          const why = judgement.rules.filter((r) => r.verdict === 'fail').map((r) => r.message).join('; ');
          await this.rollBack(run, `${plan.rules.failuresToRollback} consecutive failing windows: ${why}`, 'judge', 'controller', verdictAt);
          return true;
        }
        // An operator's step change or resume while judging starts the windows afresh.
        if (run.d.status.stepIndex !== stepAtJudging || run.stepStartedMs !== startOfStep) return false;
        if (run.d.status.phase === 'shifting' && Date.now() - run.stepStartedMs >= plan.stepSeconds * 1000) {
          const decisive = run.history.slice(-this.windowsInStep(run, windowEnd)).filter((v) => v !== 'insufficient');
          if (decisive.length === 0) {
            await this.apply(run, { type: 'inconclusive', reason: `no window of step ${run.d.status.stepIndex + 1} had ${plan.rules.minSamples} candidate requests; resume, promote or roll back` });
            await this.audit('pause', run.d, 'controller', { reason: run.d.status.reason });
          } else if (decisive.at(-1) === 'pass') {
            await this.passStep(run);
          }
          // Last decisive window failed (but fewer than N in a row): judge on until it settles.
        }
        return isTerminal(run.d.status.phase);
      });
      if (ended) return;
      windowEnd = run.stepStartedMs > windowEnd - windowMs
        ? Math.ceil(run.stepStartedMs / 1000) * 1000 + windowMs
        : windowEnd + windowMs;
    }
  }

  private windowsInStep(run: Run, windowEnd: number): number {
    return Math.max(1, Math.floor((windowEnd - Math.ceil(run.stepStartedMs / 1000) * 1000) / (run.d.plan.windowSeconds * 1000)));
  }

  private judge(run: Run, windowEnd: number): WindowJudgement {
    const { d } = run;
    const lengthMs = d.plan.windowSeconds * 1000;
    const candidate = this.o.window.window(d.candidateColor, windowEnd, lengthMs);
    // blue/green's candidate takes everything: it is compared with the stable colour before the switch.
    const stable = run.baseline ?? this.o.window.window(d.stableColor, windowEnd, lengthMs);
    return judgeWindow(candidate, stable, d.plan.rules);
  }

  /** One sentence per verdict: what fired, or why this window did not roll back. */
  private explain(run: Run, j: WindowJudgement): string {
    const needed = run.d.plan.rules.failuresToRollback;
    const of = (v: RuleResult['verdict']) => j.rules.filter((r) => r.verdict === v).map((r) => r.message).join('; ');
    if (j.verdict === 'pass') return `passed: ${of('pass')}`;
    if (j.verdict === 'insufficient') return `not judged (too few requests, neither pass nor fail): ${of('insufficient')}`;
    const streak = consecutiveFailures(run.history);
    return streak >= needed ? `failed, ${streak} in a row (rolls back at ${needed}): ${of('fail')}` : `failed, ${streak} in a row of the ${needed} that roll back: ${of('fail')}`;
  }

  private async recordVerdict(run: Run, j: WindowJudgement, withBuckets = true, explanation = this.explain(run, j)): Promise<void> {
    const { d } = run;
    this.o.gauges?.countVerdict(j.verdict);
    const seq = ++run.seq;
    const weight = this.traffic.candidateWeight;
    const lengthMs = j.window.endMs - j.window.startMs;
    const bucket = (color: Color, violations: number): Bucket => {
      const w = this.o.window.window(color, j.window.endMs, lengthMs);
      return { color, startMs: w.startMs, durationSec: lengthMs / 1000, count: w.count, errors: w.errors, p50Ms: w.p50Ms, p95Ms: w.p95Ms, p99Ms: w.p99Ms, violations };
    };
    const violations = j.rules.filter((r) => r.verdict === 'fail').length;
    await Promise.all([
      this.o.store.addVerdict(d.id, { ...j, seq, stepIndex: d.status.stepIndex, weight, explanation }),
      // A fast trip is not a window: it has no bucket of its own.
      withBuckets ? this.o.store.addBuckets(d.id, [bucket(d.candidateColor, violations), bucket(d.stableColor, 0)]) : undefined,
    ]);
    run.lastExplanation = explanation;
    if (j.verdict !== 'pass') this.o.log.info({ deployment: d.id, verdict: j.verdict, samples: j.samples, explanation }, `window ${j.verdict}`);
  }

  private async passStep(run: Run): Promise<void> {
    const { d } = run;
    const last = d.status.stepIndex >= d.status.steps.length - 1;
    if (last) return this.finishPromotion(run, { type: 'step_passed' }, 'controller');
    await this.apply(run, { type: 'step_passed' });
    await this.audit('step', run.d, 'controller', { stepIndex: run.d.status.stepIndex, weight: run.d.status.steps[run.d.status.stepIndex] });
    this.enterStep(run);
    // Canary's last step is 100 %: reaching it is the promotion (nothing is left to compare with).
    if (d.strategy === 'canary' && run.d.status.steps[run.d.status.stepIndex] === 100) {
      await this.finishPromotion(run, { type: 'step_passed' }, 'controller');
    }
  }

  private enterStep(run: Run): void {
    run.stepStartedMs = Date.now();
    this.setWeights(run);
  }

  private setWeights(run: Run): void {
    const { d } = run;
    this.traffic.split(d, candidateWeight(run.d.status));
    run.maxWeight = Math.max(run.maxWeight, this.traffic.candidateWeight);
    this.publish();
  }

  // ---- fast trips ----

  /**
   * Rolls back now, without waiting for a window: the routing swaps synchronously, then the trip is
   * recorded as a failing verdict (so it is explained like any other) and the rollback persisted.
   */
  private trip(run: Run, rule: RuleResult['rule'], observed: number, threshold: number, message: string, kind = 'fast trip'): void {
    if (run.rollback || isTerminal(run.d.status.phase)) return;
    const decidedAt = performance.now();
    this.toStable(run, decidedAt);
    const now = Date.now();
    const judgement: WindowJudgement = {
      verdict: 'fail',
      window: { startMs: run.stepStartedMs, endMs: now },
      samples: { candidate: 0, stable: 0 },
      rules: [{ rule, verdict: 'fail', observed, threshold, message }],
    };
    run.history.push('fail');
    void this.locked(async () => {
      if (isTerminal(run.d.status.phase)) return;
      await this.recordVerdict(run, judgement, false, `${kind}, without waiting for a window: ${message}`);
      await this.rollBack(run, `${kind}: ${message}`, 'trip', 'controller', decidedAt);
    }).catch((err: Error) => this.o.log.error({ err: err.message, deployment: run.d.id }, 'could not persist a fast-trip rollback; traffic is on the stable colour'));
  }

  /** While the candidate takes traffic: a crash (pm2 restart), a stop, or failing readiness trips. */
  private async watch(run: Run): Promise<void> {
    const color = run.d.candidateColor;
    let baseline: number | null = null;
    let notReady = 0;
    while (!this.closed && this.run === run && !isTerminal(run.d.status.phase) && !run.rollback) {
      let health: ColorHealth;
      try {
        health = await this.o.supervisor.health(color);
      } catch {
        health = { running: true, online: true, restarts: baseline ?? 0, ready: true }; // supervisor busy: no evidence either way
      }
      if (this.run !== run || isTerminal(run.d.status.phase) || run.rollback) return;
      baseline ??= health.restarts;
      if (!health.running) return this.trip(run, 'process_restart', 0, 1, `api-${color} is not running`);
      if (health.restarts > baseline || !health.online) {
        return this.trip(run, 'process_restart', health.restarts - baseline, 0, `api-${color} crashed: pm2 restarted it (${health.restarts - baseline} restart${health.restarts - baseline === 1 ? '' : 's'} since it took traffic)`);
      }
      notReady = health.ready ? 0 : notReady + 1;
      if (notReady >= WATCH_NOT_READY) return this.trip(run, 'readiness', notReady, WATCH_NOT_READY, `api-${color} failed its readiness probe ${notReady} times in a row: ${health.error ?? 'no answer'}`);
      await new Promise((r) => setTimeout(r, WATCH_INTERVAL_MS));
    }
  }

  /**
   * Early verdicts (monitoring/sequential.ts): once a second the candidate's requests of that second
   * go to the sequential tests, whose false-alarm rate holds however often they look.
   */
  private async sequentialLoop(run: Run): Promise<void> {
    if (!run.d.plan.sequential) return;
    run.sequential = new SequentialJudge();
    run.acc = { count: 0, slow: 0, errors: 0 };
    this.refreshThreshold(run);
    const startedMs = Date.now();
    while (!this.closed && this.run === run && !isTerminal(run.d.status.phase) && !run.rollback) {
      await new Promise((r) => setTimeout(r, SEQUENTIAL_TICK_MS));
      if (this.run !== run || isTerminal(run.d.status.phase) || run.rollback) return;
      const { acc } = run;
      run.acc = { count: 0, slow: 0, errors: 0 };
      // A fresh process answers its first requests slower (cold JIT, new database connections):
      // that is not the release's latency. The slow-request test starts after a grace; errors count
      // from the first request. (bench:changelens's A/A canary was rolled back on exactly this.)
      const thresholdMs = Date.now() - startedMs >= COLD_START_GRACE_MS ? run.slowThresholdMs : null;
      const stableErrorRate = this.refreshThreshold(run);
      if (!judging(run)) continue;
      const v = run.sequential.feed({ ...acc, thresholdMs, stableErrorRate });
      if (v.verdict === 'fail') return this.trip(run, v.test!, v.observed!, v.threshold!, v.message!, 'early verdict');
    }
  }

  /** The stable colour's P99 over its last 30 s (blue/green: before the switch) sets what "slow" means. */
  private refreshThreshold(run: Run): number | null {
    const stable = run.baseline ?? this.o.window.window(run.d.stableColor, Date.now(), BASELINE_SECONDS * 1000);
    run.slowThresholdMs = stable.count >= SEQUENTIAL_MIN_BASELINE ? stable.p99Ms : null;
    return stable.count >= SEQUENTIAL_MIN_BASELINE ? stable.errorRate : null;
  }

  // ---- endings ----

  private async finishPromotion(run: Run, event: DeploymentEvent, actor: string): Promise<void> {
    const { d } = run;
    const next = transition(run.d.status, event);
    if (next.phase !== 'promoted') throw new Error(`expected promotion, got ${next.phase}`);
    // The new colour takes everything at once; the old one stays warm so switching back is instant.
    this.traffic.allTo(d.candidateColor);
    this.active = { version: d.version, color: d.candidateColor };
    await this.o.store.saveStatus(d.id, run.d.status, next, { promoteTo: this.active, result: await this.result(run, next.phase, null) });
    run.d.status = next;
    this.traffic.snapshot(d.candidateColor, { version: run.release.version, artifact: run.release.artifact, env: run.release.env });
    await this.audit('promote', run.d, actor, { activeColor: d.candidateColor, previous: d.stableVersion, keepWarmSeconds: d.plan.keepWarmSeconds });
    this.o.log.info({ deployment: d.id, version: d.version, color: d.candidateColor }, 'promoted');
    this.stopLater(d.stableColor, d.plan.keepWarmSeconds, `kept warm ${d.plan.keepWarmSeconds} s after promoting ${d.version}`);
    this.finish(run);
    void this.hooks('promote', run);
  }

  private async rollBack(run: Run, reason: string, trigger: 'judge' | 'trip' | 'operator' | 'restart', actor: string, decidedAt: number): Promise<void> {
    // First the routing (the next request goes to stable), then everything that can be slow.
    if (!run.rollback) this.toStable(run, decidedAt);
    this.o.gauges?.countRollback(trigger);
    await this.apply(run, { type: 'rollback', reason });
    await this.audit('rollback', run.d, actor, { reason, trigger, inspectSeconds: run.d.plan.inspectSeconds });
    this.o.log.warn({ deployment: run.d.id, version: run.d.version, reason, timing: run.rollback }, 'rolled back');
    void this.hooks('rollback', run);
    // Counting requests that reach the candidate after the swap needs a moment of traffic.
    await new Promise((r) => setTimeout(r, 200));
    await this.apply(run, { type: 'rolled_back' }, await this.result(run, 'rolled_back', reason));
    this.stopLater(run.d.candidateColor, run.d.plan.inspectSeconds, `rolled back ${run.d.version}; kept ${run.d.plan.inspectSeconds} s for inspection`);
    this.finish(run);
  }

  /** All traffic to the stable colour, now (synchronous: no await before the swap). */
  private toStable(run: Run, decidedAt: number): void {
    this.traffic.toStable(run.d);
    run.rollback = { verdictToSwapUs: Math.round((performance.now() - decidedAt) * 1000), candidateRequestsAfterSwap: 0, candidateInFlightAtSwap: 0, swappedAtMs: Date.now() };
    this.publish();
  }

  private finish(run: Run): void {
    void this.pruneReleases();
    if (this.run === run) this.run = null;
    // Whatever raced with the ending (a verdict swapping to stable), the active colour takes all.
    this.traffic.allTo(this.active.color);
    this.publish();
    run.wake();
  }

  private async result(run: Run, status: Phase, reason: string | null): Promise<unknown> {
    const { d } = run;
    const buckets = await this.o.store.buckets(d.id);
    const summary = (color: Color) => {
      const own = buckets.filter((b) => b.color === color);
      const count = own.reduce((n, b) => n + b.count, 0);
      const errors = own.reduce((n, b) => n + b.errors, 0);
      const worst = (k: 'p95Ms' | 'p99Ms') => own.reduce((m, b) => Math.max(m, b[k]), 0);
      return { color, release: color === d.candidateColor ? d.version : d.stableVersion, requests: count, errors, errorRate: count ? errors / count : 0, worstP95Ms: worst('p95Ms'), worstP99Ms: worst('p99Ms'), buckets: own.length };
    };
    // The largest share the candidate was given (a rollback drops it to 0; this says how far it got).
    const reached = status === 'promoted' ? 1 : run.maxWeight;
    const stable = summary(d.stableColor);
    const candidate = summary(d.candidateColor);
    const rb = run.rollback;
    return {
      deployment_id: d.id,
      start_time: d.startedAt,
      end_time: new Date().toISOString(),
      status,
      strategy: d.strategy,
      active_release: status === 'promoted' ? d.version : d.stableVersion,
      candidate_release: d.version,
      traffic_split: { active: 1 - reached, candidate: reached },
      final_split: status === 'promoted' ? { active: 0, candidate: 1 } : { active: 1, candidate: 0 },
      metrics_summary: { stable, candidate },
      verdicts: { total: run.history.length, pass: run.history.filter((v) => v === 'pass').length, fail: run.history.filter((v) => v === 'fail').length, insufficient: run.history.filter((v) => v === 'insufficient').length },
      rollback_reason: reason,
      rollback_timing: rb ? { swapped_at: new Date(rb.swappedAtMs).toISOString(), verdict_to_swap_us: rb.verdictToSwapUs, candidate_requests_after_swap: rb.candidateRequestsAfterSwap, candidate_in_flight_at_swap: rb.candidateInFlightAtSwap } : null,
      total_requests: stable.requests + candidate.requests,
      duration_seconds: (Date.now() - Date.parse(d.startedAt)) / 1000,
    };
  }

  // ---- restart ----

  /** A deployment a previous proxy left unfinished: judged again, or ended safely. Never unjudged. */
  private async takeOver(d: Deployment): Promise<void> {
    const release = (await this.o.store.release(d.version))!;
    const run: Run = { d, release, history: [], seq: (await this.o.store.verdicts(d.id)).length, stepStartedMs: Date.now(), baseline: null, wake: () => {}, rollback: null, maxWeight: 0, consecutive5xx: 0, lastExplanation: null, sequential: null, acc: { count: 0, slow: 0, errors: 0 }, slowThresholdMs: null };
    this.run = run;
    const { phase } = d.status;
    this.o.log.warn({ deployment: d.id, phase }, 'taking over a deployment left unfinished by a restart');
    await this.locked(async () => {
      if (phase === 'starting' || phase === 'warming') {
        await this.apply(run, { type: 'not_ready', reason: 'the proxy restarted while the candidate was starting; deploy again' });
        await this.audit('failed', run.d, 'controller', { reason: run.d.status.reason }, false, run.d.status.reason);
        this.finish(run);
        await this.o.supervisor.stop(d.candidateColor).catch(() => {});
        return;
      }
      if (phase === 'rolling_back') {
        await this.apply(run, { type: 'rolled_back' }, await this.result(run, 'rolled_back', d.status.reason));
        this.finish(run);
        return;
      }
      // shifting or paused: resume judging from a fresh window, if the candidate still runs.
      if (!(await this.isUp(d.candidateColor))) {
        await this.rollBack(run, `the candidate ${d.candidateColor} was not running after a restart`, 'restart', 'controller', performance.now());
        return;
      }
      this.serve(d.candidateColor, d.version);
      if (d.strategy === 'bluegreen') run.baseline = null; // the pre-switch baseline died with the old proxy
      this.setWeights(run);
      await this.audit('resume', run.d, 'controller', { reason: 'proxy restarted; judging resumes with fresh windows', stepIndex: d.status.stepIndex });
    });
    if (this.run === run) void this.watch(run);
    if (this.run === run) void this.sequentialLoop(run);
    if (this.run === run) void this.analyse(run).catch((err) => {
      this.o.log.error({ err: (err as Error).message }, 'rollout driver failed; all traffic to the stable colour');
      this.toStable(run, performance.now());
    });
  }

  // ---- plumbing ----

  private action(name: string, fn: (run: Run) => Promise<void>): Promise<Deployment> {
    return this.locked(async () => {
      const run = this.run;
      if (!run) throw new CL_ERR_NO_DEPLOYMENT(name);
      await fn(run);
      run.wake();
      return run.d;
    });
  }

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
      if (isTerminal(run.d.status.phase) || this.closed) return false;
      await fn();
      return !isTerminal(run.d.status.phase);
    });
  }

  /** Old release directories go once a deployment ends; what is active, last_good or running stays. */
  private async pruneReleases(): Promise<void> {
    try {
      const { active, lastGood } = await this.o.store.pointers();
      const protectedDirs = new Set<string>();
      for (const version of [active?.version, lastGood?.version, this.run?.d.version, this.releaseOf.blue, this.releaseOf.green]) {
        const release = version ? await this.o.store.release(version) : null;
        if (release && release.artifact !== BUILTIN_ARTIFACT) protectedDirs.add(release.artifact);
      }
      const removed = pruneReleaseDirs(this.o.releasesDir, this.o.releasesKeep, protectedDirs);
      if (removed.length > 0) this.o.log.info({ removed }, `pruned ${removed.length} old release director${removed.length === 1 ? 'y' : 'ies'}`);
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'could not prune old releases');
    }
  }

  private colorOps: Promise<unknown> = Promise.resolve();

  /** Starting and stopping colours, one at a time (apart from the state lock: a start takes seconds). */
  private colorOp<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.colorOps.then(fn, fn);
    this.colorOps = next.catch(() => {});
    return next;
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.lock.then(fn, fn);
    this.lock = next.catch(() => {});
    return next;
  }

  private sleep(run: Run, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, Math.max(0, ms));
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      run.wake = done;
    });
  }

  private stopLater(color: Color, seconds: number, why: string): void {
    this.cancelTimer(color);
    const timer = setTimeout(() => {
      this.timers.delete(color);
      // Never stop what became active or a candidate since.
      if (color === this.active.color || this.run?.d.candidateColor === color) return;
      this.o.supervisor.stop(color).then(
        () => { this.serve(color, null); this.o.log.info({ color, why }, `stopped api-${color}`); },
        (err: Error) => this.o.log.warn({ color, err: err.message }, `could not stop api-${color}`),
      );
    }, seconds * 1000);
    timer.unref();
    this.timers.set(color, timer);
  }

  private async isUp(color: Color): Promise<boolean> {
    const health = await this.o.supervisor.health(color).catch(() => null);
    return health !== null && health.running && health.online && health.ready;
  }

  /** Which release a colour serves now (metric labels); a release no colour serves is forgotten. */
  private serve(color: Color, version: string | null): void {
    const previous = this.releaseOf[color];
    this.releaseOf[color] = version;
    if (previous && previous !== version && this.releaseOf[other(color)] !== previous) this.o.gauges?.forgetRelease(previous);
  }

  private cancelTimer(color: Color): void {
    clearTimeout(this.timers.get(color));
    this.timers.delete(color);
  }

  private async audit(type: string, d: Deployment, actor: string, details: Record<string, unknown>, success = true, error: string | null = null): Promise<void> {
    await this.o.store.audit({ eventType: type, deploymentId: d.id, actor, version: d.version, details, success, error });
  }

  private async hooks(type: HookEventType, run: Run): Promise<void> {
    const { hooks } = this.o;
    if (hooks.urls.length === 0 && !hooks.command) return;
    const { d } = run;
    const outcomes = await fireHooks({ type, deploymentId: d.id, version: d.version, strategy: d.strategy, phase: d.status.phase, reason: d.status.reason, at: new Date().toISOString() }, hooks);
    for (const o of outcomes) {
      if (!o.ok) this.o.log.warn({ hook: o.hook, event: type, err: o.error }, 'hook failed');
      await this.o.store.audit({ eventType: 'hook', deploymentId: d.id, actor: 'controller', version: d.version, details: { event: type, hook: o.hook, ms: o.ms }, success: o.ok, error: o.error ?? null }).catch(() => {});
    }
  }

  private publish(): void {
    const run = this.run;
    this.o.gauges?.setRollout({
      deploymentId: run?.d.id ?? null, phase: run?.d.status.phase ?? null, candidateColor: run?.d.candidateColor ?? null,
      candidateWeight: this.traffic.candidateWeight, activeColor: this.active.color,
    });
  }
}

export const other = (c: Color): Color => (c === 'blue' ? 'green' : 'blue');

export type { JudgeRules };
