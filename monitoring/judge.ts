// Judging one window of the candidate against the stable colour in the same window (a concurrent
// baseline) and against absolute ceilings. A window with too few samples is `insufficient`:
// never a pass, never a fail. Every verdict says which rule, the observed value, the threshold,
// the samples and the window, so a rollback can always be explained. Pure: no clock, no I/O.
import type { MetricRule } from '../lib/contracts/metric-rules.js';
import type { WindowStats } from './sliced-window.js';

export { parseMetricRules, type MetricRule } from '../lib/contracts/metric-rules.js';

export type WindowVerdict = 'pass' | 'fail' | 'insufficient';

export interface JudgeRules {
  /** Candidate P99 / stable P99 above this fails (seed default 1.5). */
  p99Ratio: number;
  /**
   * The latency rule also needs the candidate's P99 to exceed the stable colour's by more than this
   * many ms (practical significance); undefined or 0: the ratio alone decides (plans stored before it).
   */
  p99MinDeltaMs?: number;
  /** Candidate error rate above this fails (seed default 5 %). */
  maxErrorRate: number;
  /** Absolute ceilings in ms; undefined means none. */
  maxP95Ms?: number;
  maxP99Ms?: number;
  /** Fewer candidate samples than this (or fewer stable samples, for the ratio) is insufficient. */
  minSamples: number;
  /** Consecutive failing windows before a rollback (seed default 2). */
  failuresToRollback: number;
  /** Floors and ceilings on app-reported metrics' window means (the canary seed's recall@10 ≥ 0.30). */
  metrics?: MetricRule[];
  /** Job outcomes the candidate's worker needs in a window before its job rules decide (default 20). */
  jobMinSamples?: number;
}


export const DEFAULT_RULES: JudgeRules = { p99Ratio: 1.5, maxErrorRate: 0.05, minSamples: 50, failuresToRollback: 2 };

export interface RuleResult {
  /** A window rule, or a fast trip that did not wait for a window (rollout/fast-trips.ts). */
  rule: 'p99_ratio' | 'error_rate' | 'p95_ceiling' | 'p99_ceiling' | 'consecutive_5xx' | 'process_restart' | 'readiness' | 'sequential_latency' | 'sequential_errors'
    | 'job_error_rate' | 'job_p99_ratio' | 'job_dead_letters' | 'consecutive_job_failures' | 'sequential_job_errors' | `metric:${string}`;
  verdict: WindowVerdict;
  observed: number;
  threshold: number;
  /** Human-readable, with the numbers: "p99 412.0ms = 3.10× stable 133.0ms > 1.5×". */
  message: string;
}

export interface WindowJudgement {
  verdict: WindowVerdict;
  window: { startMs: number; endMs: number };
  samples: { candidate: number; stable: number };
  rules: RuleResult[];
}

/**
 * Judges one window of the candidate against the stable colour's same window (or its pre-switch
 * baseline). `stableRecentP99Ms`: the highest P99 the stable colour showed in its recent windows —
 * its own spread; a candidate inside it is not slower than the stable colour already is.
 */
