import * as fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LatencyRecorder, type LatencySnapshot } from './latency-recorder.js';

/** HdrHistogram at 3 significant digits: 0.1 % relative, plus 0.001 ms for µs rounding. */
const REL = 0.001;
const ABS = 0.001;

/** Whether `reported` is `exact` within the histogram's precision. */
const close = (reported: number, exact: number): boolean => Math.abs(reported - exact) <= REL * Math.abs(exact) + ABS;

/** Exact nearest-rank percentile: the smallest value v with at least p % of the values <= v. */
function nearestRank(sorted: readonly number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p * sorted.length) / 100));
  return sorted[rank - 1]!;
}

function recorderOf(latencies: readonly number[], errors: readonly boolean[] = []): LatencyRecorder {
  const recorder = new LatencyRecorder();
  latencies.forEach((ms, i) => recorder.record(ms, errors[i] ?? false));
  return recorder;
}

/** Latencies the histogram can track: 1 µs to 60 s. */
const latencyArb = fc.oneof(
  fc.double({ min: 0.001, max: 60_000, noNaN: true }),
  fc.double({ min: 0.001, max: 10, noNaN: true }),
  fc.integer({ min: 1, max: 60_000 }),
);
/** Non-empty lists: short ones, long ones (up to 1,000), and long ones with many ties. */
const latenciesArb = fc.oneof(
  fc.array(latencyArb, { minLength: 1, maxLength: 1000 }),
  fc.array(latencyArb, { minLength: 1, maxLength: 1000, size: 'max' }),
  fc
    .array(latencyArb, { minLength: 1, maxLength: 5 })
    .chain((pool) => fc.array(fc.constantFrom(...pool), { minLength: 1, maxLength: 1000, size: 'max' })),
);

const EMPTY = { count: 0, errors: 0, errorRate: 0, p50Ms: 0, p95Ms: 0, p99Ms: 0, maxMs: 0 };

afterEach(() => {
  vi.useRealTimers();
});

describe('LatencyRecorder: counters', () => {
  it('starts empty: zero counts, zero error rate, all percentiles 0', () => {
    const snap = new LatencyRecorder().snapshot();
    expect(snap).toMatchObject(EMPTY);
    expect(new Date(snap.since).toISOString()).toBe(snap.since);
  });

  it('counts every record and every error; errorRate is errors / count', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(latencyArb, fc.boolean()), { maxLength: 1000, size: 'max' }), (records) => {
        const recorder = new LatencyRecorder();
        for (const [ms, isError] of records) recorder.record(ms, isError);
        const snap = recorder.snapshot();
        const errors = records.filter(([, isError]) => isError).length;
        expect(snap.count).toBe(records.length);
        expect(snap.errors).toBe(errors);
        expect(snap.errorRate).toBe(records.length === 0 ? 0 : errors / records.length);
        if (records.length === 0) expect(snap).toMatchObject(EMPTY);
      }),
    );
  });

  it('does not change when only snapshots are taken', () => {
    const recorder = recorderOf([1, 2, 3], [true, false, false]);
    const { since: _since, ...first } = recorder.snapshot();
    const { since: _since2, ...second } = recorder.snapshot();
    expect(second).toEqual(first);
  });
});

