import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { consecutiveFailures, DEAD_LETTER_METRIC, DEFAULT_RULES, judgeJobs, judgeWindow, parseMetricRules, withJobRules, type JudgeRules, type WindowVerdict } from './judge.js';
import type { WindowStats } from './sliced-window.js';

const stats = (over: Partial<WindowStats>): WindowStats => ({
  color: 'green', startMs: 0, endMs: 5_000, count: 200, errors: 0, errorRate: 0, p50Ms: 5, p95Ms: 8, p99Ms: 10, maxMs: 12, metrics: {}, ...over,
});

const statsArb = (color: 'blue' | 'green') => fc.record({
  count: fc.integer({ min: 0, max: 2_000 }),
  errorShare: fc.double({ min: 0, max: 1, noNaN: true }),
  p99Ms: fc.double({ min: 0.001, max: 10_000, noNaN: true }),
  p95Factor: fc.double({ min: 0.1, max: 1, noNaN: true }),
}).map(({ count, errorShare, p99Ms, p95Factor }) => {
  const errors = Math.round(count * errorShare);
  return stats({ color, count, errors, errorRate: count === 0 ? 0 : errors / count, p99Ms, p95Ms: p99Ms * p95Factor, p50Ms: p99Ms * p95Factor / 2, maxMs: p99Ms });
});

const rulesArb: fc.Arbitrary<JudgeRules> = fc.record({
  p99Ratio: fc.double({ min: 1, max: 5, noNaN: true }),
  maxErrorRate: fc.double({ min: 0, max: 0.5, noNaN: true }),
  maxP95Ms: fc.option(fc.double({ min: 1, max: 5_000, noNaN: true }), { nil: undefined }),
  maxP99Ms: fc.option(fc.double({ min: 1, max: 5_000, noNaN: true }), { nil: undefined }),
  minSamples: fc.integer({ min: 1, max: 500 }),
  failuresToRollback: fc.integer({ min: 1, max: 5 }),
});

