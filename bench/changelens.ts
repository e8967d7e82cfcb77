// npm run bench:changelens — a small matrix on a throwaway appliance: the seed's regressions
// (errors, dependency latency, CPU) × the three strategies, plus an A/A canary, at 100 req/s;
// writes per-run CSV/JSON/charts and report.html under bench/results/, prints the comparison table.
//   npm run bench:changelens [-- --rate 100 --repetitions 1 --scenarios errors,dependency,cpu --strategies canary,bluegreen,direct]
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../lib/package-root.js';
import { reapOrphans } from '../supervisor/index.js';
import { launchAppliance } from './harness.js';
import { comparison, runMatrix, SCENARIOS, STRATEGIES, type RunSummary, type Scenario, type Strategy } from './scenario.js';

const { values } = parseArgs({ options: { rate: { type: 'string', default: '100' }, repetitions: { type: 'string', default: '1' }, scenarios: { type: 'string', default: 'errors,dependency,cpu' }, strategies: { type: 'string', default: 'canary,bluegreen,direct' } } });
const scenarios = values.scenarios.split(',') as Scenario[];
const strategies = values.strategies.split(',') as Strategy[];
for (const s of scenarios) if (!SCENARIOS.includes(s)) throw new Error(`--scenarios: ${s} is not one of ${SCENARIOS.join(', ')}`);
for (const s of strategies) if (!STRATEGIES.includes(s)) throw new Error(`--strategies: ${s} is not one of ${STRATEGIES.join(', ')}`);
const out = join(packageRoot, 'bench', 'results', `changelens-${new Date().toISOString().replace(/[:.]/g, '-')}`);

const app = await launchAppliance({ env: { CHANGELENS_SEED_ITEMS: '2000', CHANGELENS_MONITOR_RULES: '[]', CHANGELENS_BACKUP_PG_SCHEDULE: 'off', CHANGELENS_BACKUP_REDIS_SCHEDULE: 'off', CHANGELENS_INSPECT_SECONDS: '0', CHANGELENS_KEEP_WARM_SECONDS: '0' } });
try {
  await app.ready;
  const common = { url: app.url, token: app.secrets().adminToken, rate: Number(values.rate), durationSeconds: 60, onProgress: (l: string) => console.error(l) };
  const runs: RunSummary[] = await runMatrix({ ...common, scenarios, strategies, repetitions: Number(values.repetitions), out });
  // The A/A run: a release identical to the running one must be promoted, never rolled back.
  runs.push(...await runMatrix({ ...common, scenarios: ['none'], strategies: ['canary'], repetitions: 1, out: join(out, 'aa') }));
  console.log(`bench:changelens — ${runs.length} runs at ${values.rate} req/s (medians; detect from the candidate's first request, rollback from the deploy call)`);
  console.log('scenario       strategy   outcome(s)        detect ms  rollback ms  bad requests  bad jobs  failed  worst P99 ms');
  for (const c of comparison(runs)) {
    const outcomes = runs.filter((r) => r.scenario === c.scenario && r.strategy === c.strategy).map((r) => r.outcome).join(',');
    console.log(`${c.scenario.padEnd(14)} ${c.strategy.padEnd(10)} ${outcomes.padEnd(17)} ${String(c.detectMs ?? '–').padStart(9)}  ${String(c.rollbackMs ?? '–').padStart(11)}  ${String(c.badRequests).padStart(12)}  ${String(c.badJobs).padStart(8)}  ${String(c.failedRequests).padStart(6)}  ${c.worstP99Ms.toFixed(1).padStart(12)}`);
  }
  console.log(`report: ${join(out, 'report.html')}`);
} finally {
  await app.stop('SIGTERM');
  await reapOrphans(join(app.dataDir, 'state', 'pm2'));
}
