// The ChangeLens benchmark: one run = warm-up → baseline → deploy (a release carrying a regression,
// or none for an A/A run) → observe until the deployment ends (rolled back or promoted) → recovery,
// under open-model load against a running appliance. Per run it writes a per-second CSV by colour,
// a JSON summary (time to detect and to roll back, requests the bad release served, failed and
// SLO-violating requests, worst P99 during the incident) and P99 and error-rate charts (SVG + PNG)
// with the phases shaded and the rollback marked. A matrix runs scenarios × strategies ×
// repetitions and writes an HTML report comparing them.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isTerminal } from '../lib/contracts/phases.js';
import { newHistogram, recordLatency, summarize, type Histogram } from '../monitoring/histogram.js';
import { lineChartSvg, svgToPng, type Phase } from './chart.js';
import { adminCall } from './harness.js';
import { DEFAULT_MIX } from './k6.js';
import { runDistributed } from './distributed/client.js';
import type { JoinInfo } from './distributed/protocol.js';
import { runLoad, type Endpoint, type LoadPlan, type RequestResult } from './loadgen.js';

export const SCENARIOS = ['none', 'cpu', 'db', 'dependency', 'errors', 'worker-errors'] as const;
export const STRATEGIES = ['direct', 'bluegreen', 'canary'] as const;
export type Scenario = (typeof SCENARIOS)[number];
export type Strategy = (typeof STRATEGIES)[number];

/** The seed's regressions at an intensity that clearly hurts (units as the regression specs take them). */
export const DEFAULT_INTENSITY: Record<Exclude<Scenario, 'none'>, number> = { cpu: 600, db: 300, dependency: 100, errors: 0.3, 'worker-errors': 0.2 };
/** The worker's scenarios carry more jobs: at 100 req/s a fifth of the requests enqueue one (20 jobs/s). */
export const WORKER_MIX: readonly Endpoint[] = [
  { method: 'GET', path: '/api/data?limit=10', weight: 6 },
  { method: 'GET', path: '/api/work?ms=5', weight: 2 },
  { method: 'POST', path: '/api/process', body: { workMs: 5 }, weight: 2 },
];
const JOB_ENDPOINT = 'POST /api/process';
const isWorkerScenario = (s: Scenario): boolean => s.startsWith('worker-');

/** What the release carries for a scenario: the API's regression, or its worker's. */
export function scenarioEnv(scenario: Scenario, intensity: number | null): Record<string, string> | undefined {
  if (intensity === null || scenario === 'none') return undefined;
  return isWorkerScenario(scenario)
    ? { CHANGELENS_WORKER_REGRESSION: `${scenario.slice('worker-'.length)}:${intensity}` }
    : { CHANGELENS_REGRESSION: `${scenario}:${intensity}` };
}

export interface RunOptions {
  /** The appliance's origin and admin token. */
  url: string;
  token: string;
  scenario: Scenario;
  intensity?: number;
  strategy: Strategy;
  rate: number;
  /** The longest the deployment may take before the run gives up on it (it is aborted). */
  durationSeconds: number;
  warmupSeconds?: number;
  baselineSeconds?: number;
  recoverySeconds?: number;
  /** A request slower than this, or failed, violates the SLO. */
  sloMs?: number;
  mix?: readonly Endpoint[];
  /** Canary steps and step length for the run's deployment. */
  steps?: readonly number[];
  stepSeconds?: number;
  out: string;
  onProgress?: (line: string) => void;
  /** Where the load comes from and goes: a coordinator's workers, another origin than `url` (e.g. its address the workers reach). */
  load?: { coordinator?: JoinInfo; target?: string; allowRemote?: boolean };
}

export interface Timeline {
  /** ms since the epoch */
  loadStart: number;
  deployAt: number;
  /** The candidate answered its first request (unpinned). */
  candidateFirstAt: number | null;
  /** The routing swap of a rollback, or the promotion. */
  endedAt: number;
  loadEnd: number;
  outcome: string;
  candidateColor: string;
  reason: string | null;
}

