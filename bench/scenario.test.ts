// The benchmark's numbers and pictures on synthetic runs: what counts as detected, bad, failed and
// SLO-violating; the per-second series; charts that parse (SVG), decode (PNG) and carry the phases
// and the rollback marker.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CHART_FONT_FILES, inkIn, lineChartSvg, renderSvg, svgToPng, TITLE_BOX } from './chart.js';
import { comparison, htmlReport, matrixCsv, runCharts, scenarioEnv, seriesCsv, seriesRows, summarizeRun, type Timeline } from './scenario.js';
import type { RequestResult } from './loadgen.js';

const T0 = Date.UTC(2026, 10, 29, 12, 0, 0);
/** 100 req/s for 30 s: blue answers in 5 ms; from 10 s the candidate (green) gets 10 % and answers 500 in 50 ms; rollback at 14 s. */
function syntheticRun(): { samples: RequestResult[]; timeline: Timeline } {
  const samples: RequestResult[] = [];
  for (let i = 0; i < 3000; i++) {
    const at = T0 + i * 10;
    const green = at >= T0 + 10_500 && at < T0 + 14_000 && i % 10 === 0;
    samples.push({ intendedAt: at, latencyMs: green ? 50 : 5, status: green ? 500 : 200, color: green ? 'green' : 'blue' });
  }
  return { samples, timeline: { loadStart: T0, deployAt: T0 + 10_000, candidateFirstAt: T0 + 10_500, endedAt: T0 + 14_000, loadEnd: T0 + 30_000, outcome: 'rolled_back', candidateColor: 'green', reason: 'errors' } };
}

describe('summarizeRun', () => {
  it('times detection from the candidate\'s first request and the rollback from the deploy; counts bad, failed and slow requests', () => {
    const { samples, timeline } = syntheticRun();
    const s = summarizeRun(samples, timeline, { scenario: 'errors', strategy: 'canary', intensity: 0.3, rate: 100, sloMs: 20 });
    expect(s.timeToDetectMs).toBe(3500);
    expect(s.timeToRollbackMs).toBe(4000);
    expect(s.candidateRequests).toBe(35);
    expect(s.badRequests).toBe(35);
    expect(s.failedRequests).toBe(35);
    expect(s.sloViolations).toBe(35);
    expect(s.baselineP99Ms).toBeCloseTo(5, 1);
    expect(s.worstP99Ms).toBeCloseTo(50, 0);
    expect(s.requests).toBe(3000);
  });

  it('a worker scenario counts the jobs the bad release\'s API accepted (its worker runs them), and carries the worker\'s regression', () => {
    const { samples, timeline } = syntheticRun();
    const withJobs = samples.map((s, i) => ({ ...s, status: s.color === 'green' ? (i % 20 === 0 ? 202 : 200) : s.status, endpoint: i % 20 === 0 ? 'POST /api/process' : 'GET /api/data?limit=10' }));
    const s = summarizeRun(withJobs, timeline, { scenario: 'worker-errors', strategy: 'canary', intensity: 0.2, rate: 100, sloMs: 250 });
    expect(s.badRequests).toBe(35);
    expect(s.badJobs).toBe(withJobs.filter((r) => r.color === 'green' && r.endpoint === 'POST /api/process').length);
    expect(s.badJobs).toBeGreaterThan(0);
    expect(scenarioEnv('worker-errors', 0.2)).toEqual({ CHANGELENS_WORKER_REGRESSION: 'errors:0.2' });
    expect(scenarioEnv('errors', 0.3)).toEqual({ CHANGELENS_REGRESSION: 'errors:0.3' });
    expect(scenarioEnv('none', null)).toBeUndefined();
  });

  it('an A/A run has no bad requests and, promoted, no detection', () => {
    const { samples, timeline } = syntheticRun();
    const s = summarizeRun(samples, { ...timeline, outcome: 'promoted' }, { scenario: 'none', strategy: 'canary', intensity: null, rate: 100, sloMs: 250 });
    expect(s.badRequests).toBe(0);
    expect(s.candidateRequests).toBe(35);
    expect(s.timeToDetectMs).toBeNull();
    expect(s.timeToRollbackMs).toBeNull();
  });
});