export function judgeWindow(candidate: WindowStats, stable: WindowStats, rules: JudgeRules, stableRecentP99Ms?: number): WindowJudgement {
  const results: RuleResult[] = [];
  const enough = candidate.count >= rules.minSamples;
  const insufficient = (rule: RuleResult['rule'], threshold: number, why: string): RuleResult =>
    ({ rule, verdict: 'insufficient', observed: NaN, threshold, message: why });
  const few = `${candidate.count} candidate samples < ${rules.minSamples}`;

  results.push(enough
    ? outcome('error_rate', candidate.errorRate, rules.maxErrorRate, `error rate ${pct(candidate.errorRate)} (${candidate.errors}/${candidate.count})`, pct(rules.maxErrorRate))
    : insufficient('error_rate', rules.maxErrorRate, few));

  if (!enough) results.push(insufficient('p99_ratio', rules.p99Ratio, few));
  else if (stable.count < rules.minSamples) results.push(insufficient('p99_ratio', rules.p99Ratio, `${stable.count} stable samples < ${rules.minSamples}`));
  else {
    results.push(latencyRule(candidate.p99Ms, stable.p99Ms, rules, stableRecentP99Ms));
  }

  if (rules.maxP95Ms !== undefined) {
    results.push(enough ? outcome('p95_ceiling', candidate.p95Ms, rules.maxP95Ms, `p95 ${ms(candidate.p95Ms)}`, ms(rules.maxP95Ms)) : insufficient('p95_ceiling', rules.maxP95Ms, few));
  }
  if (rules.maxP99Ms !== undefined) {
    results.push(enough ? outcome('p99_ceiling', candidate.p99Ms, rules.maxP99Ms, `p99 ${ms(candidate.p99Ms)}`, ms(rules.maxP99Ms)) : insufficient('p99_ceiling', rules.maxP99Ms, few));
  }

  for (const rule of rules.metrics ?? []) {
    const m = candidate.metrics[rule.name];
    const id = `metric:${rule.name}` as const;
    // An app reports its metric on some requests only: enough of those, not of all requests.
    const needed = Math.min(rules.minSamples, METRIC_MIN_SAMPLES);
    if (!m || m.count < needed) results.push(insufficient(id, rule.threshold, `${m?.count ?? 0} ${rule.name} values < ${needed}`));
    else {
      const failed = rule.op === '>=' ? m.mean < rule.threshold : m.mean > rule.threshold;
      results.push({ rule: id, verdict: failed ? 'fail' : 'pass', observed: m.mean, threshold: rule.threshold, message: `${rule.name} mean ${round(m.mean)} over ${m.count} ${failed ? (rule.op === '>=' ? '<' : '>') : rule.op} ${rule.threshold}` });
    }
  }

  // Any failing rule fails the window; otherwise any insufficient rule makes it insufficient.
  const verdict: WindowVerdict = results.some((r) => r.verdict === 'fail') ? 'fail' : results.some((r) => r.verdict === 'insufficient') ? 'insufficient' : 'pass';
  return { verdict, window: { startMs: candidate.startMs, endMs: candidate.endMs }, samples: { candidate: candidate.count, stable: stable.count }, rules: results };
}

/** The metric name under which a job window counts dead letters (one value of 1 per dead-lettered job). */
export const DEAD_LETTER_METRIC = 'dead_letters';
export const DEFAULT_JOB_MIN_SAMPLES = 20;
/** The fewest job outcomes (each colour) whose P99s are compared. */
export const JOB_LATENCY_MIN_SAMPLES = 50;

/**
 * The candidate worker's jobs against the stable worker's, by the request rules: failure rate (failed
 * attempts), the P99 ratio of enqueue-to-outcome latency (with the same floor), and the share
 * dead-lettered. Jobs fail for reasons of their own (bad input the app refuses, a job asked to
 * fail): with enough stable outcomes, the failure rules take the stable worker's rate as their base,
 * so only what the candidate adds counts. `latency`: the P99s over a period of their own (a P99 needs
 * more outcomes than a rate). None when the candidate's worker reported no job in the period.
 */
export function judgeJobs(candidate: WindowStats, stable: WindowStats, rules: JudgeRules, latency: { candidate: WindowStats; stable: WindowStats } = { candidate, stable }): RuleResult[] {
  if (candidate.count === 0) return [];
  const min = rules.jobMinSamples ?? DEFAULT_JOB_MIN_SAMPLES;
  const few = `${candidate.count} candidate job outcomes < ${min}`;
  const insufficient = (rule: RuleResult['rule'], threshold: number, why: string): RuleResult => ({ rule, verdict: 'insufficient', observed: NaN, threshold, message: why });
  if (candidate.count < min) {
    return [insufficient('job_error_rate', rules.maxErrorRate, few), insufficient('job_p99_ratio', rules.p99Ratio, few), insufficient('job_dead_letters', rules.maxErrorRate, few)];
  }
  const stableKnown = stable.count >= min;
  const base = (rate: number): { threshold: number; limit: string } => stableKnown
    ? { threshold: Math.min(1, rate + rules.maxErrorRate), limit: `stable ${pct(rate)} + ${pct(rules.maxErrorRate)}` }
    : { threshold: rules.maxErrorRate, limit: pct(rules.maxErrorRate) };
  const failures = base(stable.errorRate);
  const results: RuleResult[] = [outcome('job_error_rate', candidate.errorRate, failures.threshold, `job failures ${pct(candidate.errorRate)} (${candidate.errors}/${candidate.count} attempts)`, failures.limit)];
  // A P99 of a few dozen values is their maximum: the latency rule waits for as many as a request window's.
  const latencyMin = Math.max(min, JOB_LATENCY_MIN_SAMPLES);
  if (latency.candidate.count < latencyMin) results.push(insufficient('job_p99_ratio', rules.p99Ratio, `${latency.candidate.count} candidate job outcomes < ${latencyMin} for a P99`));
  else if (latency.stable.count < latencyMin) results.push(insufficient('job_p99_ratio', rules.p99Ratio, `${latency.stable.count} stable job outcomes < ${latencyMin} for a P99`));
  else {
    const judged = latencyRule(latency.candidate.p99Ms, latency.stable.p99Ms, rules, undefined);
    results.push({ ...judged, rule: 'job_p99_ratio', message: `job ${judged.message}` });
  }
  const deadShare = (w: WindowStats): number => (w.metrics[DEAD_LETTER_METRIC]?.count ?? 0) / Math.max(1, w.count);
  const dead = candidate.metrics[DEAD_LETTER_METRIC]?.count ?? 0;
  const deadBase = base(deadShare(stable));
  results.push(outcome('job_dead_letters', dead / candidate.count, deadBase.threshold, `dead-lettered ${pct(dead / candidate.count)} (${dead}/${candidate.count})`, deadBase.limit));
  return results;
}