export interface RunSummary {
  scenario: Scenario;
  strategy: Strategy;
  intensity: number | null;
  rate: number;
  outcome: string;
  reason: string | null;
  /** From the candidate's first request to the rollback (null: not rolled back). */
  timeToDetectMs: number | null;
  /** From the deploy call to the rollback (null: not rolled back). */
  timeToRollbackMs: number | null;
  requests: number;
  /** Requests the bad release served (0 in an A/A run: nothing was bad). */
  badRequests: number;
  /** Jobs the bad release's worker was given: the candidate API's accepted jobs (0 in an A/A run). */
  badJobs: number;
  candidateRequests: number;
  failedRequests: number;
  sloViolations: number;
  /** The worst per-second P99 (all traffic) from the deploy to the end of recovery. */
  worstP99Ms: number;
  baselineP99Ms: number;
}

export interface SeriesRow {
  second: number;
  color: string;
  count: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  errorRate: number;
  weight: number;
  phase: string;
}

type Sample = RequestResult;

/** The run's numbers from its samples and timeline: pure, so it is tested on synthetic series. */
export function summarizeRun(samples: readonly Sample[], t: Timeline, o: { scenario: Scenario; strategy: Strategy; intensity: number | null; rate: number; sloMs: number }): RunSummary {
  const rolledBack = t.outcome === 'rolled_back';
  // Everything the new release served from the deploy on: after a promotion it keeps serving (a bad
  // release shipped by direct serves everyone until the end); after a rollback, nothing more.
  const candidate = samples.filter((s) => s.color === t.candidateColor && s.intendedAt >= t.deployAt);
  const failed = samples.filter((s) => s.status === 0 || s.status >= 500);
  const perSecondP99 = (from: number, to: number): number[] => {
    const buckets = new Map<number, Histogram>();
    for (const s of samples) {
      if (s.intendedAt < from || s.intendedAt > to) continue;
      const k = Math.floor(s.intendedAt / 1000);
      let h = buckets.get(k);
      if (!h) buckets.set(k, (h = newHistogram()));
      recordLatency(h, s.latencyMs);
    }
    return [...buckets.values()].map((h) => summarize(h, 0).p99Ms);
  };
  const baseline = perSecondP99(t.loadStart, t.deployAt);
  return {
    scenario: o.scenario, strategy: o.strategy, intensity: o.intensity, rate: o.rate,
    outcome: t.outcome, reason: t.reason,
    timeToDetectMs: rolledBack && t.candidateFirstAt !== null ? t.endedAt - t.candidateFirstAt : null,
    timeToRollbackMs: rolledBack ? t.endedAt - t.deployAt : null,
    requests: samples.length,
    badRequests: o.scenario === 'none' ? 0 : candidate.length,
    badJobs: o.scenario === 'none' ? 0 : candidate.filter((s) => s.endpoint === JOB_ENDPOINT && s.status === 202).length,
    candidateRequests: candidate.length,
    failedRequests: failed.length,
    sloViolations: samples.filter((s) => s.status === 0 || s.status >= 500 || s.latencyMs > o.sloMs).length,
    worstP99Ms: Math.max(0, ...perSecondP99(t.deployAt, t.loadEnd)),
    baselineP99Ms: baseline.length ? baseline.sort((a, b) => a - b)[Math.floor((baseline.length - 1) / 2)]! : 0,
  };
}