describe('judgeWindow', () => {
  it('no window that a rule fails is ever judged a pass; a pass means every rule passed with enough samples', () => {
    fc.assert(fc.property(statsArb('green'), statsArb('blue'), rulesArb, (candidate, stable, rules) => {
      const j = judgeWindow(candidate, stable, rules);
      if (j.rules.some((r) => r.verdict === 'fail')) expect(j.verdict).toBe('fail');
      if (j.verdict === 'pass') {
        expect(j.rules.every((r) => r.verdict === 'pass')).toBe(true);
        expect(candidate.count).toBeGreaterThanOrEqual(rules.minSamples);
      }
      // Independently of the code: each threshold actually exceeded (with enough samples) fails the window.
      const enough = candidate.count >= rules.minSamples;
      if (enough && candidate.errorRate > rules.maxErrorRate) expect(j.verdict).toBe('fail');
      if (enough && stable.count >= rules.minSamples && candidate.p99Ms / stable.p99Ms > rules.p99Ratio * 1.000001) expect(j.verdict).toBe('fail');
      if (enough && rules.maxP99Ms !== undefined && candidate.p99Ms > rules.maxP99Ms) expect(j.verdict).toBe('fail');
      if (!enough) expect(j.verdict).toBe('insufficient');
    }));
  });

  // Practical significance (issue 16): a busy box's 6 → 10 ms tail is not a regression a user notices.
  const shiftArb = fc.record({
    stableP99: fc.double({ min: 0.5, max: 2_000, noNaN: true }),
    floor: fc.double({ min: 0, max: 200, noNaN: true }),
    ratio: fc.double({ min: 1, max: 3, noNaN: true }),
    count: fc.integer({ min: 50, max: 5_000 }),
  });

  it('a latency shift no larger than the floor never fails the latency rule, whatever the ratio', () => {
    fc.assert(fc.property(shiftArb, fc.double({ min: 0, max: 1, noNaN: true }), ({ stableP99, floor, ratio, count }, share) => {
      const candidateP99 = stableP99 + floor * share;
      fc.pre(candidateP99 - stableP99 <= floor); // the shift as the judge computes it (floating point) is within the floor
      const rules = { ...DEFAULT_RULES, p99Ratio: ratio, p99MinDeltaMs: floor };
      const j = judgeWindow(stats({ count, p99Ms: candidateP99 }), stats({ color: 'blue', count, p99Ms: stableP99 }), rules);
      const rule = j.rules.find((r) => r.rule === 'p99_ratio')!;
      expect(rule.verdict).toBe('pass');
      expect(rule.message).toContain(`the ${floor.toFixed(1)}ms floor`);
    }));
  });

  it('a shift above the floor, the ratio and the stable colour\'s recent range always fails, with enough samples', () => {
    fc.assert(fc.property(shiftArb, fc.double({ min: 1.001, max: 10, noNaN: true }), fc.double({ min: 1, max: 1.5, noNaN: true }), ({ stableP99, floor, ratio, count }, over, spread) => {
      const recent = stableP99 * spread;
      const candidateP99 = Math.max(stableP99 * ratio, stableP99 + floor, recent) * over;
      const rules = { ...DEFAULT_RULES, p99Ratio: ratio, p99MinDeltaMs: floor, minSamples: 50 };
      const j = judgeWindow(stats({ count, p99Ms: candidateP99 }), stats({ color: 'blue', count, p99Ms: stableP99 }), rules, recent);
      expect(j.rules.find((r) => r.rule === 'p99_ratio')!.verdict).toBe('fail');
      expect(j.verdict).toBe('fail');
    }));
  });

  it('a candidate within the stable colour\'s own recent range passes, and the sentence says so', () => {
    const rules = { ...DEFAULT_RULES, p99MinDeltaMs: 3 };
    const j = judgeWindow(stats({ p99Ms: 10.4 }), stats({ color: 'blue', p99Ms: 6 }), rules, 11.2);
    const rule = j.rules.find((r) => r.rule === 'p99_ratio')!;
    expect(rule.verdict).toBe('pass');
    expect(rule.message).toBe('p99 10.4ms = 1.73× stable 6.0ms > 1.5×, +4.4ms > the 3.0ms floor, within the stable colour\'s recent range (up to 11.2ms)');
    const below = judgeWindow(stats({ p99Ms: 10.4 }), stats({ color: 'blue', p99Ms: 6 }), { ...DEFAULT_RULES, p99MinDeltaMs: 20 }).rules.find((r) => r.rule === 'p99_ratio')!;
    expect(below).toMatchObject({ verdict: 'pass', message: 'p99 10.4ms = 1.73× stable 6.0ms > 1.5×, +4.4ms ≤ the 20.0ms floor, no recent range of the stable colour yet' });
    // A stable colour disturbed in its recent windows never hides more than another floor.
    const masked = judgeWindow(stats({ p99Ms: 56 }), stats({ color: 'blue', p99Ms: 14 }), { ...DEFAULT_RULES, p99MinDeltaMs: 20 }, 90).rules.find((r) => r.rule === 'p99_ratio')!;
    expect(masked).toMatchObject({ verdict: 'fail', message: 'p99 56.0ms = 4.00× stable 14.0ms > 1.5×, +42.0ms > the 20.0ms floor, above the stable colour\'s recent range (up to 54.0ms)' });
  });

  it('a window with too few samples is insufficient, never a pass or a fail', () => {
    const j = judgeWindow(stats({ count: 10, errors: 10, errorRate: 1, p99Ms: 10_000 }), stats({ color: 'blue' }), DEFAULT_RULES);
    expect(j.verdict).toBe('insufficient');
    expect(j.rules.every((r) => r.verdict === 'insufficient')).toBe(true);
    expect(j.rules[0]!.message).toBe('10 candidate samples < 50');
  });

  it('explains every verdict with rule, observed value, threshold, samples and window', () => {
    const j = judgeWindow(stats({ p99Ms: 412, errors: 4, errorRate: 0.02 }), stats({ color: 'blue', p99Ms: 133 }), DEFAULT_RULES);
    expect(j.verdict).toBe('fail');
    expect(j.samples).toEqual({ candidate: 200, stable: 200 });
    expect(j.window).toEqual({ startMs: 0, endMs: 5_000 });
    const ratio = j.rules.find((r) => r.rule === 'p99_ratio')!;
    expect(ratio).toMatchObject({ verdict: 'fail', threshold: 1.5 });
    expect(ratio.observed).toBeCloseTo(412 / 133, 6);
    expect(ratio.message).toBe('p99 412.0ms = 3.10× stable 133.0ms > 1.5×, +279.0ms > the 0.0ms floor, no recent range of the stable colour yet');
    expect(j.rules.find((r) => r.rule === 'error_rate')!.message).toBe('error rate 2.0% (4/200) ≤ 5.0%');
  });

  it('the P99 ratio needs stable samples too; the error rate does not', () => {
    const j = judgeWindow(stats({ errors: 20, errorRate: 0.1 }), stats({ color: 'blue', count: 3 }), DEFAULT_RULES);
    expect(j.verdict).toBe('fail');
    expect(j.rules.find((r) => r.rule === 'p99_ratio')!.verdict).toBe('insufficient');
  });
});

