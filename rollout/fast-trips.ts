// Fast trips: evidence that does not wait for a window. A run of 5xx from the candidate, its
// process crashing or stopping, its readiness failing, and the sequential tests' early verdicts
// (monitoring/sequential.ts) each call `trip`, which swaps the routing to stable at once.
import type { Color } from '../lib/config.js';
import type { RuleResult } from '../monitoring/index.js';
import { SequentialJudge } from '../monitoring/sequential.js';
import type { WindowAnalysis } from './analysis.js';
import type { Clock, ColorHealth, SupervisorLink } from './ports.js';
import { sleep } from './ports.js';
import { judging, type Run } from './run.js';
import { isTerminal } from './state-machine.js';

export type Trip = (run: Run, rule: RuleResult['rule'], observed: number, threshold: number, message: string, kind?: string) => void;

const WATCH_INTERVAL_MS = 250;
const WATCH_NOT_READY = 2;
const SEQUENTIAL_TICK_MS = 1_000;
/** Stable requests needed before its P99 defines "slow" for the latency test. */
const SEQUENTIAL_MIN_BASELINE = 100;
/** The stable worker's failure rate above which the sequential job test does not run. */
const SEQUENTIAL_JOB_MAX_STABLE_ERRORS = 0.2;
/** How long the sequential latency test ignores a new candidate's slow answers (its cold start). */
const COLD_START_GRACE_MS = 3_000;

export class FastTrips {
  constructor(private readonly o: {
    supervisor: SupervisorLink;
    analysis: WindowAnalysis;
    clock: Clock;
    trip: Trip;
    /** Whether `run` is still the one to watch (the deployment running, the controller open). */
    watching: (run: Run) => boolean;
  }) {}

  /** One candidate response: counted for the sequential tests, and a 5xx run trips. */
  count(run: Run, latencyMs: number, statusCode: number): void {
    const acc = run.acc;
    acc.count++;
    if (run.slowThresholdMs !== null && latencyMs > run.slowThresholdMs) acc.slow++;
    if (statusCode >= 500) acc.errors++;
    // Envoy ejects a host after 5 in a row; so do we, for the candidate.
    const limit = run.d.plan.tripConsecutive5xx;
    if (statusCode < 500) run.consecutive5xx = 0;
    else if (++run.consecutive5xx === limit && limit > 0 && judging(run)) {
      this.o.trip(run, 'consecutive_5xx', run.consecutive5xx, limit, `${run.consecutive5xx} 5xx in a row from the candidate`);
    }
  }

  /**
   * One job attempt of the candidate's worker: counted for the sequential job test, and a run of
   * failures trips, unless the stable worker is failing too: jobs can fail for reasons of their own
   * (input the app refuses; anyone may send it), which fail on either worker.
   */
  countJob(run: Run, failed: boolean): void {
    run.jobAcc.count++;
    if (failed) run.jobAcc.errors++;
    const limit = run.d.plan.tripConsecutiveJobFailures ?? 0;
    if (!failed) run.consecutiveJobFailures = 0;
    else run.consecutiveJobFailures++;
    const stableFine = run.stableJobStreak === null || run.stableJobStreak >= limit;
    if (failed && limit > 0 && run.consecutiveJobFailures >= limit && stableFine && judging(run)) {
      const stable = run.stableJobStreak === null ? 'the stable worker has reported none yet' : `the stable worker's last ${run.stableJobStreak} completed`;
      this.o.trip(run, 'consecutive_job_failures', run.consecutiveJobFailures, limit, `${run.consecutiveJobFailures} job attempts in a row failed on the candidate's worker (${stable})`);
    }
  }

  /** One job attempt of the stable worker: its run of completions (the trip's comparison). */
  countStableJob(run: Run, failed: boolean): void {
    run.stableJobStreak = failed ? 0 : (run.stableJobStreak ?? 0) + 1;
  }

  /** Both loops, for as long as the candidate takes traffic. */
  start(run: Run): void {
    void this.watch(run);
    void this.sequential(run);
  }