/** Per second (from the load's start) and colour: count, percentiles, error rate, the candidate's weight and the phase. */
export function seriesRows(samples: readonly Sample[], t: Timeline, weights: ReadonlyMap<number, number>): SeriesRow[] {
  const cells = new Map<string, { h: Histogram; count: number; errors: number }>();
  for (const s of samples) {
    const key = `${Math.floor((s.intendedAt - t.loadStart) / 1000)}|${s.color ?? 'none'}`;
    let c = cells.get(key);
    if (!c) cells.set(key, (c = { h: newHistogram(), count: 0, errors: 0 }));
    recordLatency(c.h, s.latencyMs);
    c.count++;
    if (s.status === 0 || s.status >= 500) c.errors++;
  }
  const phaseAt = (second: number): string => {
    const at = t.loadStart + second * 1000;
    if (at < t.deployAt) return 'baseline';
    if (at <= t.endedAt) return t.outcome === 'rolled_back' ? 'incident' : 'rollout';
    return 'recovery';
  };
  return [...cells.entries()].map(([key, c]) => {
    const [second, color] = key.split('|') as [string, string];
    const sec = Number(second);
    const s = summarize(c.h, c.errors);
    const r2 = (x: number): number => Math.round(x * 100) / 100;
    return { second: sec, color, count: c.count, p50Ms: r2(s.p50Ms), p95Ms: r2(s.p95Ms), p99Ms: r2(s.p99Ms), errorRate: c.errors / c.count, weight: weights.get(sec) ?? 0, phase: phaseAt(sec) };
  }).sort((a, b) => a.second - b.second || (a.color < b.color ? -1 : 1));
}

export function seriesCsv(rows: readonly SeriesRow[]): string {
  return ['second,color,count,p50_ms,p95_ms,p99_ms,error_rate,candidate_weight,phase',
    ...rows.map((r) => [r.second, r.color, r.count, r.p50Ms, r.p95Ms, r.p99Ms, r.errorRate.toFixed(4), r.weight, r.phase].join(','))].join('\n') + '\n';
}

const COLOR_OF: Record<string, string> = { blue: '#1f6fd1', green: '#1a9c4b', none: '#999' };

/** The two charts of a run, as SVG. */
export function runCharts(rows: readonly SeriesRow[], t: Timeline, title: string): { p99: string; errors: string } {
  const rel = (ms: number): number => (ms - t.loadStart) / 1000;
  const phases: Phase[] = [
    { from: 0, to: rel(t.deployAt), label: 'baseline', fill: '#e8eef7' },
    { from: rel(t.deployAt), to: rel(t.endedAt), label: t.outcome === 'rolled_back' ? 'deploy → rollback' : 'rollout', fill: t.outcome === 'rolled_back' ? '#fbe3e3' : '#e6f4ea' },
    { from: rel(t.endedAt), to: rel(t.loadEnd), label: 'recovery', fill: '#f3f3f3' },
  ];
  const markers = [{ at: rel(t.deployAt), label: 'deploy' }, ...(t.outcome === 'rolled_back' ? [{ at: rel(t.endedAt), label: 'rollback' }] : [])];
  const colors = [...new Set(rows.map((r) => r.color))];
  const last = Math.max(0, ...rows.map((r) => r.second));
  const seriesOf = (k: 'p99Ms' | 'errorRate') => colors.map((color) => {
    const byS = new Map(rows.filter((r) => r.color === color).map((r) => [r.second, r[k]]));
    return { name: color, color: COLOR_OF[color] ?? '#666', points: Array.from({ length: last + 1 }, (_, s) => [s, byS.get(s) ?? null] as const) };
  });
  return {
    p99: lineChartSvg({ title: `P99 latency by colour — ${title}`, yLabel: 'P99 (ms)', series: seriesOf('p99Ms'), phases, markers }),
    errors: lineChartSvg({ title: `Error rate by colour — ${title}`, yLabel: 'error rate', series: seriesOf('errorRate'), phases, markers, yFormat: (v) => `${Math.round(v * 100)} %` }),
  };
}