describe('consecutiveFailures', () => {
  it('counts failing windows since the last pass; insufficient ones neither count nor reset', () => {
    expect(consecutiveFailures(['fail', 'pass', 'fail', 'insufficient', 'fail'])).toBe(2);
    expect(consecutiveFailures(['fail', 'fail', 'pass'])).toBe(0);
    expect(consecutiveFailures([])).toBe(0);
  });

  it('never exceeds the number of fails, and is 0 right after a pass', () => {
    fc.assert(fc.property(fc.array(fc.constantFrom<WindowVerdict>('pass', 'fail', 'insufficient')), (history) => {
      const n = consecutiveFailures(history);
      expect(n).toBeLessThanOrEqual(history.filter((v) => v === 'fail').length);
      expect(consecutiveFailures([...history, 'pass'])).toBe(0);
      expect(consecutiveFailures([...history, 'fail'])).toBe(n + 1);
    }));
  });
});

describe('custom metric rules', () => {
  const rules: JudgeRules = { ...DEFAULT_RULES, metrics: [{ name: 'recall_at_10', op: '>=', threshold: 0.3 }] };
  const withRecall = (mean: number, count: number) => stats({ metrics: { recall_at_10: { mean, count } } });

  it('fails a window whose mean is below its floor, passes at or above it, and is insufficient with few values', () => {
    const low = judgeWindow(withRecall(0.25, 40), stats({ color: 'blue' }), rules);
    expect(low.verdict).toBe('fail');
    expect(low.rules.find((r) => r.rule === 'metric:recall_at_10')).toMatchObject({ verdict: 'fail', observed: 0.25, threshold: 0.3 });
    expect(judgeWindow(withRecall(0.3, 40), stats({ color: 'blue' }), rules).verdict).toBe('pass');
    expect(judgeWindow(withRecall(0.1, 5), stats({ color: 'blue' }), rules).verdict).toBe('insufficient');
    expect(judgeWindow(stats({}), stats({ color: 'blue' }), rules).verdict).toBe('insufficient');
  });

  it('a ceiling fails above it', () => {
    const ceiling: JudgeRules = { ...DEFAULT_RULES, metrics: [{ name: 'cost', op: '<=', threshold: 2 }] };
    expect(judgeWindow(stats({ metrics: { cost: { mean: 2.5, count: 100 } } }), stats({ color: 'blue' }), ceiling).verdict).toBe('fail');
    expect(judgeWindow(stats({ metrics: { cost: { mean: 2, count: 100 } } }), stats({ color: 'blue' }), ceiling).verdict).toBe('pass');
  });

  it('parses rule lists and names what it refuses', () => {
    expect(parseMetricRules('recall_at_10>=0.30, cost <= 2')).toEqual([{ name: 'recall_at_10', op: '>=', threshold: 0.3 }, { name: 'cost', op: '<=', threshold: 2 }]);
    expect(parseMetricRules('')).toEqual([]);
    for (const bad of ['recall>0.3', 'recall>=x', 'bad-name>=1', 'a>=1,a>=2']) expect(parseMetricRules(bad)).toHaveProperty('error');
  });
});

