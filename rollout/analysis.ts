// Window analysis: each window (whole 1 s slices) of the candidate is judged against its baseline
// (monitoring/judge.ts), explained in one sentence, and stored with both colours' buckets. When a
// step has had its whole period, its last decisive window decides whether it passed.
import type { Color } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import { consecutiveFailures, judgeJobs, judgeWindow, withJobRules, type RuleResult, type SlicedWindow, type WindowJudgement, type WindowStats } from '../monitoring/index.js';
import type { Bucket } from './model.js';
import type { RolloutGauges, RolloutStore } from './ports.js';
import type { Run } from './run.js';

/** A response that ended in a window's last millisecond is recorded by now. */
export const GRACE_MS = 30;
/** The longest period the job rules judge (the step so far, up to this; the slices keep two minutes). */
const JOB_PERIOD_MAX_MS = 110_000;
/** How much of the stable colour's past is its baseline (blue/green: before the switch). */
export const BASELINE_SECONDS = 30;
/** How many of the stable colour's windows before this one show its own spread, and how many it needs. */
const SPREAD_WINDOWS = 5;
const SPREAD_MIN_WINDOWS = 3;

export type StepOutcome = 'passed' | 'inconclusive' | 'undecided';

export class WindowAnalysis {
  /** `jobs`: the job outcomes of each colour's worker, in the same 1 s slices (rollout/job-outcomes.ts feeds it). */
  constructor(private readonly o: {
    window: SlicedWindow; jobs: SlicedWindow; store: RolloutStore; log: Logger; gauges: RolloutGauges | undefined;
    /** Jobs on a colour's stream now (waiting or in progress): a worker with work and no outcome is not one without jobs. */
    jobBacklog?: (color: Color) => number;
  }) {}

  /** The end of the step's first window: the first whole second of the step plus one window. */
  firstWindowEnd(run: Run): number {
    return Math.ceil(run.stepStartedMs / 1000) * 1000 + run.d.plan.windowSeconds * 1000;
  }

  /**
   * The window after `windowEnd`, or a fresh first one when the step began (or resumed) since —
   * never overlapping the one just judged: consecutive failures must be separate evidence (one slow
   * request in two overlapping windows of a resumed step once rolled a good release back).
   */
  nextWindowEnd(run: Run, windowEnd: number): number {
    const windowMs = run.d.plan.windowSeconds * 1000;
    return run.stepStartedMs > windowEnd - windowMs ? Math.max(this.firstWindowEnd(run), windowEnd + windowMs) : windowEnd + windowMs;
  }

  /**
   * What "slow" means for the sequential latency test: blue/green's pre-switch baseline, else the
   * stable colour since `sinceMs` (when the candidate began taking traffic; at most 30 s) — the same
   * period and the same load on the box as the candidate's own requests. Reaching further back would
   * take in the candidate's start-up (which slows the stable colour too, on a busy box) or an earlier
   * deployment, and one inflated P99 can end the test in its first second.
   */
  stableBaseline(run: Run, nowMs: number, sinceMs: number): WindowStats {
    if (run.baseline) return run.baseline;
    const lengthMs = baselineMs(nowMs, sinceMs);
    return this.o.window.window(run.d.stableColor, nowMs, lengthMs);
  }

  /** The stable worker's job failure rate over the same period as stableBaseline (for the sequential job test); null when it ran too few. */
  stableJobErrorRate(run: Run, nowMs: number, sinceMs: number): number | null {
    const stable = run.jobBaseline ?? this.o.jobs.window(run.d.stableColor, nowMs, baselineMs(nowMs, sinceMs));
    return stable.count >= 20 ? stable.errorRate : null;
  }

  captureBaseline(run: Run, nowMs: number): void {
    run.baseline = this.o.window.window(run.d.stableColor, nowMs, BASELINE_SECONDS * 1000);
    run.jobBaseline = this.o.jobs.window(run.d.stableColor, nowMs, BASELINE_SECONDS * 1000);
  }

