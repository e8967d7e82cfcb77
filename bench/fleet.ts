// npm run bench:fleet — one verdict for N instances, measured. For the same total open-model rate
// through nginx on 1 and on 3 instances (external mode, one Postgres, one Redis): how long a bad
// canary takes to be rolled back and how many requests its candidate served (the windows decide:
// no 5xx trip, no sequential test, so what is compared is the merged verdict); how long the
// rollback takes to reach every other instance (the controller's swap to each follower's); and, on
// 3, how long after kill -9 of the controller's whole appliance another instance holds the lease.
// Prints a table and writes JSON to bench/results/.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isTerminal } from '../lib/contracts/phases.js';
import { packageRoot } from '../lib/package-root.js';
import { startFleetHarness } from './fleet-harness.js';
import type { Appliance, LogRecord } from './harness.js';
import { startLoad } from './load.js';

const { values } = parseArgs({ options: {
  runs: { type: 'string', default: '3' }, rate: { type: 'string', default: '120' }, sizes: { type: 'string', default: '1,3' }, failovers: { type: 'string', default: '2' },
} });
const runs = Number(values.runs);
const rate = Number(values.rate);
const failovers = Number(values.failovers);
const sizes = values.sizes!.split(',').map(Number);
if (!Number.isInteger(runs) || runs < 1 || !(rate > 0) || !Number.isInteger(failovers) || failovers < 0 || sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 5)) {
  throw new Error('--runs: a positive integer; --rate: requests per second > 0; --sizes: instance counts 1-5, e.g. 1,3; --failovers: an integer ≥ 0');
}

const SETTINGS = { CHANGELENS_CANARY_STEPS: '50,100', CHANGELENS_STEP_SECONDS: '30', CHANGELENS_WINDOW_SECONDS: '3', CHANGELENS_MIN_SAMPLES: '20', CHANGELENS_INSPECT_SECONDS: '2', CHANGELENS_KEEP_WARM_SECONDS: '2' };
const BAD = { env: { CHANGELENS_REGRESSION: 'errors:0.2' }, tripConsecutive5xx: 0, sequential: false };

interface Round { instances: number; detectMs: number; candidateRequests: number; propagationMs: number[] }
interface Failover { ms: number; epoch: number }

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const timeOf = (r: LogRecord): number => Date.parse(String(r.time));
const rounds: Round[] = [];
const failoverRounds: Failover[] = [];
let n = 0;