const api = (o: RunOptions, method: string, path: string, body?: unknown): Promise<any> => adminCall(o.url, o.token, method, path, body);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One run against a running appliance; writes its files into `o.out` and returns its summary. */
export async function runScenario(o: RunOptions): Promise<RunSummary> {
  const intensity = o.scenario === 'none' ? null : (o.intensity ?? DEFAULT_INTENSITY[o.scenario]);
  const say = o.onProgress ?? (() => {});
  mkdirSync(o.out, { recursive: true });
  const samples: Sample[] = [];
  const stop = new AbortController();
  const loadStart = Date.now();
  const plan: LoadPlan = {
    target: o.load?.target ?? o.url, allowRemote: o.load?.allowRemote ?? false, rate: o.rate,
    // Its thresholds are tens of ms, and the generator often shares the appliance's cores: no spin.
    timing: 'timer', durationSeconds: 86_400, mix: o.mix ?? (isWorkerScenario(o.scenario) ? WORKER_MIX : DEFAULT_MIX), signal: stop.signal,
    // Pins are the operator's: the benchmark measures what the router does with ordinary traffic.
    // The warm-up is not measured. (Results may arrive out of order: from workers, a second at a time.)
    onResult: (r) => { if (r.intendedAt >= loadStart + (o.warmupSeconds ?? 3) * 1000) samples.push(r); },
  };
  const load = o.load?.coordinator ? runDistributed(plan, o.load.coordinator) : runLoad(plan);
  // Its failure is read where it is awaited; until then it must not count as unhandled.
  load.catch(() => {});
  const weights = new Map<number, number>();
  let polling = true;
  const poll = (async () => {
    while (polling) {
      const s = await api(o, 'GET', '/api/status').catch(() => null);
      if (s) weights.set(Math.floor((Date.now() - loadStart) / 1000), s.routing?.candidateWeight ?? 0);
      await sleep(1000);
    }
  })();
  try {
    say(`${o.scenario}/${o.strategy}: warm-up ${o.warmupSeconds ?? 3} s, baseline ${o.baselineSeconds ?? 5} s at ${o.rate} req/s`);
    await sleep(((o.warmupSeconds ?? 3) + (o.baselineSeconds ?? 5)) * 1000);
    const version = `bench-${o.scenario}-${o.strategy}-${Date.now().toString(36)}`;
    const deployAt = Date.now();
    const d0 = await api(o, 'POST', '/api/deployments', {
      version, strategy: o.strategy,
      // 25 % first: at 100 req/s a 5 s window then holds ~125 candidate requests, above the judge's minimum of 50.
      ...(o.strategy === 'canary' ? { steps: o.steps ?? [25, 50, 100], stepSeconds: o.stepSeconds ?? 5 } : {}),
      ...(o.strategy === 'bluegreen' ? { stepSeconds: o.stepSeconds ?? 5 } : {}),
      ...(o.stepSeconds && o.stepSeconds < 5 ? { windowSeconds: o.stepSeconds } : {}),
      ...(scenarioEnv(o.scenario, intensity) ? { env: scenarioEnv(o.scenario, intensity) } : {}),
    });
    say(`deployed ${version} (${o.strategy}${intensity !== null ? `, ${o.scenario}:${intensity}` : ', no regression'})`);
    let d: any;
    for (const deadline = Date.now() + o.durationSeconds * 1000; ;) {
      d = await api(o, 'GET', `/api/deployments/${d0.id}`);
      if (isTerminal(d.status.phase)) break;
      if (Date.now() > deadline) {
        await api(o, 'POST', '/api/deployment/abort', { reason: `bench: not finished within ${o.durationSeconds} s` }).catch(() => {});
        d = await api(o, 'GET', `/api/deployments/${d0.id}`);
        break;
      }
      await sleep(250);
    }
    const endedAt = d.result?.rollback_timing?.swapped_at ? Date.parse(d.result.rollback_timing.swapped_at) : Date.parse(d.finishedAt ?? d.updatedAt ?? new Date().toISOString());
    say(`${d.status.phase}${d.status.reason ? `: ${d.status.reason}` : ''}; recovery ${o.recoverySeconds ?? 5} s`);
    await sleep((o.recoverySeconds ?? 5) * 1000);
    stop.abort();
    await load;
    polling = false;
    await poll;
    const loadEnd = Date.now();
    const candidateFirst = samples.filter((s) => s.color === d.candidateColor && s.intendedAt >= deployAt).reduce<Sample | undefined>((first, s) => (first === undefined || s.intendedAt < first.intendedAt ? s : first), undefined);
    const timeline: Timeline = { loadStart: loadStart + (o.warmupSeconds ?? 3) * 1000, deployAt, candidateFirstAt: candidateFirst?.intendedAt ?? null, endedAt, loadEnd, outcome: d.status.phase, candidateColor: d.candidateColor, reason: d.status.reason ?? null };
    // Weights were keyed from the load's start; the series start after the warm-up.
    const shift = o.warmupSeconds ?? 3;
    const shifted = new Map([...weights].map(([s, w]) => [s - shift, w] as const).filter(([s]) => s >= 0));
    const summary = summarizeRun(samples, timeline, { scenario: o.scenario, strategy: o.strategy, intensity, rate: o.rate, sloMs: o.sloMs ?? 250 });
    const rows = seriesRows(samples, timeline, shifted);
    const charts = runCharts(rows, timeline, `${o.scenario}${intensity !== null ? `:${intensity}` : ''}, ${o.strategy}, ${o.rate} req/s`);
    writeFileSync(join(o.out, 'timeseries.csv'), seriesCsv(rows));
    writeFileSync(join(o.out, 'summary.json'), JSON.stringify({ summary, timeline, deployment: { id: d.id, version, result: d.result ?? null } }, null, 2) + '\n');
    writeFileSync(join(o.out, 'p99.svg'), charts.p99);
    writeFileSync(join(o.out, 'errors.svg'), charts.errors);
    writeFileSync(join(o.out, 'p99.png'), svgToPng(charts.p99));
    writeFileSync(join(o.out, 'errors.png'), svgToPng(charts.errors));
    // A bad release that was promoted (direct has no analysis) would poison the next run's baseline:
    // put a clean one back.
    if (d.status.phase === 'promoted' && intensity !== null) {
      say('resetting: a clean release replaces the promoted bad one');
      const reset = await api(o, 'POST', '/api/deployments', { version: `bench-reset-${Date.now().toString(36)}`, strategy: 'direct' });
      for (let i = 0; i < 240 && !isTerminal((await api(o, 'GET', `/api/deployments/${reset.id}`)).status.phase); i++) await sleep(250);
    }
    return summary;
  } finally {
    stop.abort();
    polling = false;
    await load.catch(() => {});
  }
}

