// npm run bench:rollback — how fast a bad canary is undone, measured on the real appliance under
// open-model load. For each regression (errors, latency) and each round: the time from the
// candidate taking traffic to the rollback verdict, the time from the verdict to the routing swap
// (in process), and how many requests reached the candidate after the swap, as the proxy counted
// them and as the load generator saw them (requests that *started* after the swap and were served
// by the candidate). Prints a table and writes JSON to bench/results/.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isTerminal } from '../lib/contracts/phases.js';
import { packageRoot } from '../lib/package-root.js';
import { reapOrphans } from '../supervisor/index.js';
import { adminCall, launchAppliance, type Appliance } from './harness.js';
import { startLoad } from './load.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, rate: { type: 'string', default: '200' } } });
const runs = Number(values.runs);
const rate = Number(values.rate);
if (!Number.isInteger(runs) || runs < 1 || !(rate > 0)) throw new Error('--runs: a positive integer; --rate: requests per second > 0');

const SCENARIOS = [
  { name: 'errors 50%', regression: 'errors:0.5' },
  { name: 'latency +100 ms', regression: 'dependency:100' },
] as const;

interface Round {
  scenario: string;
  detectMs: number;
  verdictToSwapUs: number;
  proxyCountedAfterSwap: number;
  clientSawAfterSwap: number;
  inFlightAtSwap: number;
  candidateRequests: number;
}

const api = (app: Appliance, token: string, method: string, path: string, body?: unknown): Promise<any> => adminCall(app.url, token, method, path, body);

const app = await launchAppliance({ env: { CHANGELENS_SEED_ITEMS: '500', CHANGELENS_CANARY_STEPS: '10,100', CHANGELENS_STEP_SECONDS: '60' } });
const rounds: Round[] = [];
try {
  await app.ready;
  const token = app.secrets().adminToken;
  let n = 0;
  for (let run = 0; run < runs; run++) {
    for (const scenario of SCENARIOS) {
      const load = startLoad(`${app.url}/api/work?ms=5`, rate);
      try {
        // Let the stable colour fill its windows first, as in production.
        await new Promise((r) => setTimeout(r, 3_000));
        const d0 = await api(app, token, 'POST', '/api/deployments', { version: `bench-${Date.now().toString(36)}-${n++}`, env: { CHANGELENS_REGRESSION: scenario.regression } });
        let d: any;
        for (;;) {
          d = await api(app, token, 'GET', `/api/deployments/${d0.id}`);
          // A rollback's timing is final once the requests in flight at the swap settled.
          if (isTerminal(d.status.phase) && d.result?.rollback_timing?.settled !== false) break;
          await new Promise((r) => setTimeout(r, 250));
        }
        await new Promise((r) => setTimeout(r, 500)); // let requests in flight finish
        if (d.status.phase !== 'rolled_back') throw new Error(`${scenario.name}: expected a rollback, got ${d.status.phase}`);
        const audit = (await api(app, token, 'GET', '/api/audit?since=10m')).events;
        const ready = audit.find((e: any) => e.deploymentId === d.id && e.eventType === 'ready');
        const rb = d.result.rollback_timing;
        const swappedAt = Date.parse(rb.swapped_at);
        const candidate = d.candidateColor;
        rounds.push({
          scenario: scenario.name,
          detectMs: swappedAt - Date.parse(ready.at),
          verdictToSwapUs: rb.verdict_to_swap_us,
          proxyCountedAfterSwap: rb.candidate_requests_after_swap,
          clientSawAfterSwap: load.served(candidate, swappedAt + 1).length,
          inFlightAtSwap: rb.candidate_in_flight_at_swap,
          candidateRequests: load.served(candidate).length,
        });
        console.error(`${scenario.name} round ${run + 1}: rolled back after ${rounds.at(-1)!.detectMs} ms`);
      } finally {
        await load.stop();
      }
    }
  }
} finally {
  await app.stop('SIGTERM');
  await reapOrphans(join(app.dataDir, 'state', 'pm2'));
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]!; };
const rows = SCENARIOS.map(({ name }) => {
  const own = rounds.filter((r) => r.scenario === name);
  return {
    scenario: name, rounds: own.length,
    detectMsMedian: median(own.map((r) => r.detectMs)),
    verdictToSwapUsMax: Math.max(...own.map((r) => r.verdictToSwapUs)),
    afterSwapProxyMax: Math.max(...own.map((r) => r.proxyCountedAfterSwap)),
    afterSwapClientMax: Math.max(...own.map((r) => r.clientSawAfterSwap)),
    inFlightAtSwapMedian: median(own.map((r) => r.inFlightAtSwap)),
  };
});
console.log(`rollback under ${rate} req/s, canary 10 %, the judge's defaults: fast trips, early verdicts, 5 s windows × 2`);
console.log('scenario           detect→rollback  verdict→swap  after swap (proxy / client)  in flight at swap');
for (const r of rows) {
  console.log(`${r.scenario.padEnd(18)} ${`${(r.detectMsMedian / 1000).toFixed(1)} s`.padStart(15)}  ${`${r.verdictToSwapUsMax} µs`.padStart(12)}  ${`${r.afterSwapProxyMax} / ${r.afterSwapClientMax}`.padStart(27)}  ${String(r.inFlightAtSwapMedian).padStart(17)}`);
}
console.log('for scale: Flagger judges every 60 s, Argo Rollouts\' examples every 5 min (FIELD-NOTES.md)');
const dir = join(packageRoot, 'bench', 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `rollback-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ rate, runs, rows, rounds }, null, 2) + '\n');
console.log(`wrote ${file}`);
