// The sequential judge in accelerated time: slices of binomial counts, no clock, no sleeping.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { prng } from '../bench/prng.js';
import { SEQUENTIAL_DEFAULTS, SequentialJudge, wilson } from './sequential.js';


function binomial(n: number, p: number, random: () => number): number {
  let k = 0;
  for (let i = 0; i < n; i++) if (random() < p) k++;
  return k;
}

/** One canary of `seconds` slices with `perSecond` candidate requests; the second it fails, or null. */
function canary(seed: number, perSecond: number, seconds: number, pSlow: number, pError: number): number | null {
  const random = prng(seed);
  const judge = new SequentialJudge();
  for (let s = 1; s <= seconds; s++) {
    const v = judge.feed({ count: perSecond, slow: binomial(perSecond, pSlow, random), errors: binomial(perSecond, pError, random), stableErrorRate: 0, thresholdMs: 10 });
    if (v.verdict === 'fail') return s;
  }
  return null;
}

describe('SequentialJudge', () => {
  it('A/A: identical code is failed in well under 1 % of five-minute canaries, even with a noisy stable P99', () => {
    const runs = 1500;
    let failed = 0;
    // The stable P99 estimated from a window is itself noisy: the true exceedance varies around 1 %.
    for (let i = 0; i < runs; i++) if (canary(i, 20, 300, 0.008 + (i % 5) * 0.001, 0) !== null) failed++;
    // Wald's bound for the two tests is 2α/(1-β) ≈ 0.44 %; 1,500 runs put 1 % far above its noise.
    expect(failed / runs).toBeLessThan(0.01);
  });

  it('detects errors 0 → 10 % and a latency regression within seconds at 20 candidate requests a second', () => {
    const errorsAt: number[] = [];
    const latencyAt: number[] = [];
    for (let i = 0; i < 200; i++) {
      errorsAt.push(canary(10_000 + i, 20, 300, 0.01, 0.1) ?? Infinity);
      latencyAt.push(canary(20_000 + i, 20, 300, 0.45, 0) ?? Infinity);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    expect(errorsAt.filter((s) => s === Infinity).length).toBeLessThanOrEqual(200 * SEQUENTIAL_DEFAULTS.beta);
    expect(median(errorsAt)).toBeLessThanOrEqual(3);
    expect(median(latencyAt)).toBeLessThanOrEqual(2);
  });

  it('never fails before its minimum number of candidate requests, however bad they are', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 10 }), (counts) => {
      const judge = new SequentialJudge();
      let total = 0;
      for (const count of counts) {
        total += count;
        const v = judge.feed({ count, slow: count, errors: count, stableErrorRate: 0, thresholdMs: 5 });
        if (total < SEQUENTIAL_DEFAULTS.minSamples) expect(v.verdict).not.toBe('fail');
      }
    }));
  });

  it('an empty slice changes nothing', () => {
    const a = new SequentialJudge();
    const b = new SequentialJudge();
    const slice = { count: 10, slow: 1, errors: 0, stableErrorRate: 0.01, thresholdMs: 8 };
    a.feed(slice);
    b.feed(slice);
    b.feed({ count: 0, slow: 0, errors: 0, stableErrorRate: null, thresholdMs: null });
    expect(b.describe()).toBe(a.describe());
  });

  it('explains a failure with the test, the observed share, its interval, the threshold and the samples', () => {
    const judge = new SequentialJudge();
    let v = judge.feed({ count: 50, slow: 0, errors: 20, stableErrorRate: 0, thresholdMs: 9 });
    expect(v).toMatchObject({ verdict: 'fail', test: 'sequential_errors', observed: 0.4, samples: 50, threshold: 0.005 });
    expect(v.interval![0]).toBeLessThan(0.4);
    expect(v.interval![1]).toBeGreaterThan(0.4);
    expect(v.message).toMatch(/20 of 50 candidate requests failed \(5xx\): 40.0% \(95 % interval/);
    v = judge.feed({ count: 50, slow: 0, errors: 50, stableErrorRate: 0, thresholdMs: 9 });
    expect(v.verdict).not.toBe('fail'); // a test fails once
  });

  it('the Wilson interval holds the observed share and stays within [0, 1]', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 10_000 }), fc.double({ min: 0, max: 1, noNaN: true }), (n, share) => {
      const k = Math.round(n * share);
      const [lo, hi] = wilson(k, n);
      expect(lo).toBeGreaterThanOrEqual(0);
      expect(hi).toBeLessThanOrEqual(1);
      expect(lo).toBeLessThanOrEqual(k / n + 1e-12);
      expect(hi).toBeGreaterThanOrEqual(k / n - 1e-12);
    }));
  });
});
