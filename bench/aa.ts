// npm run bench:aa [-- --runs 30 --regression-runs 10 --loads closed,open200,open20+al40] — A/A canaries on the
// real appliance: a release identical to the stable one, canaried again and again under load, must
// be promoted; a regressed one (errors 10 %, dependency +100 ms) must still be rolled back, and fast.
//
// Loads: `closed` is wrk (1 thread, 4 connections) on GET /api/data, a closed loop that keeps the
// 2-core box busy (the load the issue-16 false rollbacks came from); `open200` is the project's
// open-model generator at 200 req/s; `open20+al40` is 20 req/s with the deployments' built-in
// analysis load at 40 req/s per colour (a box with little traffic). Each canary: steps 25,50,100, 10 s each, 5 s windows, the
// appliance's judge as configured. Beside it, the seed's plain rule (candidate P99 > 1.5 × stable
// P99 or errors > 5 % in a 5 s window, no minimum sample count, 2 in a row) is replayed on the same
// deployment's stored 5 s buckets: what it would have done with the same traffic.
//
// Prints false rollbacks with their Wilson 95 % interval, the A/A windows' P99 excess over the
// stable colour (what a practical-significance floor must clear), and time to detect; writes JSON.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isTerminal } from '../lib/contracts/phases.js';
import { packageRoot } from '../lib/package-root.js';
import { wilson } from '../monitoring/sequential.js';
import { reapOrphans } from '../supervisor/index.js';
import { adminCall, launchAppliance, type Appliance } from './harness.js';
import { startLoad } from './load.js';

const { values } = parseArgs({ options: {
  runs: { type: 'string', default: '30' }, 'regression-runs': { type: 'string', default: '10' }, loads: { type: 'string', default: 'closed,open200,open20+al40' },
} });
const RUNS = Number(values.runs);
const REGRESSION_RUNS = Number(values['regression-runs']);
const LOADS = values.loads.split(',').map((l) => l.trim());
if (!Number.isInteger(RUNS) || RUNS < 0 || !Number.isInteger(REGRESSION_RUNS) || REGRESSION_RUNS < 0) throw new Error('--runs, --regression-runs: integers ≥ 0');
const LOAD_SPEC = /^open(\d+)(?:\+al(\d+))?$/;
for (const l of LOADS) if (l !== 'closed' && !LOAD_SPEC.test(l)) throw new Error(`--loads: closed, openN (N req/s) or openN+alM (with an analysis load of M req/s per colour), got ${l}`);

const PATH = '/api/data';
const CASES = [
  { kind: 'A/A', env: {} as Record<string, string>, runs: RUNS },
  { kind: 'errors 10 %', env: { CHANGELENS_REGRESSION: 'errors:0.1' }, runs: REGRESSION_RUNS },
  { kind: 'dependency +100 ms', env: { CHANGELENS_REGRESSION: 'dependency:100/0' }, runs: REGRESSION_RUNS },
];

interface Run {
  load: string;
  kind: string;
  outcome: string;
  reason: string | null;
  /** Candidate took traffic (ready) → rollback swap, ms; null when not rolled back. */
  detectMs: number | null;
  /** 'too short': ChangeLens ended it before the seed rule had two windows to judge. */
  seedRule: 'rolled_back' | 'promoted' | 'too short';
  /**
   * Per judged window: candidate P99 − stable P99 and their ratio (A/A: what noise looks like), the
   * stable colour's recent range the judge used (null: none yet), and its P99 rule's verdict.
   */
  windows: Array<{ excessMs: number; ratio: number; candidate: number; stable: number; range: number | null; failed: boolean }>;
}

const api = (app: Appliance, token: string, method: string, path: string, body?: unknown): Promise<any> => adminCall(app.url, token, method, path, body);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function startClosedLoop(url: string): { stop(): Promise<void> } {
  const child: ChildProcess = spawn('wrk', ['-t1', '-c4', '-d3600s', url], { stdio: 'ignore' });
  child.once('error', (err) => { throw new Error(`wrk: ${err.message} (scripts/install-system-deps.sh --test installs it)`); });
  return { stop: async () => { child.kill('SIGINT'); await new Promise((r) => child.once('exit', r)); } };
}