describe('judgeJobs and withJobRules: the worker judged with its release', () => {
  const jobRulesArb = rulesArb.chain((rules) => fc.integer({ min: 1, max: 200 }).map((jobMinSamples) => ({ ...rules, jobMinSamples })));

  it('jobs never turn a failing window into a pass; a failing job rule fails it; a candidate worker with too few outcomes never passes it', () => {
    fc.assert(fc.property(statsArb('green'), statsArb('blue'), statsArb('green'), statsArb('blue'), jobRulesArb, (candidate, stable, candidateJobs, stableJobs, rules) => {
      const requests = judgeWindow(candidate, stable, rules);
      const jobs = judgeJobs(candidateJobs, stableJobs, rules);
      const j = withJobRules(requests, jobs);
      if (requests.verdict === 'fail') expect(j.verdict).toBe('fail');
      if (jobs.some((r) => r.verdict === 'fail')) expect(j.verdict).toBe('fail');
      if (candidateJobs.count === 0) expect(j).toEqual(requests);
      if (candidateJobs.count > 0 && candidateJobs.count < rules.jobMinSamples) expect(j.verdict).not.toBe('pass');
      // The failure rule takes the stable worker's rate as its base once that is known.
      const base = stableJobs.count >= rules.jobMinSamples ? stableJobs.errorRate : 0;
      if (candidateJobs.count >= rules.jobMinSamples && candidateJobs.errorRate > Math.min(1, base + rules.maxErrorRate)) expect(j.verdict).toBe('fail');
      if (candidateJobs.count >= rules.jobMinSamples && candidateJobs.errorRate <= base + rules.maxErrorRate) expect(jobs.find((r) => r.rule === 'job_error_rate')?.verdict).toBe('pass');
      if (j.verdict === 'pass') expect(j.rules.filter((r) => r.rule === 'job_error_rate').every((r) => r.verdict === 'pass')).toBe(true);
    }));
  });

  it('explains a job window with its numbers, and compares job P99s only with enough outcomes on both sides', () => {
    const rules = { ...DEFAULT_RULES, p99MinDeltaMs: 20, jobMinSamples: 20 };
    const bad = judgeJobs(stats({ count: 40, errors: 8, errorRate: 0.2, metrics: { [DEAD_LETTER_METRIC]: { count: 1, mean: 1 } } }), stats({ color: 'blue', count: 120 }), rules);
    expect(bad.map((r) => [r.rule, r.verdict])).toEqual([['job_error_rate', 'fail'], ['job_p99_ratio', 'insufficient'], ['job_dead_letters', 'pass']]);
    expect(bad[0]!.message).toBe('job failures 20.0% (8/40 attempts) > stable 0.0% + 5.0%');
    expect(bad[1]!.message).toBe('40 candidate job outcomes < 50 for a P99');
    expect(bad[2]!.message).toBe('dead-lettered 2.5% (1/40) ≤ stable 0.0% + 5.0%');
    // Jobs that fail on either worker (input the app refuses) are the stable worker's rate too: not the candidate's doing.
    const both = judgeJobs(stats({ count: 40, errors: 12, errorRate: 0.3 }), stats({ color: 'blue', count: 120, errors: 36, errorRate: 0.3 }), rules);
    expect(both[0]).toMatchObject({ rule: 'job_error_rate', verdict: 'pass', message: 'job failures 30.0% (12/40 attempts) ≤ stable 30.0% + 5.0%' });
    // Too few stable outcomes for a base: the plain ceiling.
    expect(judgeJobs(stats({ count: 40, errors: 4, errorRate: 0.1 }), stats({ color: 'blue', count: 5 }), rules)[0]!.message).toBe('job failures 10.0% (4/40 attempts) > 5.0%');
    const slow = judgeJobs(stats({ count: 60, p99Ms: 400 }), stats({ color: 'blue', count: 60, p99Ms: 100 }), rules);
    expect(slow.find((r) => r.rule === 'job_p99_ratio')).toMatchObject({ verdict: 'fail', observed: 4 });
    expect(slow.find((r) => r.rule === 'job_p99_ratio')!.message).toMatch(/^job p99 400\.0ms = 4\.00× stable 100\.0ms > 1\.5×/);
    expect(judgeJobs(stats({ count: 0 }), stats({ color: 'blue', count: 500 }), rules)).toEqual([]);
  });
});