describe('LatencyRecorder: percentiles', () => {
  it('orders p50 <= p95 <= p99, and p99 <= max within the histogram precision', () => {
    fc.assert(
      fc.property(latenciesArb, (latencies) => {
        const snap = recorderOf(latencies).snapshot();
        expect(snap.p50Ms).toBeLessThanOrEqual(snap.p95Ms);
        expect(snap.p95Ms).toBeLessThanOrEqual(snap.p99Ms);
        expect(snap.p99Ms).toBeLessThanOrEqual(snap.maxMs * (1 + REL) + ABS);
      }),
    );
  });

  // getValueAtPercentile returns a bucket's highest equivalent value, which above 2.048 ms can
  // exceed the recorded maximum (3 ms -> 3.001): the recorder clamps percentiles to max.
  it('never reports a percentile above max (exact ordering)', () => {
    const snap = recorderOf([3]).snapshot();
    expect(snap.p99Ms).toBeLessThanOrEqual(snap.maxMs);
  });

  it('never reports a percentile above max, for any latencies (exact ordering)', () => {
    fc.assert(
      fc.property(latenciesArb, (latencies) => {
        const snap = recorderOf(latencies).snapshot();
        expect(snap.p99Ms).toBeLessThanOrEqual(snap.maxMs);
      }),
      { seed: 42 },
    );
  });

  it('reports each percentile within 0.1 % of the exact nearest-rank percentile', () => {
    fc.assert(
      fc.property(latenciesArb, (latencies) => {
        const snap = recorderOf(latencies).snapshot();
        const sorted = [...latencies].sort((a, b) => a - b);
        for (const [p, reported] of [[50, snap.p50Ms], [95, snap.p95Ms], [99, snap.p99Ms]] as const) {
          const exact = nearestRank(sorted, p);
          expect(close(reported, exact), `p${p}: reported ${reported}, exact ${exact}`).toBe(true);
        }
      }),
    );
  });

  it('reports max within 0.1 % of the true maximum', () => {
    fc.assert(
      fc.property(latenciesArb, (latencies) => {
        const snap = recorderOf(latencies).snapshot();
        const max = Math.max(...latencies);
        expect(close(snap.maxMs, max), `max: reported ${snap.maxMs}, exact ${max}`).toBe(true);
      }),
    );
  });

  it('does not average percentiles: 97 x 1 ms and 3 x 2000 ms give p50 = p95 = 1 ms, p99 = 2000 ms', () => {
    const recorder = new LatencyRecorder();
    for (let i = 0; i < 97; i++) recorder.record(1, false);
    for (let i = 0; i < 3; i++) recorder.record(2000, true);
    const snap = recorder.snapshot();
    expect(snap.count).toBe(100);
    expect(snap.errors).toBe(3);
    expect(snap.errorRate).toBeCloseTo(0.03, 12);
    expect(close(snap.p50Ms, 1)).toBe(true);
    expect(close(snap.p95Ms, 1)).toBe(true);
    expect(close(snap.p99Ms, 2000)).toBe(true);
    expect(close(snap.maxMs, 2000)).toBe(true);
  });

  it('is insensitive to the order of recording', () => {
    fc.assert(
      fc.property(latenciesArb.chain((l) => fc.tuple(fc.constant(l), fc.shuffledSubarray(l, { minLength: l.length, maxLength: l.length }))), ([a, b]) => {
        const { since: _s1, ...snapA } = recorderOf(a).snapshot();
        const { since: _s2, ...snapB } = recorderOf(b).snapshot();
        expect(snapB).toEqual(snapA);
      }),
    );
  });
});

describe('LatencyRecorder: values outside the trackable range', () => {
  it('clamps 0, negative, sub-µs and over-60 s latencies without throwing, and counts them', () => {
    const recorder = new LatencyRecorder();
    for (const ms of [0, -5, 0.0001, -1e9, 120_000, 600_000, 1e12]) expect(() => recorder.record(ms, false)).not.toThrow();
    const snap = recorder.snapshot();
    expect(snap.count).toBe(7);
    expect(snap.p50Ms).toBeGreaterThan(0);
    expect(snap.maxMs).toBeLessThanOrEqual(60_000 * (1 + REL));
    expect(close(snap.maxMs, 60_000)).toBe(true);
  });

  it('reads 0 ms as the lowest trackable value (1 µs) and 120 s as 60 s', () => {
    const low = recorderOf([0]).snapshot();
    expect(low.count).toBe(1);
    expect(low.p50Ms).toBe(0.001);
    expect(low.maxMs).toBe(0.001);
    const high = recorderOf([120_000]).snapshot();
    expect(high.count).toBe(1);
    expect(close(high.maxMs, 60_000)).toBe(true);
    expect(close(high.p99Ms, 60_000)).toBe(true);
  });

  it('never throws for any finite latency, and counts it', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean()), { minLength: 1, maxLength: 50 }), (records) => {
        const recorder = new LatencyRecorder();
        for (const [ms, isError] of records) recorder.record(ms, isError);
        const snap = recorder.snapshot();
        expect(snap.count).toBe(records.length);
        expect(snap.p50Ms).toBeGreaterThanOrEqual(0.001);
        expect(snap.maxMs).toBeLessThanOrEqual(60_000 * (1 + REL));
      }),
    );
  });
});

describe('LatencyRecorder: reset', () => {
  it('empties everything and moves since forward', () => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2025-01-01T00:00:00.000Z'));
    const recorder = recorderOf([1, 50, 2000], [true, false, true]);
    const before: LatencySnapshot = recorder.snapshot();
    expect(before.since).toBe('2025-01-01T00:00:00.000Z');
    expect(before.count).toBe(3);

    vi.setSystemTime(new Date('2025-01-01T00:05:00.000Z'));
    recorder.reset();
    const after = recorder.snapshot();
    expect(after).toEqual({ ...EMPTY, since: '2025-01-01T00:05:00.000Z' });
    expect(after.since > before.since).toBe(true);
  });

  it('counts afresh after a reset, as a new recorder would', () => {
    fc.assert(
      fc.property(latenciesArb, latenciesArb, fc.array(fc.boolean(), { maxLength: 1000, size: 'max' }), (first, second, errors) => {
        const recorder = recorderOf(first, errors);
        recorder.reset();
        second.forEach((ms, i) => recorder.record(ms, errors[i] ?? false));
        const { since: _s1, ...reused } = recorder.snapshot();
        const { since: _s2, ...fresh } = recorderOf(second, errors).snapshot();
        expect(reused).toEqual(fresh);
      }),
    );
  });
});