export interface MatrixOptions extends Omit<RunOptions, 'scenario' | 'strategy' | 'out'> {
  scenarios: readonly Scenario[];
  strategies: readonly Strategy[];
  repetitions: number;
  out: string;
}

export async function runMatrix(o: MatrixOptions): Promise<RunSummary[]> {
  const runs: Array<RunSummary & { dir: string }> = [];
  mkdirSync(o.out, { recursive: true });
  for (let rep = 1; rep <= o.repetitions; rep++) {
    for (const scenario of o.scenarios) {
      for (const strategy of o.strategies) {
        const dir = `${scenario}-${strategy}-${rep}`;
        o.onProgress?.(`run ${runs.length + 1}/${o.repetitions * o.scenarios.length * o.strategies.length}: ${dir}`);
        const summary = await runScenario({ ...o, scenario, strategy, out: join(o.out, dir) });
        runs.push({ ...summary, dir });
      }
    }
  }
  writeFileSync(join(o.out, 'summary.csv'), matrixCsv(runs));
  writeFileSync(join(o.out, 'summary.json'), JSON.stringify(runs, null, 2) + '\n');
  writeFileSync(join(o.out, 'report.html'), htmlReport(runs));
  return runs;
}

const COLUMNS: Array<[string, (r: RunSummary) => string | number | null]> = [
  ['scenario', (r) => r.scenario], ['strategy', (r) => r.strategy], ['outcome', (r) => r.outcome],
  ['time_to_detect_ms', (r) => r.timeToDetectMs], ['time_to_rollback_ms', (r) => r.timeToRollbackMs],
  ['bad_requests', (r) => r.badRequests], ['bad_jobs', (r) => r.badJobs], ['failed_requests', (r) => r.failedRequests], ['slo_violations', (r) => r.sloViolations],
  ['worst_p99_ms', (r) => Math.round(r.worstP99Ms * 10) / 10], ['baseline_p99_ms', (r) => Math.round(r.baselineP99Ms * 10) / 10], ['requests', (r) => r.requests],
];

