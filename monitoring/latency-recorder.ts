// Latency and errors of one stream of requests: an HdrHistogram in microseconds (exact
// percentiles, never averaged) plus request and error counters. The API uses one for its own
// /api/metrics; the proxy's monitor keeps one per colour per time slice.
import hdr from 'hdr-histogram-js';

export interface LatencySnapshot {
  count: number;
  errors: number;
  /** errors / count, 0 when there were no requests. */
  errorRate: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  /** When counting started (the last reset). */
  since: string;
}

/** 1 µs to 60 s at 3 significant digits. */
function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

export class LatencyRecorder {
  private histogram = newHistogram();
  private errors = 0;
  private since = new Date();

  record(latencyMs: number, isError: boolean): void {
    // Clamp into the trackable range: a value outside it would throw on the request path.
    this.histogram.recordValue(Math.min(60_000_000, Math.max(1, Math.round(latencyMs * 1000))));
    if (isError) this.errors++;
  }

  snapshot(): LatencySnapshot {
    const count = this.histogram.totalCount;
    const max = this.histogram.maxValue;
    // A percentile is its bucket's highest equivalent value, which can exceed the largest value
    // actually recorded; never report a percentile above the maximum.
    const at = (p: number): number => (count === 0 ? 0 : round3(Math.min(this.histogram.getValueAtPercentile(p), max) / 1000));
    return {
      count,
      errors: this.errors,
      errorRate: count === 0 ? 0 : this.errors / count,
      p50Ms: at(50),
      p95Ms: at(95),
      p99Ms: at(99),
      maxMs: count === 0 ? 0 : round3(max / 1000),
      since: this.since.toISOString(),
    };
  }

  reset(): void {
    this.histogram.reset();
    this.errors = 0;
    this.since = new Date();
  }
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;
