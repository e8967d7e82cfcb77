// The shares of one schedule: every arrival has exactly one owner, each worker's count follows its
// weight closely in every second (not only on average), and what nobody sent is found as a gap.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { intendedTimeMs } from '../loadgen.js';
import { NOBODY, Owners, coverageGaps, plannedCounts, scheduledCount, type Epoch } from './shares.js';

const weightsArb = fc.dictionary(fc.stringMatching(/^w[a-z0-9]{1,6}$/), fc.integer({ min: 1, max: 10_000 }), { minKeys: 1, maxKeys: 8 });

describe('Owners', () => {
  it('each arrival has one owner among the epoch\'s workers, and a block of n arrivals splits by weight within 2 + 1 % of n', () => {
    fc.assert(fc.property(weightsArb, fc.integer({ min: 0, max: 10_000_000 }), fc.integer({ min: 50, max: 5_000 }), (weights, start, n) => {
      const owners = new Owners([{ fromMs: 0, weights }]);
      const counts: Record<string, number> = {};
      for (let i = start; i < start + n; i++) {
        const o = String(owners.ownerOf(i, 1));
        counts[o] = (counts[o] ?? 0) + 1;
      }
      expect(Object.keys(counts).every((o) => o in weights)).toBe(true);
      const total = Object.values(weights).reduce((a, b) => a + b, 0);
      for (const [w, weight] of Object.entries(weights)) {
        expect(Math.abs((counts[w] ?? 0) - (n * weight) / total)).toBeLessThanOrEqual(2 + n * 0.01);
      }
    }), { numRuns: 200 });
  });

  it('the epoch in effect is the last one started; a later epoch at the same moment replaces it; before any epoch nobody owns', () => {
    const owners = new Owners([{ fromMs: 1000, weights: { a: 1 } }]);
    expect(owners.ownerOf(5, 999)).toBeNull();
    expect(owners.ownerOf(5, 1000)).toBe('a');
    owners.add({ fromMs: 3000, weights: { b: 1 } });
    owners.add({ fromMs: 2000, weights: { c: 1 } });
    expect([owners.ownerOf(5, 1500), owners.ownerOf(5, 2500), owners.ownerOf(5, 3500)]).toEqual(['a', 'c', 'b']);
    owners.add({ fromMs: 2000, weights: { d: 1 } });
    expect(owners.ownerOf(5, 2500)).toBe('d');
  });

  it('every party computes the same owners: the order workers are listed in does not matter', () => {
    fc.assert(fc.property(weightsArb, fc.integer({ min: 0, max: 1_000_000 }), (weights, i) => {
      const reversed = Object.fromEntries(Object.entries(weights).reverse());
      expect(new Owners([{ fromMs: 0, weights }]).ownerOf(i, 0)).toBe(new Owners([{ fromMs: 0, weights: reversed }]).ownerOf(i, 0));
    }));
  });
});

describe('plannedCounts and coverageGaps', () => {
  it('the shares add up to the schedule, second by second, whatever the epochs', () => {
    const epochArb = fc.record({ fromMs: fc.integer({ min: 0, max: 9_000 }), weights: weightsArb });
    fc.assert(fc.property(fc.integer({ min: 1, max: 400 }), fc.integer({ min: 1, max: 10 }), fc.array(epochArb, { maxLength: 4 }), weightsArb, (rate, duration, later, first) => {
      const plan = { rate, durationSeconds: duration, rampSeconds: 0 };
      const owners = new Owners([{ fromMs: 0, weights: first }]);
      for (const e of later) owners.add(e as Epoch);
      const p = plannedCounts(plan, owners);
      expect(p.total).toBe(scheduledCount(plan));
      for (const [second, n] of p.bySecond) {
        const shares = [...p.byWorker.values()].reduce((sum, m) => sum + (m.get(second) ?? 0), 0);
        expect(shares).toBe(n);
      }
      // All sent: no gap. One worker silent from some second on: its arrivals since then are the gap.
      expect(coverageGaps(p, p.byWorker)).toEqual([]);
    }), { numRuns: 100 });
  });

  it('a worker silent from second 3 leaves a gap of exactly its arrivals from then, in one run of seconds', () => {
    const plan = { rate: 100, durationSeconds: 10 };
    const owners = new Owners([{ fromMs: 0, weights: { a: 1, b: 1, c: 1 } }, { fromMs: 6_500, weights: { a: 1, b: 1 } }]);
    const p = plannedCounts(plan, owners);
    const sent = new Map([...p.byWorker].map(([w, m]) => [w, new Map([...m].filter(([s]) => w !== 'c' || s < 3))] as const));
    const expected = [...p.byWorker.get('c')!].filter(([s]) => s >= 3).reduce((n, [, k]) => n + k, 0);
    expect(coverageGaps(p, sent)).toEqual([{ fromSecond: 3, toSecond: 6, missing: expected, workers: ['c'] }]);
    expect(expected).toBeGreaterThan(3.4 * 33);
  });

  it('arrivals due while no worker had a share are nobody\'s: a gap, never dropped from the plan', () => {
    const plan = { rate: 10, durationSeconds: 3 };
    const owners = new Owners([{ fromMs: 0, weights: { a: 1 } }, { fromMs: 1_000, weights: {} }, { fromMs: 2_000, weights: { a: 1 } }]);
    const p = plannedCounts(plan, owners);
    expect(p.byWorker.get(NOBODY)?.get(1)).toBe(10);
    expect(coverageGaps(p, new Map([['a', p.byWorker.get('a')!]]))).toEqual([{ fromSecond: 1, toSecond: 1, missing: 10, workers: [NOBODY] }]);
    expect(intendedTimeMs(10, 10, 0)).toBe(1000);
  });
});
