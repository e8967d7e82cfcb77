// The latency histogram every measurement here uses: HdrHistogram in microseconds, 1 µs to 60 s
// at 3 significant digits, and how a histogram plus an error count is summarised.
import hdr from 'hdr-histogram-js';

export type Histogram = hdr.Histogram;

export function newHistogram(): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

/** Records one latency; values outside the trackable range are clamped (never a throw on the request path). */
export function recordLatency(histogram: Histogram, latencyMs: number): void {
  histogram.recordValue(Math.min(60_000_000, Math.max(1, Math.round(latencyMs * 1000))));
}

export interface LatencySummary {
  count: number;
  errors: number;
  /** errors / count, 0 when there were no requests. */
  errorRate: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
}

export function summarize(histogram: Histogram, errors: number): LatencySummary {
  const count = histogram.totalCount;
  const max = histogram.maxValue;
  // A percentile is its bucket's highest equivalent value, which can exceed the largest value
  // actually recorded; never report a percentile above the maximum.
  const at = (p: number): number => (count === 0 ? 0 : Math.min(histogram.getValueAtPercentile(p), max) / 1000);
  return { count, errors, errorRate: count === 0 ? 0 : errors / count, p50Ms: at(50), p95Ms: at(95), p99Ms: at(99), maxMs: count === 0 ? 0 : max / 1000 };
}

/** A histogram as text (compressed base64), to cross a process boundary and be merged exactly. */
export function encodeHistogram(histogram: Histogram): string {
  return hdr.encodeIntoCompressedBase64(histogram);
}

export function decodeHistogram(text: string, exactMaxUs?: number): Histogram {
  const decoded = hdr.decodeFromCompressedBase64(text, 32, false);
  // Back into our shape (same range and precision), so merges and summaries behave the same.
  const h = newHistogram();
  h.add(decoded);
  // The encoding keeps counts only: its maximum comes back as the top of its bucket. Given the exact
  // one (it must lie in that bucket), percentiles capped by it read as they did where recorded.
  if (exactMaxUs !== undefined && Number.isSafeInteger(exactMaxUs) && exactMaxUs <= h.maxValue && exactMaxUs >= h.maxValue * 0.998) {
    (h as { maxValue: number }).maxValue = exactMaxUs;
  }
  return h;
}
