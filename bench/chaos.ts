// npm run bench:chaos [-- --rate 100 --seconds 12 --kill-at 3 --processes api-blue,api-green,worker-blue,redis,postgres,proxy]
// — what a crash costs. On one real appliance (both API colours up), for each process in turn: an
// open-model load at a fixed rate (GET /api/data and /api/work, and POST /api/process jobs), one
// kill -9 of that process a few seconds in, and then per process:
// - failed requests by route and status (0:<code>: no answer, e.g. 0:ECONNREFUSED, 0:ECONNRESET);
// - how long until the appliance is ready again;
// - restarts of the killed process and of any other (collateral);
// - jobs accepted (202) vs completed, completed more than once (worker log), lost;
// - the items table's checksum before and after.
// Aims (issue 18): no failed GET for API, worker and Redis kills; Postgres: failures only on the
// routes that use it, only until it is back; jobs: none lost, none run twice; no collateral restart.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { packageRoot } from '../lib/package-root.js';
import { reapOrphans } from '../supervisor/index.js';
import { baseEnv, cliPath, launchAppliance, type Appliance } from './harness.js';

const { values } = parseArgs({ options: {
  rate: { type: 'string', default: '100' }, seconds: { type: 'string', default: '12' }, 'kill-at': { type: 'string', default: '3' },
  processes: { type: 'string', default: 'api-blue,api-green,worker-blue,redis,postgres,proxy' },
} });
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const KILL_AT = Number(values['kill-at']);
const PROCESSES = values.processes.split(',').map((p) => p.trim());
if (!(RATE > 0 && RATE <= 2000) || !(SECONDS > KILL_AT && KILL_AT >= 1)) throw new Error('--rate 1-2000, --seconds > --kill-at ≥ 1');

/** The request mix, by share of arrivals. */
const MIX = [
  { route: 'GET /api/data', share: 0.7, init: {} as RequestInit, path: '/api/data?limit=5' },
  { route: 'GET /api/work', share: 0.2, init: {} as RequestInit, path: '/api/work?ms=5' },
  { route: 'POST /api/process', share: 0.1, init: { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"workMs":20}' } as RequestInit, path: '/api/process' },
];

interface Sample { route: string; status: number; ms: number; taskId?: string; error?: string }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cli(app: Appliance, args: string[]): Promise<number> {
  return new Promise((resolve) => spawn(process.execPath, [cliPath, ...args], { env: { ...baseEnv(), ...app.env }, stdio: 'ignore' }).once('exit', (code) => resolve(code ?? -1)));
}

/** Open model: arrivals on a schedule whatever the answers do; each answer recorded by route. */
function load(url: string): { samples: Sample[]; stop(): Promise<void> } {
  const samples: Sample[] = [];
  const inFlight = new Set<Promise<void>>();
  const t0 = performance.now();
  let sent = 0;
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) / 1000) * RATE);
    for (; sent < due; sent++) {
      const r = Math.random();
      const kind = r < MIX[0]!.share ? MIX[0]! : r < MIX[0]!.share + MIX[1]!.share ? MIX[1]! : MIX[2]!;
      const started = performance.now();
      const p = fetch(`${url}${kind.path}`, { ...kind.init, signal: AbortSignal.timeout(15_000) }).then(async (res) => {
        const body = await res.text();
        const taskId = res.status === 202 ? (JSON.parse(body) as { id: string }).id : undefined;
        samples.push({ route: kind.route, status: res.status, ms: performance.now() - started, ...(taskId ? { taskId } : {}) });
      }, (err: Error & { cause?: { code?: string } }) => { samples.push({ route: kind.route, status: 0, ms: performance.now() - started, error: err.cause?.code ?? err.name }); }).finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
  }, 5);
  return { samples, async stop() { clearInterval(timer); await Promise.all(inFlight); } };
}

async function allReady(app: Appliance, timeoutMs = 60_000): Promise<void> {
  for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(100)) {
    try {
      const s = await app.status();
      const online = s.processes.filter((p) => PROCESSES.includes(p.name) || p.name === 'proxy').every((p) => p.state === 'online');
      if (online && (await fetch(`${app.url}/readyz`)).status === 200) return;
    } catch { /* the supervisor or the proxy is coming back */ }
  }
  throw new Error('the appliance did not become ready again');
}

