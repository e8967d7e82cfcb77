// Per-colour request measurements in 1-second slices, kept in a ring, so the judge can read any
// recent window (default 5 s) as the exact merge of its slices: percentiles come from the merged
// histogram, never from averaging the slices' percentiles. Recording is one histogram write.
import hdr from 'hdr-histogram-js';
import type { Color } from '../lib/config.js';

export interface WindowStats {
  color: Color;
  /** Window bounds, milliseconds since the epoch: [startMs, endMs). */
  startMs: number;
  endMs: number;
  count: number;
  errors: number;
  errorRate: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
}

interface Slice {
  /** Which second this slice holds (epoch ms / sliceMs); -1 when empty. */
  index: number;
  histogram: hdr.Histogram;
  errors: number;
}

const newHistogram = (): hdr.Histogram =>
  hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });

export interface SlicedWindowOptions {
  /** Length of one slice; default 1 s. */
  sliceMs?: number;
  /** How many slices are kept; default 120 (two minutes). */
  slices?: number;
}

export class SlicedWindow {
  private readonly sliceMs: number;
  private readonly rings: Record<Color, Slice[]>;

  constructor(options: SlicedWindowOptions = {}) {
    this.sliceMs = options.sliceMs ?? 1_000;
    const slices = options.slices ?? 120;
    if (!Number.isInteger(slices) || slices < 1) throw new Error(`slices: expected a positive integer, got ${slices}`);
    if (!(this.sliceMs > 0)) throw new Error(`sliceMs: expected a positive number, got ${this.sliceMs}`);
    const ring = (): Slice[] => Array.from({ length: slices }, () => ({ index: -1, histogram: newHistogram(), errors: 0 }));
    this.rings = { blue: ring(), green: ring() };
  }

  /** One request of `color` that ended at `atMs` after `latencyMs`. */
  record(color: Color, latencyMs: number, isError: boolean, atMs: number): void {
    const index = Math.floor(atMs / this.sliceMs);
    const ring = this.rings[color];
    const slice = ring[index % ring.length]!;
    if (slice.index !== index) {
      // The ring came round: this slot held an older second.
      slice.histogram.reset();
      slice.errors = 0;
      slice.index = index;
    }
    slice.histogram.recordValue(Math.min(60_000_000, Math.max(1, Math.round(latencyMs * 1000))));
    if (isError) slice.errors++;
  }

  /**
   * The exact merge of the whole slices in [endMs - lengthMs, endMs). Slices older than the ring
   * are gone, and count as empty.
   */
  window(color: Color, endMs: number, lengthMs: number): WindowStats {
    const last = Math.floor(endMs / this.sliceMs) - 1;
    const first = last - Math.max(1, Math.round(lengthMs / this.sliceMs)) + 1;
    const merged = newHistogram();
    let errors = 0;
    const ring = this.rings[color];
    for (let index = first; index <= last; index++) {
      const slice = ring[((index % ring.length) + ring.length) % ring.length]!;
      if (slice.index !== index) continue;
      merged.add(slice.histogram);
      errors += slice.errors;
    }
    const count = merged.totalCount;
    const max = merged.maxValue;
    const at = (p: number): number => (count === 0 ? 0 : Math.min(merged.getValueAtPercentile(p), max) / 1000);
    return {
      color,
      startMs: first * this.sliceMs,
      endMs: (last + 1) * this.sliceMs,
      count,
      errors,
      errorRate: count === 0 ? 0 : errors / count,
      p50Ms: at(50),
      p95Ms: at(95),
      p99Ms: at(99),
      maxMs: count === 0 ? 0 : max / 1000,
    };
  }
}
