// npm run bench:judge — the judge fed synthetic traffic in accelerated time (no sleeping), ≥ 1,000
// canaries per scenario: how fast each regression is detected (from the candidate's first request)
// and how often identical code is rolled back, for the plain seed rule beside ChangeLens's judge.
//
// Traffic: lognormal latency (median 10 ms, σ 0.5 or 0.9), a 10 % canary of 200 or 50 req/s,
// requests spread evenly over each second. Regressions: errors 0 → 10 %; "P99 × 3" = every candidate
// latency × 3. Canaries last five minutes.
// - Seed rule: 5 s windows, fail when candidate P99 > 1.5 × stable P99 (same window) or errors > 5 %,
//   no minimum sample count (as the seed states it), roll back after 2 failing windows in a row.
// - ChangeLens: the same windows with a minimum of 50 candidate requests (fewer: insufficient),
//   plus the sequential tests (monitoring/sequential.ts) fed every second. As in the proxy
//   (rollout/fast-trips.ts), the latency test starts after a 3 s cold-start grace and compares with
//   the stable P99 of the stable traffic since the canary began (once 100 requests; at most the last
//   30 s), re-estimated every second for the first 30 s, then every 30 s (every second, as the
//   proxy does from its slices, would only cost time here). Its latency rules take the 20 ms floor
//   and the stable colour's recent range (issue 16), as the appliance's defaults do.
// Percentiles here are exact (sorted samples), not HdrHistogram's: the comparison is of the rules.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../lib/package-root.js';
import { consecutiveFailures, judgeWindow, DEFAULT_RULES, type JudgeRules, type WindowStats, type WindowVerdict } from '../monitoring/index.js';
import { SequentialJudge, wilson } from '../monitoring/sequential.js';
import { prng } from './prng.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '1000' } } });
const RUNS = Number(values.runs);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error('--runs: a positive integer');

const CANARY_SECONDS = 300;
const WINDOW_SECONDS = 5;
const MEDIAN_MS = 10;
/** As rollout/fast-trips.ts: the latency test needs 100 stable requests, and ignores the candidate's first 3 s. */
const SEQUENTIAL_MIN_BASELINE = 100;
const COLD_START_GRACE_SECONDS = 3;
/** The practical-significance floor, CHANGELENS_P99_MIN_DELTA_MS's default: the window rule and "slow" for the sequential test. */
const P99_MIN_DELTA_MS = 20;

interface Scenario { traffic: string; rate: number; sigma: number; kind: 'A/A' | 'errors 0 → 10 %' | 'P99 × 3' }
const SCENARIOS: Scenario[] = [];
for (const [traffic, rate, sigma] of [['10 % of 200 req/s, σ 0.5', 200, 0.5], ['10 % of 50 req/s, σ 0.9', 50, 0.9]] as const) {
  for (const kind of ['A/A', 'errors 0 → 10 %', 'P99 × 3'] as const) SCENARIOS.push({ traffic, rate, sigma, kind });
}
const TARGETS: Record<string, string> = {
  '200/A/A': '≤ 0.5 % false', '200/errors 0 → 10 %': '≤ 3 s', '200/P99 × 3': '≤ 2 s',
  '50/A/A': '≤ 1 % false', '50/errors 0 → 10 %': '≤ 15 s', '50/P99 × 3': '≤ 10 s',
};

/** Seeded uniform and normal (Box-Muller) draws: fast and allocation-free. */
function rng(seed: number) {
  const uniform = prng(seed);
  let spare: number | null = null;
  const normal = (): number => {
    if (spare !== null) { const s = spare; spare = null; return s; }
    let u = 0;
    while (u === 0) u = uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    const th = 2 * Math.PI * uniform();
    spare = r * Math.sin(th);
    return r * Math.cos(th);
  };
  return { uniform, normal };
}

function percentile(sorted: Float64Array, n: number, p: number): number {
  return n === 0 ? 0 : sorted[Math.min(n - 1, Math.ceil((p / 100) * n) - 1)]!;
}

function stats(color: 'blue' | 'green', buf: Float64Array, n: number, errors: number): WindowStats {
  const sorted = buf.subarray(0, n).sort();
  return { color, startMs: 0, endMs: 0, count: n, errors, errorRate: n ? errors / n : 0, p50Ms: percentile(sorted, n, 50), p95Ms: percentile(sorted, n, 95), p99Ms: percentile(sorted, n, 99), maxMs: n ? sorted[n - 1]! : 0, metrics: {} };
}

interface Outcome { seedAt: number | null; lensAt: number | null }