const checksum = async (db: pg.Pool): Promise<string> =>
  (await db.query<{ sum: string }>("SELECT md5(string_agg(id || ':' || category || ':' || name || ':' || price_cents, ',' ORDER BY id)) AS sum FROM app.items")).rows[0]!.sum;

const app = await launchAppliance({ env: { CHANGELENS_SEED_ITEMS: '2000', CHANGELENS_JOB_CLAIM_IDLE_MS: '2000' } });
const results: unknown[] = [];
try {
  await app.ready;
  if (PROCESSES.includes('api-green') && await cli(app, ['process', 'start', 'api-green']) !== 0) throw new Error('could not start api-green');
  const db = new pg.Pool({ connectionString: `postgres://changelens:${encodeURIComponent(app.secrets().pgPassword)}@127.0.0.1:${app.ports.pgPort}/changelens`, max: 2 });
  db.on('error', () => {});
  db.on('connect', (c) => c.on('error', () => {}));
  for (const name of PROCESSES) {
    await allReady(app);
    const before = (await app.status()).processes;
    const victim = before.find((p) => p.name === name);
    if (!victim?.pid) { console.error(`${name}: not running, skipped`); continue; }
    const sumBefore = await checksum(db);
    const logFrom = app.records.length;
    const l = load(app.url);
    await sleep(KILL_AT * 1000);
    const killedAt = Date.now();
    process.kill(victim.pid, 'SIGKILL');
    await allReady(app);
    const readyMs = Date.now() - killedAt;
    await sleep(Math.max(0, SECONDS * 1000 - (Date.now() - killedAt) - KILL_AT * 1000));
    await l.stop();
    const after = (await app.status()).processes;
    const restarts = Object.fromEntries(after.map((p) => [p.name, p.restarts - (before.find((b) => b.name === p.name)?.restarts ?? 0)]).filter(([, n]) => (n as number) > 0));
    // Jobs: every accepted one completed, none twice.
    const accepted = l.samples.filter((s) => s.taskId).map((s) => s.taskId!);
    let pending = accepted;
    for (const end = Date.now() + 30_000; pending.length > 0 && Date.now() < end; await sleep(250)) {
      const { rows } = await db.query<{ id: string }>("SELECT id FROM app.tasks WHERE id = ANY($1::uuid[]) AND state = 'completed'", [pending]);
      const done = new Set(rows.map((r) => r.id));
      pending = pending.filter((id) => !done.has(id));
    }
    const completions = new Map<string, number>();
    for (const r of app.records.slice(logFrom)) if (r.service === 'worker' && r.msg === 'job completed' && typeof r.taskId === 'string') completions.set(r.taskId, (completions.get(r.taskId) ?? 0) + 1);
    const failed: Record<string, Record<string, number>> = {};
    for (const s of l.samples) {
      if (s.status >= 200 && s.status < 300) continue;
      const key = s.status === 0 ? `0:${s.error ?? 'no answer'}` : String(s.status);
      (failed[s.route] ??= {})[key] = (failed[s.route]?.[key] ?? 0) + 1;
    }
    const row = {
      killed: name, requests: l.samples.length, failed, readyAgainMs: readyMs, restarts,
      jobs: { accepted: accepted.length, completed: accepted.length - pending.length, lost: pending.length, completedTwice: [...completions.values()].filter((n) => n > 1).length },
      itemsIntact: (await checksum(db)) === sumBefore,
      slowestMs: Math.round(Math.max(...l.samples.map((s) => s.ms))),
    };
    results.push(row);
    const failedText = Object.entries(failed).map(([route, by]) => `${route} ${Object.entries(by).map(([st, n]) => `${n}×${st}`).join(' ')}`).join('; ') || 'none';
    console.log(`${name.padEnd(10)} ${String(row.requests).padStart(5)} requests, failed: ${failedText}; ready again ${(readyMs / 1000).toFixed(1)} s; restarts ${JSON.stringify(restarts)}; jobs ${row.jobs.accepted} accepted, ${row.jobs.completed} completed, ${row.jobs.lost} lost, ${row.jobs.completedTwice} twice; items ${row.itemsIntact ? 'intact' : 'CHANGED'}; slowest ${row.slowestMs} ms`);
  }
  await db.end();
} finally {
  await app.stop('SIGTERM');
  await reapOrphans(join(app.dataDir, 'state', 'pm2'));
}
const dir = join(packageRoot, 'bench', 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `chaos-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ rate: RATE, seconds: SECONDS, killAt: KILL_AT, results }, null, 2) + '\n');
console.log(`wrote ${file}`);
