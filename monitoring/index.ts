// Measuring requests: latency histograms and error counts, the judge, and the Prometheus exposition.
export { LatencyRecorder, type LatencySnapshot } from './latency-recorder.js';
export { encodeHistogram, decodeHistogram, newHistogram, recordLatency, type Histogram } from './histogram.js';
export { SlicedWindow, type WindowStats, type SlicedWindowOptions, type MetricStats } from './sliced-window.js';
export { judgeWindow, judgeJobs, withJobRules, DEAD_LETTER_METRIC, consecutiveFailures, parseMetricRules, DEFAULT_RULES, type JudgeRules, type MetricRule, type WindowJudgement, type WindowVerdict, type RuleResult } from './judge.js';
export { createProxyMetrics, REQUEST_DURATION_BUCKETS, ROLLOUT_PHASES, type ProxyMetrics, type ProxyMetricsOptions, type RolloutMetricsState } from './metrics.js';