describe('series and charts', () => {
  it('per second and colour, with the phase; CSV with a header', () => {
    const { samples, timeline } = syntheticRun();
    const rows = seriesRows(samples, timeline, new Map([[11, 0.1]]));
    const green11 = rows.find((r) => r.second === 11 && r.color === 'green')!;
    expect(green11).toMatchObject({ count: 10, errorRate: 1, phase: 'incident', weight: 0.1 });
    expect(rows.find((r) => r.second === 2 && r.color === 'blue')).toMatchObject({ count: 100, phase: 'baseline', errorRate: 0 });
    expect(rows.find((r) => r.second === 20)!.phase).toBe('recovery');
    const csv = seriesCsv(rows).split('\n');
    expect(csv[0]).toBe('second,color,count,p50_ms,p95_ms,p99_ms,error_rate,candidate_weight,phase');
    expect(csv).toContain('11,green,10,50,50,50,1.0000,0.1,incident');
  });

  it('charts: SVG that renders to a decodable PNG, with the phases shaded and the deploy and rollback marked', () => {
    const { samples, timeline } = syntheticRun();
    const { p99, errors } = runCharts(seriesRows(samples, timeline, new Map()), timeline, 'errors, canary');
    for (const svg of [p99, errors]) {
      expect(svg).toContain('data-phase="baseline"');
      expect(svg).toContain('data-phase="deploy → rollback"');
      expect(svg).toContain('data-marker="rollback"');
      expect(svg).toContain('data-marker="deploy"');
      expect(svg).toContain('data-series="green"');
      const png = svgToPng(svg);
      expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
      expect(png.readUInt32BE(16)).toBe(900); // IHDR width
      expect(png.readUInt32BE(20)).toBe(360); // IHDR height
    }
    expect(() => svgToPng(p99.slice(0, -10))).toThrow();
  });

  it('charts have their text: the title is drawn in the shipped font (ink where the title is, none without one)', () => {
    // scripts/install-system-deps.sh installs the font on every machine and in the image.
    expect(CHART_FONT_FILES.filter((f) => !existsSync(f))).toEqual([]);
    const chart = (title: string): string => lineChartSvg({ title, yLabel: 'ms', series: [{ name: 'blue', color: '#36c', points: [[0, 1], [1, 2]] }] });
    expect(inkIn(renderSvg(chart('P99 latency by colour')), TITLE_BOX)).toBeGreaterThan(200);
    expect(inkIn(renderSvg(chart('')), TITLE_BOX)).toBe(0);
  });

  it('the matrix: a comparison of medians, a CSV and an HTML report that links every run\'s charts', () => {
    const { samples, timeline } = syntheticRun();
    const a = summarizeRun(samples, timeline, { scenario: 'errors', strategy: 'canary', intensity: 0.3, rate: 100, sloMs: 250 });
    const b = { ...a, timeToDetectMs: 1500, timeToRollbackMs: 2000, badRequests: 15 };
    const c = { ...a, strategy: 'direct' as const, outcome: 'promoted', timeToDetectMs: null, timeToRollbackMs: null, badRequests: 1900 };
    const table = comparison([a, b, c]);
    expect(table).toEqual([
      { scenario: 'errors', strategy: 'canary', runs: 2, detectMs: 1500, rollbackMs: 2000, badRequests: 15, badJobs: 0, failedRequests: 35, worstP99Ms: a.worstP99Ms },
      { scenario: 'errors', strategy: 'direct', runs: 1, detectMs: null, rollbackMs: null, badRequests: 1900, badJobs: 0, failedRequests: 35, worstP99Ms: a.worstP99Ms },
    ]);
    expect(matrixCsv([a]).split('\n')[0]).toBe('scenario,strategy,outcome,time_to_detect_ms,time_to_rollback_ms,bad_requests,bad_jobs,failed_requests,slo_violations,worst_p99_ms,baseline_p99_ms,requests');
    const html = htmlReport([{ ...a, dir: 'errors-canary-1' }, { ...c, dir: 'errors-direct-1' }]);
    expect(html).toContain('<img src="errors-canary-1/p99.svg"');
    expect(html).toContain('<td>errors</td><td>direct</td><td>1</td><td>–</td>');
  });
});
