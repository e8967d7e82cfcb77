// Measuring requests: latency histograms and error counts (the judge arrives with progressive delivery).
export { LatencyRecorder, type LatencySnapshot } from './latency-recorder.js';
