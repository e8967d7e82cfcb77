// The benchmark end to end on one appliance: `changelens bench matrix` runs a regressed release
// under canary (rolled back) and direct (promoted, then reset), its load sent by two `bench worker`s
// joined to a coordinator on the appliance's own Redis (the demo's way; `changelens demo` in the
// dashboard's test runs a scenario with the load generated in-process), and writes every run's
// series, summary and charts plus the comparison report. And a locustfile from `bench locust`, run
// by Debian's Locust (a master and two workers) against it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { baseEnv, cliPath, freePorts, launchAppliance, type Appliance } from '../../bench/harness.js';
import { eventually } from '../helpers/eventually.js';
import { runCli } from '../helpers/cli.js';
import { svgToPng } from '../../bench/chart.js';
import { reapOrphans } from '../../supervisor/index.js';

vi.setConfig({ testTimeout: 180_000 });
let app: Appliance;
const started: ChildProcess[] = [];

function spawnOf(command: string, args: string[], env: Record<string, string> = {}): { child: ChildProcess; out: () => string } {
  const child = spawn(command, args, { env: { ...baseEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.resume();
  return { child, out: () => out };
}
const exitOf = (child: ChildProcess): Promise<number | null> => (child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((r) => child.once('exit', (code) => r(code))));

beforeAll(async () => {
  app = await launchAppliance({ env: { CHANGELENS_SEED_ITEMS: '200', CHANGELENS_MONITOR_RULES: '[]', CHANGELENS_INSPECT_SECONDS: '0', CHANGELENS_KEEP_WARM_SECONDS: '0' } });
  await app.ready;
});

afterAll(async () => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (app && app.child.exitCode === null) await app.stop('SIGTERM');
  if (app) await reapOrphans(join(app.dataDir, 'state', 'pm2'));
});

it('a short matrix through two load workers: canary rolls the errors back, direct ships them; series, summaries, charts and the report are written', async () => {
  // The coordinator on the appliance's own Redis (no --redis: read from its data dir), two workers.
  const coordinator = spawnOf(process.execPath, [cliPath, 'bench', 'coordinator', '--json'], app.env);
  const lines = (): any[] => coordinator.out().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  const joinString = await eventually('the join string', async () => lines()[0]?.join as string | undefined);
  expect(joinString).toMatch(/^redis:\/\/default:[^@]+@127\.0\.0\.1:\d+#/);
  for (const name of ['one', 'two']) spawnOf(process.execPath, [cliPath, 'bench', 'worker', '--join', joinString, '--name', name], app.env);
  await eventually('two workers joined', async () => (lines().filter((l) => l.event === 'joined').length === 2 ? true : undefined));

  const out = mkdtempSync(join(tmpdir(), 'bench-matrix-'));
  const res = await runCli(['bench', 'matrix', '--scenarios', 'errors', '--strategies', 'canary,direct', '--rate', '50', '--coordinator', joinString, '--out', out, '--json'], app.env, 170_000);
  expect(res.code, res.stderr).toBe(0);
  // Both runs went through the coordinator, each shared by its two workers.
  const runsStarted = lines().filter((l) => l.kind === 'run');
  expect(runsStarted).toHaveLength(2);
  for (const r of runsStarted) expect(Object.keys(r.epochs[0].weights)).toHaveLength(2);
  const { runs, comparison } = JSON.parse(res.stdout);
  expect(runs.map((r: any) => [r.strategy, r.outcome])).toEqual([['canary', 'rolled_back'], ['direct', 'promoted']]);
  const [canary, direct] = runs;
  expect(canary.timeToDetectMs).toBeGreaterThan(0);
  expect(canary.timeToRollbackMs).toBeGreaterThanOrEqual(canary.timeToDetectMs);
  // Containment: the canary let through a fraction of what direct sent to the bad release.
  expect(canary.badRequests).toBeGreaterThan(0);
  expect(canary.badRequests).toBeLessThan(direct.badRequests);
  expect(direct.failedRequests).toBeGreaterThan(canary.failedRequests);
  expect(comparison).toHaveLength(2);
  for (const dir of ['errors-canary-1', 'errors-direct-1']) {
    for (const file of ['timeseries.csv', 'summary.json', 'p99.svg', 'p99.png', 'errors.svg', 'errors.png']) expect(existsSync(join(out, dir, file)), `${dir}/${file}`).toBe(true);
    const csv = readFileSync(join(out, dir, 'timeseries.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('second,color,count,p50_ms,p95_ms,p99_ms,error_rate,candidate_weight,phase');
    expect(csv.length).toBeGreaterThan(8);
    expect(csv.some((l) => l.endsWith(',baseline')) && csv.some((l) => l.endsWith(',recovery'))).toBe(true);
    const svg = readFileSync(join(out, dir, 'p99.svg'), 'utf8');
    expect(() => svgToPng(svg)).not.toThrow();
    expect(svg).toContain('data-marker="deploy"');
  }
  expect(readFileSync(join(out, 'errors-canary-1', 'p99.svg'), 'utf8')).toContain('data-marker="rollback"');
  expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('<img src="errors-direct-1/p99.svg"');
  // The bad release that direct promoted was replaced by a clean one: the appliance serves without errors again.
  const after = await fetch(`${app.url}/api/data?limit=1`);
  expect(after.status).toBe(200);
  await after.arrayBuffer();
});

describe('another load engine', () => {
  it('`bench locust` plans what Debian\'s Locust, a master and two workers, sends at the planned rate and mix', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'locust-'));
    const file = join(dir, 'locustfile.py');
    const made = await runCli(['bench', 'locust', '--rate', '40', '--duration', '12', '--out', file, '--json'], app.env);
    expect(made.code, made.stderr).toBe(0);
    const shape = JSON.parse(made.stdout) as { users: number; spawnRate: number };
    const [masterPort] = await freePorts(1);
    for (let k = 0; k < 2; k++) spawnOf('locust', ['-f', file, '--worker', '--master-host', '127.0.0.1', '--master-port', String(masterPort)]);
    const master = spawnOf('locust', ['-f', file, '--headless', '--host', app.url, '-u', String(shape.users), '-r', String(shape.spawnRate), '-t', '12s',
      '--master', '--master-bind-host', '127.0.0.1', '--master-bind-port', String(masterPort), '--expect-workers', '2', '--csv', join(dir, 'run'), '--only-summary']);
    expect(await exitOf(master.child)).toBe(0);
    const rows = readFileSync(join(dir, 'run_stats.csv'), 'utf8').trim().split('\n').map((l) => l.split(','));
    const count = (name: string): number => Number(rows.find((r) => r[1] === name)![2]);
    const total = count('Aggregated');
    // 40 req/s for 12 s, paced per user (closed loops): close to 480, none failed.
    expect(total).toBeGreaterThanOrEqual(480 * 0.9);
    expect(total).toBeLessThanOrEqual(480 * 1.05);
    expect(Number(rows.find((r) => r[1] === 'Aggregated')![3])).toBe(0);
    // The mix: 8:1:1.
    expect(count('GET /api/data?limit=10') / total).toBeGreaterThan(0.72);
    expect(count('GET /api/data?limit=10') / total).toBeLessThan(0.88);
    expect(count('GET /api/work?ms=5') + count('POST /api/process') + count('GET /api/data?limit=10')).toBe(total);
  });
});