/**
 * A window's verdict with its job rules, which count like the request rules: a failing one fails
 * it, and too few job outcomes (when the candidate's worker reports any) make it insufficient, never
 * a pass: a worker whose jobs end slowly must not be promoted on its API's requests alone. (The
 * caller judges jobs over the whole step so far, so a few jobs a second still reach the minimum.)
 * The stable colour's too-few (its P99, for the ratio) decides nothing either way, as for requests.
 */
export function withJobRules(j: WindowJudgement, jobs: readonly RuleResult[]): WindowJudgement {
  if (jobs.length === 0) return j;
  const rules = [...j.rules, ...jobs];
  const candidateFew = jobs.some((r) => r.verdict === 'insufficient' && r.rule === 'job_error_rate');
  const verdict: WindowVerdict = rules.some((r) => r.verdict === 'fail') ? 'fail' : candidateFew ? 'insufficient' : j.verdict;
  return { ...j, verdict, rules };
}

/** Rolls back after N consecutive failing windows; an insufficient window neither counts nor resets. */
export function consecutiveFailures(history: readonly WindowVerdict[]): number {
  let n = 0;
  for (let i = history.length - 1; i >= 0; i--) {
    const v = history[i];
    if (v === 'fail') n++;
    else if (v === 'pass') break;
  }
  return n;
}

/**
 * The P99 ratio, made practical: it fails only when the ratio is exceeded, the excess is more than
 * the floor, and the candidate is above the stable colour's own recent range. The range can raise
 * the bar by one more floor at most (stable P99 + 2 × floor), so a stable colour that was itself
 * disturbed never hides a regression larger than that; with no floor it has no effect. The
 * sentence names the floor and the range it used, whichever way it went.
 */
function latencyRule(candidateMs: number, stableMs: number, rules: JudgeRules, stableRecentP99Ms: number | undefined): RuleResult {
  // A stable P99 of 0 cannot happen with samples (values are ≥ 1 µs), but guard the division.
  const ratio = candidateMs / Math.max(stableMs, 0.001);
  const floor = rules.p99MinDeltaMs ?? 0;
  const excess = candidateMs - stableMs;
  const range = Math.min(Math.max(stableRecentP99Ms ?? stableMs, stableMs), stableMs + 2 * floor);
  const over = ratio > rules.p99Ratio;
  const material = excess > floor;
  const outside = candidateMs > range;
  const failed = over && material && outside;
  const what = `p99 ${ms(candidateMs)} = ${ratio.toFixed(2)}× stable ${ms(stableMs)} ${over ? '>' : '≤'} ${rules.p99Ratio}×`;
  const excessText = `${excess >= 0 ? '+' : '−'}${ms(Math.abs(excess))} ${material ? '>' : '≤'} the ${ms(floor)} floor`;
  const rangeText = stableRecentP99Ms === undefined ? 'no recent range of the stable colour yet'
    : range > stableMs ? `${outside ? 'above' : 'within'} the stable colour's recent range (up to ${ms(range)})`
      : 'the stable colour\'s recent windows no higher than now';
  return { rule: 'p99_ratio', verdict: failed ? 'fail' : 'pass', observed: ratio, threshold: rules.p99Ratio, message: `${what}, ${excessText}, ${rangeText}` };
}

function outcome(rule: RuleResult['rule'], observed: number, threshold: number, what: string, limit: string): RuleResult {
  const failed = observed > threshold;
  return { rule, verdict: failed ? 'fail' : 'pass', observed, threshold, message: `${what} ${failed ? '>' : '≤'} ${limit}` };
}

const ms = (x: number): string => `${x.toFixed(1)}ms`;
const round = (x: number): string => String(Math.round(x * 10_000) / 10_000);
/** The fewest metric values a window needs before its mean is judged. */
const METRIC_MIN_SAMPLES = 20;
const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