export function matrixCsv(runs: readonly RunSummary[]): string {
  return [COLUMNS.map(([k]) => k).join(','), ...runs.map((r) => COLUMNS.map(([, f]) => f(r) ?? '').join(','))].join('\n') + '\n';
}

/** Medians per scenario × strategy, as the comparison table of the report (and the note). */
export function comparison(runs: readonly RunSummary[]): Array<{ scenario: string; strategy: string; runs: number; detectMs: number | null; rollbackMs: number | null; badRequests: number; badJobs: number; failedRequests: number; worstP99Ms: number }> {
  const median = (xs: number[]): number | null => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]! : null);
  const groups = new Map<string, RunSummary[]>();
  for (const r of runs) groups.set(`${r.scenario}|${r.strategy}`, [...(groups.get(`${r.scenario}|${r.strategy}`) ?? []), r]);
  return [...groups.entries()].map(([key, rs]) => {
    const [scenario, strategy] = key.split('|') as [string, string];
    return {
      scenario, strategy, runs: rs.length,
      detectMs: median(rs.flatMap((r) => (r.timeToDetectMs === null ? [] : [r.timeToDetectMs]))),
      rollbackMs: median(rs.flatMap((r) => (r.timeToRollbackMs === null ? [] : [r.timeToRollbackMs]))),
      badRequests: median(rs.map((r) => r.badRequests)) ?? 0,
      badJobs: median(rs.map((r) => r.badJobs ?? 0)) ?? 0,
      failedRequests: median(rs.map((r) => r.failedRequests)) ?? 0,
      worstP99Ms: median(rs.map((r) => r.worstP99Ms)) ?? 0,
    };
  });
}

export function htmlReport(runs: ReadonlyArray<RunSummary & { dir: string }>): string {
  const esc = (s: unknown): string => String(s ?? '–').replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const table = comparison(runs).map((c) => `<tr><td>${esc(c.scenario)}</td><td>${esc(c.strategy)}</td><td>${c.runs}</td><td>${esc(c.detectMs)}</td><td>${esc(c.rollbackMs)}</td><td>${c.badRequests}</td><td>${c.failedRequests}</td><td>${Math.round(c.worstP99Ms)}</td></tr>`).join('\n');
  const each = runs.map((r) => `<section><h3>${esc(r.dir)}: ${esc(r.outcome)}</h3><p>${esc(r.reason)}</p><img src="${esc(r.dir)}/p99.svg" alt="P99 of ${esc(r.dir)}" width="900"><img src="${esc(r.dir)}/errors.svg" alt="error rate of ${esc(r.dir)}" width="900"></section>`).join('\n');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>ChangeLens benchmark</title>
<style>body{font-family:sans-serif;margin:1.5rem;max-width:960px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}img{max-width:100%;height:auto}</style></head><body>
<h1>ChangeLens benchmark</h1><p>${runs.length} runs, ${new Date().toISOString()}. Medians per scenario and strategy; times in ms from the candidate's first request (detect) and from the deploy call (rollback).</p>
<table><thead><tr><th>scenario</th><th>strategy</th><th>runs</th><th>detect ms</th><th>rollback ms</th><th>bad requests</th><th>failed requests</th><th>worst P99 ms</th></tr></thead><tbody>
${table}
</tbody></table>
${each}
</body></html>
`;
}