for (const size of sizes) {
  const fleet = await startFleetHarness(SETTINGS);
  try {
    const ids = Array.from({ length: size }, (_, i) => `bench-${String.fromCharCode(97 + i)}`);
    await Promise.all(ids.map((id) => fleet.launch(id)));
    const url = await fleet.balance();
    const controller = async (): Promise<Appliance> => {
      for (;;) {
        for (const app of fleet.live()) if ((await fleet.api(app, 'GET', '/api/status')).fleet.controller) return app;
        await sleep(200);
      }
    };
    const load = startLoad(`${url}/api/work?ms=5`, rate);
    try {
      await sleep(5_000); // the stable colour's windows full, as in production
      for (let run = 0; run < runs; run++) {
        const lead = await controller();
        const d0 = await fleet.api(lead, 'POST', '/api/deployments', { version: `fleet-bench-${Date.now().toString(36)}-${n++}`, ...BAD });
        let d: any;
        do {
          await sleep(250);
          d = await fleet.api(lead, 'GET', `/api/deployments/${d0.id}`);
        } while (!isTerminal(d.status.phase) || d.result?.rollback_timing?.settled === false);
        if (d.status.phase !== 'rolled_back') throw new Error(`${size} instance(s): expected a rollback, got ${d.status.phase} (${d.status.reason})`);
        const audit = (await fleet.api(lead, 'GET', '/api/audit?since=10m')).events;
        const ready = audit.find((e: any) => e.deploymentId === d.id && e.eventType === 'ready');
        const swappedAt = Date.parse(d.result.rollback_timing.swapped_at);
        // Each follower's own line when the candidate left its traffic (the signal, or the row).
        const propagationMs = await Promise.all(fleet.live().filter((a) => a !== lead).map(async (a) =>
          timeOf(await a.waitForRecord((r) => r.service === 'proxy' && r.msg === 'the candidate left the traffic on this instance' && r.deployment === d.id, 10_000)) - swappedAt));
        await sleep(500);
        rounds.push({ instances: size, detectMs: swappedAt - Date.parse(ready.at), candidateRequests: load.served(d.candidateColor, Date.parse(ready.at)).length, propagationMs });
        console.error(`${size} instance(s), round ${run + 1}: rolled back ${rounds.at(-1)!.detectMs} ms after the candidate took traffic; reached the others in ${propagationMs.join(', ') || '-'} ms`);
        await sleep(3_000); // its inspection time over: the candidate colour stopped again
      }
      for (let f = 0; size > 1 && f < failovers; f++) {
        const lead = await controller();
        const leadId = [...fleet.instances].find(([, a]) => a === lead)![0];
        const killedAt = await fleet.kill(lead);
        const others = fleet.live();
        const took = await Promise.race(others.map((a) => a.waitForRecord((r) => r.service === 'proxy' && r.msg === 'took the controller lease: this instance drives deployments' && timeOf(r) >= killedAt, 30_000)));
        failoverRounds.push({ ms: timeOf(took) - killedAt, epoch: Number(took.epoch) });
        console.error(`failover ${f + 1}: the lease passed ${failoverRounds.at(-1)!.ms} ms after kill -9 of ${leadId}'s appliance`);
        // A replacement joins under a new name (its port is new too): nginx is pointed at the live ones again.
        fleet.instances.delete(leadId);
        await fleet.launch(`${leadId}-${f + 1}`);
        await fleet.balance();
      }
    } finally {
      await load.stop();
    }
  } finally {
    await fleet.stop();
  }
}

const quantile = (xs: number[], q: number): number => { const s = [...xs].sort((a, b) => a - b); return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!; };
const rows = sizes.map((size) => {
  const own = rounds.filter((r) => r.instances === size);
  const propagation = own.flatMap((r) => r.propagationMs);
  return {
    instances: size, rounds: own.length,
    detectMsMedian: quantile(own.map((r) => r.detectMs), 0.5),
    candidateRequestsMedian: quantile(own.map((r) => r.candidateRequests), 0.5),
    propagationMsP50: quantile(propagation, 0.5), propagationMsP99: quantile(propagation, 0.99), propagationSamples: propagation.length,
  };
});
const base = rows.find((r) => r.instances === 1);
console.log(`fleet under ${rate} req/s in total through nginx, canary 50 %, windows of 3 s (2 failing roll back), errors 20 % on the candidate`);
console.log('instances  detect→rollback  vs 1 instance  candidate requests  propagation p50 / p99 (n)');
for (const r of rows) {
  const delta = base && r !== base ? `${((r.detectMsMedian - base.detectMsMedian) / 1000 >= 0 ? '+' : '')}${((r.detectMsMedian - base.detectMsMedian) / 1000).toFixed(1)} s` : '-';
  const propagation = r.propagationSamples > 0 ? `${r.propagationMsP50} / ${r.propagationMsP99} ms (${r.propagationSamples})` : '- (no other instance)';
  console.log(`${String(r.instances).padStart(9)}  ${`${(r.detectMsMedian / 1000).toFixed(1)} s`.padStart(15)}  ${delta.padStart(13)}  ${String(r.candidateRequestsMedian).padStart(18)}  ${propagation}`);
}
if (failoverRounds.length > 0) {
  const ms = failoverRounds.map((f) => f.ms);
  console.log(`failover (kill -9 of the controller's appliance → another holds the lease): median ${quantile(ms, 0.5)} ms, max ${Math.max(...ms)} ms over ${ms.length}`);
}
console.log('aims (issue 19): 3 instances detect within 1 s of one; propagation p99 ≤ 1 s; failover ≤ 10 s');
const dir = join(packageRoot, 'bench', 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `fleet-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ rate, runs, sizes, rows, rounds, failovers: failoverRounds }, null, 2) + '\n');
console.log(`wrote ${file}`);
