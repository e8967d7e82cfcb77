// Where the judge's windows fall within a step: one after another, and after a step begins or
// resumes a fresh first one — never overlapping the window just judged (a property).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../lib/logger.js';
import { SlicedWindow } from '../monitoring/index.js';
import { MemoryRolloutStore } from '../test/helpers/memory-rollout-store.js';
import { WindowAnalysis } from './analysis.js';
import type { Run } from './run.js';

const analysis = new WindowAnalysis({ window: new SlicedWindow(), jobs: new SlicedWindow(), store: new MemoryRolloutStore(), log: createLogger('test', { level: 'silent' }), gauges: undefined });
const runAt = (stepStartedMs: number, windowSeconds: number): Run => ({ stepStartedMs, d: { plan: { windowSeconds } } }) as unknown as Run;

describe('WindowAnalysis.nextWindowEnd', () => {
  it('never overlaps the window just judged, and never reaches back before the step began', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 30 }), fc.integer({ min: 100_000, max: 200_000 }), fc.integer({ min: -60_000, max: 60_000 }),
      (windowSeconds, windowEndSeconds, stepOffsetMs) => {
        const windowMs = windowSeconds * 1000;
        const windowEnd = windowEndSeconds * 1000;
        const run = runAt(windowEnd + stepOffsetMs, windowSeconds);
        const next = analysis.nextWindowEnd(run, windowEnd);
        expect(next - windowMs).toBeGreaterThanOrEqual(windowEnd);
        if (run.stepStartedMs > windowEnd - windowMs) expect(next - windowMs).toBeGreaterThanOrEqual(Math.ceil(run.stepStartedMs / 1000) * 1000);
        else expect(next).toBe(windowEnd + windowMs);
      }));
  });

  it('after a resume inside the last window, starts at that window\'s end (it used to repeat its last second)', () => {
    // Judged [50 s, 53 s); resumed at 51.4 s: the next window is [53 s, 56 s), not [52 s, 55 s).
    expect(analysis.nextWindowEnd(runAt(51_400, 3), 53_000)).toBe(56_000);
  });
});
