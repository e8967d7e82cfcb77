// Measuring requests: latency histograms and error counts (the judge arrives with progressive delivery).
export { LatencyRecorder, type LatencySnapshot } from './latency-recorder.js';
export { SlicedWindow, type WindowStats, type SlicedWindowOptions } from './sliced-window.js';
export { judgeWindow, consecutiveFailures, DEFAULT_RULES, type JudgeRules, type WindowJudgement, type WindowVerdict, type RuleResult } from './judge.js';