function simulate(s: Scenario, seed: number): Outcome {
  const r = rng(seed);
  const candRate = s.rate * 0.1;
  const stableRate = s.rate - candRate;
  const mu = Math.log(MEDIAN_MS);
  const factor = s.kind === 'P99 × 3' ? 3 : 1;
  const errorP = s.kind === 'errors 0 → 10 %' ? 0.1 : 0;
  const latency = (): number => Math.exp(mu + s.sigma * r.normal());
  const cand = new Float64Array(Math.ceil(candRate * WINDOW_SECONDS) + 8);
  const stab = new Float64Array(Math.ceil(stableRate * WINDOW_SECONDS) + 8);
  const recent: Float64Array[] = []; // the stable colour's samples of each of the last 30 s
  const seedRules: JudgeRules = { ...DEFAULT_RULES, minSamples: 0 };
  const lensRules: JudgeRules = { ...DEFAULT_RULES, p99MinDeltaMs: P99_MIN_DELTA_MS };
  const stableP99s: number[] = []; // the stable colour's window P99s so far: its own range
  const seedHistory: WindowVerdict[] = [];
  const lensHistory: WindowVerdict[] = [];
  const sequential = new SequentialJudge();
  let seedAt: number | null = null;
  let lensAt: number | null = null;

  // The stable P99 the sequential latency test uses: the stable traffic since the canary began
  // (at most 30 s), unknown (null) below 100 requests.
  let threshold: number | null = null;
  const refresh = (): void => {
    const n = recent.reduce((sum, a) => sum + a.length, 0);
    if (n < SEQUENTIAL_MIN_BASELINE) return void (threshold = null);
    const all = new Float64Array(n);
    let at = 0;
    for (const a of recent) { all.set(a, at); at += a.length; }
    threshold = percentile(all.sort(), n, 99);
  };

  let cn = 0, ce = 0, sn = 0, se = 0;
  let candCarry = 0, stableCarry = 0;
  for (let second = 1; second <= CANARY_SECONDS && (seedAt === null || lensAt === null); second++) {
    candCarry += candRate;
    stableCarry += stableRate;
    const nc = Math.floor(candCarry);
    const ns = Math.floor(stableCarry);
    candCarry -= nc;
    stableCarry -= ns;
    let slow = 0, errs = 0;
    for (let i = 0; i < nc; i++) {
      const l = latency() * factor;
      const e = r.uniform() < errorP;
      cand[cn++] = l;
      if (e) { ce++; errs++; }
      if (threshold !== null && l > threshold + P99_MIN_DELTA_MS) slow++;
    }
    const stableSecond = new Float64Array(ns);
    for (let i = 0; i < ns; i++) stab[sn++] = stableSecond[i] = latency();
    if (lensAt === null) {
      const v = sequential.feed({ count: nc, slow, errors: errs, stableErrorRate: 0, thresholdMs: second > COLD_START_GRACE_SECONDS ? threshold : null });
      if (v.verdict === 'fail') lensAt = second;
    }
    recent.push(stableSecond);
    if (recent.length > 30) recent.shift();
    if (second <= 30 || second % 30 === 0) refresh();
    if (second % WINDOW_SECONDS === 0) {
      const c = stats('green', cand, cn, ce);
      const b = stats('blue', stab, sn, se);
      if (seedAt === null) {
        seedHistory.push(judgeWindow(c, b, seedRules).verdict);
        if (consecutiveFailures(seedHistory) >= 2) seedAt = second;
      }
      if (lensAt === null) {
        // As rollout/analysis.ts: the second-highest of the last five windows, once there are three.
        const recentP99s = stableP99s.slice(-5).sort((x, y) => y - x);
        lensHistory.push(judgeWindow(c, b, lensRules, recentP99s.length >= 3 ? recentP99s[1] : undefined).verdict);
        stableP99s.push(b.p99Ms);
        if (consecutiveFailures(lensHistory) >= 2) lensAt = second;
      }
      cn = ce = sn = se = 0;
    }
  }
  return { seedAt, lensAt };
}

interface Row { scenario: string; rule: string; detected: number; medianS: number | null; p90S: number | null; falseRate: number | null; falseInterval: [number, number] | null }

const quantile = (xs: number[], q: number): number | null => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]! : null);
const rows: Row[] = [];
const t0 = performance.now();
for (const s of SCENARIOS) {
  const outcomes = Array.from({ length: RUNS }, (_, i) => simulate(s, 1 + i * 7919 + SCENARIOS.indexOf(s) * 1_000_003));
  for (const [rule, pick] of [['seed rule', (o: Outcome) => o.seedAt], ['ChangeLens', (o: Outcome) => o.lensAt]] as const) {
    const times = outcomes.map(pick).filter((t): t is number => t !== null);
    const name = `${s.traffic}: ${s.kind}`;
    if (s.kind === 'A/A') rows.push({ scenario: name, rule, detected: times.length, medianS: null, p90S: null, falseRate: times.length / RUNS, falseInterval: wilson(times.length, RUNS) });
    else rows.push({ scenario: name, rule, detected: times.length, medianS: quantile(times, 0.5), p90S: quantile(times, 0.9), falseRate: null, falseInterval: null });
  }
}
const elapsed = (performance.now() - t0) / 1000;

const pct = (x: number): string => `${(x * 100).toFixed(2)} %`;
console.log(`bench:judge — ${RUNS} five-minute canaries per scenario, accelerated time (${elapsed.toFixed(1)} s)`);
console.log('scenario                                      rule         result                                   target');
for (const row of rows) {
  const s = SCENARIOS.find((x) => row.scenario === `${x.traffic}: ${x.kind}`)!;
  const target = TARGETS[`${s.rate}/${s.kind}`] ?? '';
  const result = row.falseRate !== null
    ? `false rollbacks ${pct(row.falseRate)} (95 % ${pct(row.falseInterval![0])}-${pct(row.falseInterval![1])})`
    : `detected ${row.detected}/${RUNS}, median ${row.medianS ?? '-'} s, P90 ${row.p90S ?? '-'} s`;
  console.log(`${row.scenario.padEnd(45)} ${row.rule.padEnd(12)} ${result.padEnd(40)} ${row.rule === 'ChangeLens' ? target : ''}`);
}
const dir = join(packageRoot, 'bench', 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `judge-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ runs: RUNS, canarySeconds: CANARY_SECONDS, rows }, null, 2) + '\n');
console.log(`wrote ${file}`);