/** The seed's rule on the stored 5 s buckets: fail on P99 > 1.5× or errors > 5 %, roll back on 2 in a row. */
function seedRule(buckets: Array<{ color: string; startMs: number; count: number; errors: number; p99Ms: number }>, candidate: string): 'rolled_back' | 'promoted' | 'too short' {
  const starts = [...new Set(buckets.map((b) => b.startMs))].sort((a, b) => a - b);
  if (starts.length < 2) return 'too short';
  let streak = 0;
  for (const t of starts) {
    const c = buckets.find((b) => b.startMs === t && b.color === candidate);
    const s = buckets.find((b) => b.startMs === t && b.color !== candidate);
    if (!c || !s || c.count === 0) continue;
    const fail = c.p99Ms > 1.5 * s.p99Ms || c.errors / c.count > 0.05;
    streak = fail ? streak + 1 : 0;
    if (streak >= 2) return 'rolled_back';
  }
  return 'promoted';
}

/** The appliance's P99 floor (its default), for the replay. */
const FLOOR_MS = 20;
const app = await launchAppliance({ env: { CHANGELENS_SEED_ITEMS: '500', CHANGELENS_CANARY_STEPS: '25,50,100', CHANGELENS_STEP_SECONDS: '10', CHANGELENS_WINDOW_SECONDS: '5', CHANGELENS_KEEP_WARM_SECONDS: '5', CHANGELENS_INSPECT_SECONDS: '5' } });
const runs: Run[] = [];
let n = 0;
try {
  await app.ready;
  const token = app.secrets().adminToken;
  for (const load of LOADS) {
    const spec = LOAD_SPEC.exec(load);
    const generator = spec ? startLoad(`${app.url}${PATH}`, Number(spec[1])) : startClosedLoop(`${app.url}${PATH}`);
    const analysisLoad = spec?.[2] ? { analysisLoad: `${spec[2]},${PATH}` } : {};
    try {
      await sleep(10_000); // the stable colour warm, its windows full
      for (const c of CASES) {
        for (let i = 0; i < c.runs; i++) {
          const d0 = await api(app, token, 'POST', '/api/deployments', { version: `aa-${Date.now().toString(36)}-${n++}`, env: c.env, ...analysisLoad });
          let d: any;
          const deadline = Date.now() + 180_000;
          for (;;) {
            d = await api(app, token, 'GET', `/api/deployments/${d0.id}`);
            if (isTerminal(d.status.phase) && d.result?.rollback_timing?.settled !== false) break;
            if (d.status.phase === 'paused' || Date.now() > deadline) {
              await api(app, token, 'POST', '/api/deployment/abort', { reason: 'bench:aa: no verdict' });
              continue;
            }
            await sleep(250);
          }
          const audit = (await api(app, token, 'GET', '/api/audit?since=10m')).events;
          const ready = audit.find((e: any) => e.deploymentId === d.id && e.eventType === 'ready');
          const swapped = d.result?.rollback_timing?.swapped_at;
          const exported = await api(app, token, 'GET', `/api/deployments/${d.id}/export`);
          const buckets = exported.metrics.buckets.map((b: any) => ({ color: b.color, startMs: Date.parse(b.timestamp), count: b.response_count, errors: b.errors, p99Ms: b.p99_ms }));
          const windows = d.verdicts.filter((v: any) => v.verdict !== 'insufficient' && v.rules.some((r: any) => r.rule === 'p99_ratio' && Number.isFinite(r.observed)))
            .map((v: any) => {
              const r = v.rules.find((x: any) => x.rule === 'p99_ratio');
              const m = /p99 ([\d.]+)ms = [\d.]+× stable ([\d.]+)ms/.exec(r.message);
              const [candidate, stable] = m ? [Number(m[1]), Number(m[2])] : [NaN, NaN];
              const range = /recent range \(up to ([\d.]+)ms\)/.exec(r.message);
              return { excessMs: candidate - stable, ratio: r.observed, candidate, stable, range: range ? Number(range[1]) : null, failed: r.verdict === 'fail' };
            });
          runs.push({
            load, kind: c.kind, outcome: d.status.phase, reason: d.status.reason,
            detectMs: swapped && ready ? Date.parse(swapped) - Date.parse(ready.at) : null,
            seedRule: seedRule(buckets, d.candidateColor), windows,
          });
          const r = runs.at(-1)!;
          console.error(`${load} ${c.kind} ${i + 1}/${c.runs}: ${r.outcome}${r.reason ? ` (${r.reason})` : ''}; seed rule: ${r.seedRule}`);
        }
      }
    } finally {
      await generator.stop();
    }
  }
} finally {
  await app.stop('SIGTERM');
  await reapOrphans(join(app.dataDir, 'state', 'pm2'));
}

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
const quantile = (xs: number[], q: number) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : NaN; };
console.log('bench:aa — canaries on the real appliance (steps 25,50,100 × 10 s, 5 s windows)');
console.log('load      case                 runs  ChangeLens                                  seed rule (same traffic)');
const rows = [];
for (const load of LOADS) {
  for (const c of CASES) {
    const own = runs.filter((r) => r.load === load && r.kind === c.kind);
    if (own.length === 0) continue;
    const rolled = own.filter((r) => r.outcome === 'rolled_back').length;
    const seed = own.filter((r) => r.seedRule === 'rolled_back').length;
    const [lo, hi] = wilson(rolled, own.length);
    const [slo, shi] = wilson(seed, own.length);
    const detect = own.map((r) => r.detectMs).filter((x): x is number => x !== null);
    const lens = c.kind === 'A/A'
      ? `false rollbacks ${rolled}/${own.length} = ${pct(rolled / own.length)} (95 % ${pct(lo)}-${pct(hi)})`
      : `rolled back ${rolled}/${own.length}, detect median ${(quantile(detect, 0.5) / 1000).toFixed(1)} s, P90 ${(quantile(detect, 0.9) / 1000).toFixed(1)} s`;
    const short = own.filter((r) => r.seedRule === 'too short').length;
    const seedText = c.kind === 'A/A' ? `false rollbacks ${seed}/${own.length} (95 % ${pct(slo)}-${pct(shi)})` : `rolled back ${seed}/${own.length - short}${short ? ` (${short} ended before its 2 windows)` : ''}`;
    console.log(`${load.padEnd(9)} ${c.kind.padEnd(20)} ${String(own.length).padStart(4)}  ${lens.padEnd(56)} ${seedText}`);
    rows.push({ load, kind: c.kind, runs: own.length, rolledBack: rolled, wilson95: [lo, hi], seedRolledBack: seed, detectMs: detect });
  }
  for (const c of CASES) {
    // The P99 rule three ways on the same windows: the seed's ratio alone, with the floor, and with
    // the floor and the stable colour's range (what the judge did): windows failed, and runs with two
    // failing windows in a row (what rolls back, other rules and early verdicts aside).
    const own = runs.filter((r) => r.load === load && r.kind === c.kind && r.windows.length > 0);
    if (own.length === 0 || c.kind === 'errors 10 %') continue;
    const floor = FLOOR_MS;
    const variants = {
      'ratio': (w: Run['windows'][number]) => w.ratio > 1.5,
      'ratio+floor': (w: Run['windows'][number]) => w.ratio > 1.5 && w.excessMs > floor,
      'ratio+floor+range': (w: Run['windows'][number]) => w.failed,
    };
    const cells = Object.entries(variants).map(([name, fails]) => {
      const windows = own.flatMap((r) => r.windows).filter(fails).length;
      const tripped = own.filter((r) => r.windows.some((w, i) => i > 0 && fails(w) && fails(r.windows[i - 1]!))).length;
      return `${name} ${windows} windows, ${tripped} runs`;
    });
    console.log(`${load.padEnd(9)} ${c.kind.padEnd(20)} P99 rule replayed on ${own.flatMap((r) => r.windows).length} windows of ${own.length} runs, failing: ${cells.join('; ')}`);
  }
  const aa = runs.filter((r) => r.load === load && r.kind === 'A/A').flatMap((r) => r.windows);
  if (aa.length > 0) {
    const ex = aa.map((w) => w.excessMs);
    console.log(`${load.padEnd(9)} A/A windows' candidate P99 − stable P99 (${aa.length} windows): median ${quantile(ex, 0.5).toFixed(1)} ms, P90 ${quantile(ex, 0.9).toFixed(1)} ms, P99 ${quantile(ex, 0.99).toFixed(1)} ms, max ${Math.max(...ex).toFixed(1)} ms; ratio P99 ${quantile(aa.map((w) => w.ratio), 0.99).toFixed(2)}×`);
  }
}
const dir = join(packageRoot, 'bench', 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `aa-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ loads: LOADS, rows, runs }, null, 2) + '\n');
console.log(`wrote ${file}`);
