// The result a finished deployment stores (and `deploy --wait`, the benchmark and the CI read):
// what each colour served, how far the candidate got, the verdicts, and how fast a rollback took.
import type { Color } from '../lib/config.js';
import type { Bucket } from './model.js';
import type { Run } from './run.js';
import type { Phase } from './state-machine.js';

export function summarise(run: Run, status: Phase, reason: string | null, buckets: readonly Bucket[], nowMs: number): unknown {
  const { d } = run;
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
  const count = (v: string) => run.history.filter((h) => h === v).length;
  return {
    deployment_id: d.id,
    start_time: d.startedAt,
    end_time: new Date(nowMs).toISOString(),
    status,
    strategy: d.strategy,
    active_release: status === 'promoted' ? d.version : d.stableVersion,
    candidate_release: d.version,
    traffic_split: { active: 1 - reached, candidate: reached },
    final_split: status === 'promoted' ? { active: 0, candidate: 1 } : { active: 1, candidate: 0 },
    metrics_summary: { stable, candidate },
    verdicts: { total: run.history.length, pass: count('pass'), fail: count('fail'), insufficient: count('insufficient') },
    rollback_reason: reason,
    // settled: false until the requests in flight at the swap had time to finish (the counts are then final).
    rollback_timing: rb ? { swapped_at: new Date(rb.swappedAtMs).toISOString(), verdict_to_swap_us: rb.verdictToSwapUs, candidate_requests_after_swap: rb.candidateRequestsAfterSwap, candidate_in_flight_at_swap: rb.candidateInFlightAtSwap, settled: rb.settled } : null,
    total_requests: stable.requests + candidate.requests,
    duration_seconds: (nowMs - Date.parse(d.startedAt)) / 1000,
  };
}
