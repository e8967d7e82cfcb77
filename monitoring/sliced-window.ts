// Per-colour request measurements in 1-second slices, kept in a ring, so the judge can read any
// recent window (default 5 s) as the exact merge of its slices: percentiles come from the merged
// histogram, never from averaging the slices' percentiles. Recording is one histogram write.
import type { Color } from '../lib/config.js';
import { newHistogram, recordLatency, summarize, type Histogram, type LatencySummary } from './histogram.js';

/** An app-reported quality metric (x-changelens-metric-<name> response header) over a window. */
export interface MetricStats {
  count: number;
  mean: number;
}

export interface WindowStats extends LatencySummary {
  color: Color;
  /** Custom metrics reported in the window, by name. */
  metrics: Record<string, MetricStats>;
  /** Window bounds, milliseconds since the epoch: [startMs, endMs). */
  startMs: number;
  endMs: number;
}

interface Slice {
  /** Which second this slice holds (epoch ms / sliceMs); -1 when empty. */
  index: number;
  /** Made on the slot's first use (70 KB each: an idle colour, or an idle proxy, holds none). */
  histogram: Histogram | null;
  errors: number;
  /** Sum and count per custom metric; null until one is reported (most apps report none). */
  metrics: Map<string, { sum: number; count: number }> | null;
}

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
    const ring = (): Slice[] => Array.from({ length: slices }, () => ({ index: -1, histogram: null, errors: 0, metrics: null }));
    this.rings = { blue: ring(), green: ring() };
  }

  /** One request of `color` that ended at `atMs` after `latencyMs`. */
  record(color: Color, latencyMs: number, isError: boolean, atMs: number): void {
    const slice = this.sliceAt(color, atMs);
    recordLatency(slice.histogram ??= newHistogram(), latencyMs);
    if (isError) slice.errors++;
  }

  /** One value of an app-reported metric, for a response of `color` that ended at `atMs`. */
  recordMetric(color: Color, name: string, value: number, atMs: number): void {
    const slice = this.sliceAt(color, atMs);
    slice.metrics ??= new Map();
    const m = slice.metrics.get(name);
    if (m) {
      m.sum += value;
      m.count++;
    } else {
      slice.metrics.set(name, { sum: value, count: 1 });
    }
  }

  /**
   * Adds a slice measured elsewhere (another proxy of the fleet: fleet/slice-exchange.ts): its
   * histogram, errors and metric sums go into the slice of `atMs`, as exactly as if recorded here.
   */
  add(color: Color, atMs: number, histogram: Histogram, errors: number, metrics?: Record<string, { sum: number; count: number }>): void {
    // Older than what its slot holds now (late, or from a skewed clock): gone, never over a newer second.
    const ring = this.rings[color];
    const index = Math.floor(atMs / this.sliceMs);
    if (ring[((index % ring.length) + ring.length) % ring.length]!.index > index) return;
    const slice = this.sliceAt(color, atMs);
    (slice.histogram ??= newHistogram()).add(histogram);
    slice.errors += errors;
    for (const [name, m] of Object.entries(metrics ?? {})) {
      slice.metrics ??= new Map();
      const total = slice.metrics.get(name) ?? { sum: 0, count: 0 };
      total.sum += m.sum;
      total.count += m.count;
      slice.metrics.set(name, total);
    }
  }

  /**
   * Lets go of the histograms of seconds the ring no longer holds at `nowMs` (a colour that took
   * traffic and then none keeps none): what idle memory holds is what recent seconds need.
   */
  sweep(nowMs: number): void {
    const oldest = Math.floor(nowMs / this.sliceMs) - (this.rings.blue.length - 1);
    for (const ring of Object.values(this.rings)) {
      for (const slice of ring) {
        if (slice.index >= oldest || slice.index === -1) continue;
        slice.index = -1;
        slice.histogram = null;
        slice.errors = 0;
        slice.metrics = null;
      }
    }
  }

  private sliceAt(color: Color, atMs: number): Slice {
    const index = Math.floor(atMs / this.sliceMs);
    const ring = this.rings[color];
    const slice = ring[index % ring.length]!;
    if (slice.index !== index) {
      // The ring came round: this slot held an older second.
      slice.histogram?.reset();
      slice.errors = 0;
      slice.metrics = null;
      slice.index = index;
    }
    return slice;
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
    const sums = new Map<string, { sum: number; count: number }>();
    const ring = this.rings[color];
    for (let index = first; index <= last; index++) {
      const slice = ring[((index % ring.length) + ring.length) % ring.length]!;
      if (slice.index !== index) continue;
      if (slice.histogram) merged.add(slice.histogram);
      errors += slice.errors;
      for (const [name, m] of slice.metrics ?? []) {
        const total = sums.get(name) ?? { sum: 0, count: 0 };
        total.sum += m.sum;
        total.count += m.count;
        sums.set(name, total);
      }
    }
    const metrics: Record<string, MetricStats> = {};
    for (const [name, m] of sums) metrics[name] = { count: m.count, mean: m.sum / m.count };
    return { color, startMs: first * this.sliceMs, endMs: (last + 1) * this.sliceMs, metrics, ...summarize(merged, errors) };
  }
}
