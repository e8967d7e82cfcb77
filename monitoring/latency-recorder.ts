// Latency and errors of one stream of requests since the last reset: the API's own /api/metrics.
import { newHistogram, recordLatency, summarize, type LatencySummary } from './histogram.js';

export interface LatencySnapshot extends LatencySummary {
  /** When counting started (the last reset). */
  since: string;
}

export class LatencyRecorder {
  private readonly histogram = newHistogram();
  private errors = 0;
  private since = new Date();

  record(latencyMs: number, isError: boolean): void {
    recordLatency(this.histogram, latencyMs);
    if (isError) this.errors++;
  }

  snapshot(): LatencySnapshot {
    const s = summarize(this.histogram, this.errors);
    return { ...s, p50Ms: round3(s.p50Ms), p95Ms: round3(s.p95Ms), p99Ms: round3(s.p99Ms), maxMs: round3(s.maxMs), since: this.since.toISOString() };
  }

  reset(): void {
    this.histogram.reset();
    this.errors = 0;
    this.since = new Date();
  }
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;
