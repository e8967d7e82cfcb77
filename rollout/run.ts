// One deployment in flight, as the proxy holds it in memory: the persisted row plus what its
// analysis and fast trips accumulate. Only the reconciler creates one; its parts read and update it.
import type { WindowStats, WindowVerdict } from '../monitoring/index.js';
import type { SequentialJudge } from '../monitoring/sequential.js';
import type { AnalysisLoadRun } from './analysis-load.js';
import type { Deployment, Release } from './model.js';
import type { WarmupReport } from './warmup.js';

/** How fast a rollback took effect, measured in process (see the note of issue 4). */
export interface RollbackTiming {
  /** Verdict (or operator call) to the routing table swap, microseconds. */
  verdictToSwapUs: number;
  /** Candidate requests that started after the swap (pinned previews only; else a bug). */
  candidateRequestsAfterSwap: number;
  /** Candidate requests in flight at the swap that finished after it. */
  candidateInFlightAtSwap: number;
}

export interface Run {
  d: Deployment;
  release: Release;
  /** Every verdict so far, stored ones included (a restarted proxy continues the failure streak). */
  history: WindowVerdict[];
  seq: number;
  stepStartedMs: number;
  /** When the candidate first took traffic (its first step, or a take-over): where the stable colour's recent range starts. */
  servingSinceMs: number | null;
  /** The last sign of progress: the start, a step entered or resumed, a decisive verdict (the progress deadline's clock). */
  progressMs: number;
  /** Paused by an operator: the progress deadline waits for the resume. */
  pausedByOperator: boolean;
  /** The progress deadline acted (once). */
  deadlinePassed: boolean;
  /** What the warm-up before the first step did; null: none. */
  warmup: WarmupReport | null;
  /** The plan's analysis load while it runs. */
  load: AnalysisLoadRun | null;
  /** bluegreen: the stable colour's latency before the switch, the baseline of its analysis. */
  baseline: WindowStats | null;
  /** Ends the driver's current sleep early (an operator action, a close). */
  wake: () => void;
  /** Set at the swap to stable; `settled` once the requests in flight at it had time to finish. */
  rollback: (RollbackTiming & { swappedAtMs: number; settled: boolean }) | null;
  /** The largest candidate weight so far. */
  maxWeight: number;
  /** 5xx in a row from the candidate (a fast trip at plan.tripConsecutive5xx). */
  consecutive5xx: number;
  /** The early-verdict tests, fed once a second with what `acc` counted; null when off. */
  sequential: SequentialJudge | null;
  acc: { count: number; slow: number; errors: number };
  /** The candidate worker's job attempts since the last sequential tick, and the job-errors test they feed; null when off. */
  jobAcc: { count: number; errors: number };
  jobSequential: SequentialJudge | null;
  /** Failed job attempts in a row from the candidate's worker (a fast trip at plan.tripConsecutiveJobFailures). */
  consecutiveJobFailures: number;
  /** Where the next job window starts: the end of the last one judged; null: the step's start. */
  jobsSinceMs: number | null;
  /** The same for the job P99 comparison, which needs more outcomes. */
  jobLatencySinceMs: number | null;
  /** The last window was insufficient only for want of the candidate worker's job outcomes: its step waits on, it is not inconclusive. */
  heldByJobs: boolean;
  /** The stable worker's outcomes in a row that completed (null: none seen yet): a run of candidate failures trips only when the stable worker is not failing too. */
  stableJobStreak: number | null;
  /** bluegreen: the stable worker's jobs before the switch (after it, the stable API enqueues none). */
  jobBaseline: WindowStats | null;
  /** A candidate request slower than this (the stable P99) counts as slow; null: not known yet. */
  slowThresholdMs: number | null;
  lastExplanation: string | null;
  /** Why the last window that decided nothing did not (the progress deadline's reason). */
  lastUndecided: string | null;
}

export function newRun(d: Deployment, release: Release, nowMs: number, stored: readonly WindowVerdict[] = []): Run {
  return {
    d, release, history: [...stored], seq: stored.length, stepStartedMs: nowMs, servingSinceMs: null, progressMs: nowMs, pausedByOperator: false, deadlinePassed: false, warmup: null, load: null, baseline: null, wake: () => {}, rollback: null,
    maxWeight: 0, consecutive5xx: 0, sequential: null, acc: { count: 0, slow: 0, errors: 0 }, jobAcc: { count: 0, errors: 0 }, jobSequential: null, consecutiveJobFailures: 0, jobsSinceMs: null, jobLatencySinceMs: null, heldByJobs: false, stableJobStreak: null, jobBaseline: null, slowThresholdMs: null, lastExplanation: null, lastUndecided: null,
  };
}

/** The candidate takes traffic and is being judged. */
export const judging = (run: Run): boolean => run.d.status.phase === 'shifting' || run.d.status.phase === 'paused';
