import fc from 'fast-check';
import hdr from 'hdr-histogram-js';
import { describe, expect, it } from 'vitest';
import { decodeHistogram, encodeHistogram, newHistogram, recordLatency } from './histogram.js';
import { SlicedWindow } from './sliced-window.js';

const sampleArb = fc.record({
  atMs: fc.integer({ min: 0, max: 9_999 }),
  latencyMs: fc.double({ min: 0.001, max: 5_000, noNaN: true }),
  isError: fc.boolean(),
  color: fc.constantFrom('blue' as const, 'green' as const),
});

describe('SlicedWindow', () => {
  it('a window is exactly one histogram of all its samples (merging slices never averages)', () => {
    fc.assert(
      fc.property(fc.array(sampleArb, { minLength: 1, maxLength: 400 }), fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 10 }), (samples, endSecond, lengthSeconds) => {
        const w = new SlicedWindow({ sliceMs: 1_000, slices: 20 });
        for (const s of samples) w.record(s.color, s.latencyMs, s.isError, s.atMs);
        const endMs = endSecond * 1_000;
        const startMs = endMs - lengthSeconds * 1_000;
        for (const color of ['blue', 'green'] as const) {
          const inside = samples.filter((s) => s.color === color && s.atMs >= startMs && s.atMs < endMs);
          const one = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
          for (const s of inside) one.recordValue(Math.max(1, Math.round(s.latencyMs * 1000)));
          const got = w.window(color, endMs, lengthSeconds * 1_000);
          expect(got.count).toBe(inside.length);
          expect(got.errors).toBe(inside.filter((s) => s.isError).length);
          for (const [p, key] of [[50, 'p50Ms'], [95, 'p95Ms'], [99, 'p99Ms']] as const) {
            const expected = inside.length === 0 ? 0 : Math.min(one.getValueAtPercentile(p), one.maxValue) / 1000;
            expect(got[key]).toBeCloseTo(expected, 9);
          }
          expect(got.startMs).toBe(startMs);
          expect(got.endMs).toBe(endMs);
        }
      }),
    );
  });

  it('does not average percentiles: one stalled slice shows in the window P99 as it truly is', () => {
    const w = new SlicedWindow();
    // Twelve seconds of 100 fast requests each; in one of them 3 stall for 2 s.
    for (let s = 0; s < 12; s++) for (let i = 0; i < 100; i++) w.record('green', s === 5 && i < 3 ? 2_000 : 10, false, s * 1_000 + i);
    const win = w.window('green', 12_000, 12_000);
    expect(win.count).toBe(1_200);
    expect(win.p99Ms).toBeCloseTo(10, 1); // 3 of 1,200 is 0.25 %: below the P99
    expect(win.maxMs).toBeCloseTo(2_000, 0);
    expect(w.window('green', 6_000, 1_000).p99Ms).toBeCloseTo(2_000, 0);
  });

  it('forgets seconds older than the ring, and keeps colours apart', () => {
    const w = new SlicedWindow({ slices: 5 });
    w.record('blue', 1, true, 0);
    w.record('blue', 1, false, 5_000); // same ring slot as second 0, five seconds later
    expect(w.window('blue', 1_000, 1_000).count).toBe(0);
    expect(w.window('blue', 6_000, 1_000)).toMatchObject({ count: 1, errors: 0 });
    expect(w.window('green', 6_000, 6_000).count).toBe(0);
  });

  it('a sweep lets go of the seconds the ring no longer holds, and changes no window it still holds', () => {
    fc.assert(
      fc.property(fc.array(sampleArb, { minLength: 1, maxLength: 200 }), fc.integer({ min: 0, max: 40_000 }), (samples, nowMs) => {
        const swept = new SlicedWindow({ sliceMs: 1_000, slices: 10 });
        const kept = new SlicedWindow({ sliceMs: 1_000, slices: 10 });
        for (const s of samples) for (const w of [swept, kept]) w.record(s.color, s.latencyMs, s.isError, s.atMs);
        swept.sweep(nowMs);
        const nowSecond = Math.floor(nowMs / 1_000);
        for (const color of ['blue', 'green'] as const) {
          // Every second the ring holds at nowMs reads the same.
          for (let second = Math.max(0, nowSecond - 9); second <= nowSecond; second++) {
            expect(swept.window(color, (second + 1) * 1_000, 1_000)).toEqual(kept.window(color, (second + 1) * 1_000, 1_000));
          }
          // Nothing older holds a histogram.
          const ring = (swept as unknown as { rings: Record<string, Array<{ index: number; histogram: unknown }>> }).rings[color]!;
          for (const slot of ring) if (slot.histogram !== null) expect(slot.index).toBeGreaterThan(nowSecond - 10);
        }
      }),
    );
  });

  it('refuses nonsense options', () => {
    expect(() => new SlicedWindow({ slices: 0 })).toThrow('slices');
    expect(() => new SlicedWindow({ sliceMs: 0 })).toThrow('sliceMs');
  });

  it('adding other proxies\' slices, encoded as they cross Redis, gives the window one proxy recording every request would', () => {
    // The fleet's merge (fleet/slice-exchange.ts): each proxy's per-second deltas, in any split.
    fc.assert(fc.property(fc.array(fc.tuple(sampleArb, fc.integer({ min: 0, max: 2 })), { maxLength: 300 }), (samples) => {
      const one = new SlicedWindow();
      const merged = new SlicedWindow();
      const deltas = new Map<string, { h: ReturnType<typeof newHistogram>; errors: number }>();
      for (const [s, proxy] of samples) {
        one.record(s.color, s.latencyMs, s.isError, s.atMs);
        const key = `${proxy}:${s.color}:${Math.floor(s.atMs / 1000)}`;
        const d = deltas.get(key) ?? { h: newHistogram(), errors: 0 };
        recordLatency(d.h, s.latencyMs);
        if (s.isError) d.errors++;
        deltas.set(key, d);
      }
      for (const [key, d] of deltas) {
        const [, color, second] = key.split(':') as [string, 'blue' | 'green', string];
        merged.add(color, Number(second) * 1000, decodeHistogram(encodeHistogram(d.h), d.h.maxValue), d.errors);
      }
      for (const color of ['blue', 'green'] as const) {
        for (const [end, length] of [[10_000, 10_000], [6_000, 3_000], [1_000, 1_000]] as const) {
          expect(merged.window(color, end, length)).toEqual(one.window(color, end, length));
        }
      }
    }), { numRuns: 50 });
  });

  it('adds metric sums from elsewhere into the same means', () => {
    const w = new SlicedWindow();
    w.recordMetric('blue', 'conversion', 1, 500);
    w.add('blue', 700, newHistogram(), 0, { conversion: { sum: 2, count: 3 } });
    expect(w.window('blue', 1_000, 1_000).metrics).toEqual({ conversion: { count: 4, mean: 0.75 } });
  });
});