  /** A crash (pm2 restart), a stop, or failing readiness trips. */
  private async watch(run: Run): Promise<void> {
    const color: Color = run.d.candidateColor;
    let baseline: number | null = null;
    let workerBaseline: number | null = null;
    let notReady = 0;
    while (this.live(run)) {
      let health: ColorHealth;
      try {
        health = await this.o.supervisor.health(color);
      } catch {
        health = { running: true, online: true, restarts: baseline ?? 0, ready: true }; // supervisor busy: no evidence either way
      }
      if (!this.live(run)) return;
      baseline ??= health.restarts;
      if (!health.running) return this.o.trip(run, 'process_restart', 0, 1, `api-${color} is not running`);
      if (health.restarts > baseline || !health.online) {
        const n = health.restarts - baseline;
        return this.o.trip(run, 'process_restart', n, 0, `api-${color} crashed: pm2 restarted it (${n} restart${n === 1 ? '' : 's'} since it took traffic)`);
      }
      // Its worker is part of the release: a crash of it is the release's, like the API's.
      if (health.worker) {
        workerBaseline ??= health.worker.restarts;
        if (!health.worker.running) return this.o.trip(run, 'process_restart', 0, 1, `worker-${color} is not running`);
        const n = health.worker.restarts - workerBaseline;
        if (n > 0) return this.o.trip(run, 'process_restart', n, 0, `worker-${color} crashed: pm2 restarted it (${n} restart${n === 1 ? '' : 's'} since it took traffic)`);
      }
      notReady = health.ready ? 0 : notReady + 1;
      if (notReady >= WATCH_NOT_READY) {
        // Both colours unready is a shared dependency's outage (Postgres, Redis), not the release's
        // fault: the candidate is not blamed for it (its requests are still judged).
        const stable = await this.o.supervisor.health(run.d.stableColor).catch(() => null);
        if (!this.live(run)) return;
        if (stable?.ready !== false) return this.o.trip(run, 'readiness', notReady, WATCH_NOT_READY, `api-${color} failed its readiness probe ${notReady} times in a row: ${health.error ?? 'no answer'}`);
      }
      await sleep(this.o.clock, WATCH_INTERVAL_MS);
    }
  }

  /**
   * Early verdicts: once a second the candidate's requests of that second go to the sequential
   * tests, whose false-alarm rate holds however often they look.
   */
  private async sequential(run: Run): Promise<void> {
    if (!run.d.plan.sequential) return;
    const { clock } = this.o;
    run.sequential = new SequentialJudge();
    run.jobSequential = new SequentialJudge(undefined, 'jobs');
    run.acc = { count: 0, slow: 0, errors: 0 };
    run.jobAcc = { count: 0, errors: 0 };
    const startedMs = clock.now();
    this.refreshThreshold(run, startedMs);
    while (this.live(run)) {
      await sleep(clock, SEQUENTIAL_TICK_MS);
      if (!this.live(run)) return;
      const { acc, jobAcc } = run;
      run.acc = { count: 0, slow: 0, errors: 0 };
      run.jobAcc = { count: 0, errors: 0 };
      // A fresh process answers its first requests slower (cold JIT, new database connections):
      // that is not the release's latency. The slow-request test starts after a grace; errors count
      // from the first request. (bench:changelens's A/A canary was rolled back on exactly this.)
      // A candidate the warm-up made warm needs no grace.
      const thresholdMs = run.warmup?.warm || clock.now() - startedMs >= COLD_START_GRACE_MS ? run.slowThresholdMs : null;
      const stableErrorRate = this.refreshThreshold(run, startedMs);
      if (!judging(run)) continue;
      const v = run.sequential.feed({ ...acc, thresholdMs, stableErrorRate });
      if (v.verdict === 'fail') return this.o.trip(run, v.test!, v.observed!, v.threshold!, v.message!, 'early verdict');
      // The worker's job attempts: the errors test only (job latency is judged by the windows), and
      // only once the stable worker's own rate is known (the test fixes its H0 at its first
      // evidence) and low: jobs that fail on any worker (a flood of input the app refuses) would
      // put H0 beyond what a test of +5 points can tell apart; the windows judge those against the stable rate.
      const stableJobErrors = this.o.analysis.stableJobErrorRate(run, clock.now(), startedMs);
      if (stableJobErrors !== null && stableJobErrors <= SEQUENTIAL_JOB_MAX_STABLE_ERRORS) {
        const jv = run.jobSequential!.feed({ count: jobAcc.count, slow: 0, errors: jobAcc.errors, thresholdMs: null, stableErrorRate: stableJobErrors });
        if (jv.verdict === 'fail') return this.o.trip(run, jv.test!, jv.observed!, jv.threshold!, jv.message!, 'early verdict');
      }
    }
  }

  /** The stable colour's P99 since the candidate took traffic (blue/green: before the switch), plus the floor, sets what "slow" means. */
  private refreshThreshold(run: Run, sinceMs: number): number | null {
    const stable = this.o.analysis.stableBaseline(run, this.o.clock.now(), sinceMs);
    const known = stable.count >= SEQUENTIAL_MIN_BASELINE;
    // Slow means slower than the stable P99 by more than the plan's floor: a difference a user notices.
    run.slowThresholdMs = known ? stable.p99Ms + (run.d.plan.rules.p99MinDeltaMs ?? 0) : null;
    return known ? stable.errorRate : null;
  }

  private live(run: Run): boolean {
    return this.o.watching(run) && !isTerminal(run.d.status.phase) && !run.rollback;
  }
}