  judge(run: Run, windowEnd: number): WindowJudgement {
    const { d } = run;
    const lengthMs = d.plan.windowSeconds * 1000;
    const candidate = this.o.window.window(d.candidateColor, windowEnd, lengthMs);
    const jobs = this.judgeJobs(run, windowEnd, lengthMs);
    // blue/green's candidate takes everything: it is compared with the stable colour before the switch.
    const requests = run.baseline ? judgeWindow(candidate, run.baseline, d.plan.rules)
      : judgeWindow(candidate, this.o.window.window(d.stableColor, windowEnd, lengthMs), d.plan.rules, this.stableRecentP99(run, windowEnd, lengthMs));
    const judged = withJobRules(requests, jobs);
    run.heldByJobs = judged.verdict === 'insufficient' && requests.verdict === 'pass';
    return judged;
  }

  /**
   * The candidate's worker against the stable worker over a job window of its own: from the end of
   * the last judged one (or the step's start) to now, at most a minute. Jobs come far slower than
   * requests, so it grows until it holds the minimum of outcomes, and is judged once: consecutive
   * windows never judge the same jobs twice, so a failure streak is one of independent evidence.
   */
  private judgeJobs(run: Run, windowEnd: number, lengthMs: number): RuleResult[] {
    const { d } = run;
    // From when the candidate took traffic, not the step: its worker is the same at every weight.
    const serving = Math.ceil((run.servingSinceMs ?? run.stepStartedMs) / 1000) * 1000;
    const period = (since: number | null): { candidate: WindowStats; stable: WindowStats } => {
      const start = Math.max(since ?? 0, serving, windowEnd - JOB_PERIOD_MAX_MS);
      const periodMs = Math.max(lengthMs, windowEnd - start);
      return { candidate: this.o.jobs.window(d.candidateColor, windowEnd, periodMs), stable: run.jobBaseline ?? this.o.jobs.window(d.stableColor, windowEnd, periodMs) };
    };
    const rates = period(run.jobsSinceMs);
    // The P99s need more outcomes than the rates: their own period, closed only when they were compared.
    const latency = period(run.jobLatencySinceMs);
    const results = judgeJobs(rates.candidate, rates.stable, d.plan.rules, latency);
    if (results.some((r) => r.rule === 'job_error_rate' && r.verdict !== 'insufficient')) run.jobsSinceMs = windowEnd;
    if (results.some((r) => r.rule === 'job_p99_ratio' && r.verdict !== 'insufficient')) run.jobLatencySinceMs = windowEnd;
    // No outcome, but jobs wait on its stream: a stuck worker is not one without jobs (never a pass).
    const backlog = this.o.jobBacklog?.(d.candidateColor) ?? 0;
    if (results.length === 0 && backlog > 0) {
      return [{ rule: 'job_error_rate', verdict: 'insufficient', observed: NaN, threshold: d.plan.rules.maxErrorRate, message: `no job of the candidate's worker ended in the period; ${backlog} wait on its stream` }];
    }
    return results;
  }

  /**
   * The stable colour's own spread: the second-highest P99 of its last few windows since the
   * candidate took traffic (the same box load; not the candidate's start-up before it), counting
   * only windows with twice the minimum of requests (a P99 of 50 is nearly a maximum), and only
   * once there are three. The second-highest: one disturbed window of its own is not its range.
   */
  private stableRecentP99(run: Run, windowEnd: number, lengthMs: number): number | undefined {
    const p99s: number[] = [];
    for (let k = 1; k <= SPREAD_WINDOWS; k++) {
      const end = windowEnd - k * lengthMs;
      if (run.servingSinceMs === null || end - lengthMs < Math.floor(run.servingSinceMs / 1000) * 1000) break;
      const w = this.o.window.window(run.d.stableColor, end, lengthMs);
      if (w.count >= 2 * run.d.plan.rules.minSamples) p99s.push(w.p99Ms);
    }
    return p99s.length >= SPREAD_MIN_WINDOWS ? p99s.sort((a, b) => b - a)[1] : undefined;
  }

  /** True when the failure streak (stored verdicts included) reaches the plan's rollback count. */
  streakTrips(run: Run): boolean {
    return consecutiveFailures(run.history) >= run.d.plan.rules.failuresToRollback;
  }

  /** Why the verdicts that trip failed, for the rollback's reason. */
  failures(j: WindowJudgement): string {
    return j.rules.filter((r) => r.verdict === 'fail').map((r) => r.message).join('; ');
  }

  /** After a window of a shifting step: does the step pass, stay undecided, or have nothing to judge by? */
  stepOutcome(run: Run, windowEnd: number): StepOutcome {
    const windows = Math.max(1, Math.floor((windowEnd - Math.ceil(run.stepStartedMs / 1000) * 1000) / (run.d.plan.windowSeconds * 1000)));
    // Requests enough, job outcomes not yet: the step never passes on an older window meanwhile. It
    // waits for them when the progress deadline bounds the wait; without one, the operator decides.
    if (run.heldByJobs) return (run.d.plan.progressDeadlineSeconds ?? 0) > 0 ? 'undecided' : 'inconclusive';
    const decisive = run.history.slice(-windows).filter((v) => v !== 'insufficient');
    if (decisive.length === 0) return 'inconclusive';
    // Last decisive window failed (but fewer than N in a row): judge on until it settles.
    return decisive.at(-1) === 'pass' ? 'passed' : 'undecided';
  }

  /** Why a window decided nothing: its insufficient rules' messages, once each. */
  undecided(j: WindowJudgement): string {
    return messagesOf(j, 'insufficient');
  }

  /** One sentence per verdict: what fired, or why this window did not roll back. */
  explain(run: Run, j: WindowJudgement): string {
    const needed = run.d.plan.rules.failuresToRollback;
    const of = (v: RuleResult['verdict']) => messagesOf(j, v);
    if (j.verdict === 'pass') return `passed: ${of('pass')}`;
    if (j.verdict === 'insufficient') return `not judged (too few requests or job outcomes, neither pass nor fail): ${this.undecided(j)}`;
    const streak = consecutiveFailures(run.history);
    return streak >= needed ? `failed, ${streak} in a row (rolls back at ${needed}): ${of('fail')}` : `failed, ${streak} in a row of the ${needed} that roll back: ${of('fail')}`;
  }

  /** Stores a verdict (already in run.history) with both colours' buckets; a fast trip has none. */
  async record(run: Run, j: WindowJudgement, weight: number, o: { buckets: boolean; explanation?: string }): Promise<void> {
    const { d } = run;
    const explanation = o.explanation ?? this.explain(run, j);
    this.o.gauges?.countVerdict(j.verdict);
    const seq = ++run.seq;
    const lengthMs = j.window.endMs - j.window.startMs;
    const bucket = (color: Color, violations: number): Bucket => {
      const w = this.o.window.window(color, j.window.endMs, lengthMs);
      return { color, startMs: w.startMs, durationSec: lengthMs / 1000, count: w.count, errors: w.errors, p50Ms: w.p50Ms, p95Ms: w.p95Ms, p99Ms: w.p99Ms, violations };
    };
    const violations = j.rules.filter((r) => r.verdict === 'fail').length;
    await Promise.all([
      this.o.store.addVerdict(d.id, { ...j, seq, stepIndex: d.status.stepIndex, weight, explanation }),
      o.buckets ? this.o.store.addBuckets(d.id, [bucket(d.candidateColor, violations), bucket(d.stableColor, 0)]) : undefined,
    ]);
    run.lastExplanation = explanation;
    if (j.verdict !== 'pass') this.o.log.info({ deployment: d.id, verdict: j.verdict, samples: j.samples, explanation }, `window ${j.verdict}`);
  }
}

/** The whole seconds since `sinceMs`, one at least and the baseline's length at most. */
const baselineMs = (nowMs: number, sinceMs: number): number => Math.min(BASELINE_SECONDS * 1000, Math.max(1000, Math.floor((nowMs - sinceMs) / 1000) * 1000));

const messagesOf = (j: WindowJudgement, v: RuleResult['verdict']): string => [...new Set(j.rules.filter((r) => r.verdict === v).map((r) => r.message))].join('; ');
