// Load from several machines: a coordinator and three workers, each `changelens bench` process on its
// own "machine" (a network namespace with its own address, made here; loopback where this machine
// does not allow them), one Redis (redis-server, as a fleet's) and a target server on the test's
// machine. The rate adds up to the plan; the merged percentiles are those of one histogram of what
// the workers recorded; a worker with the wrong token is refused; kill -9 of a worker mid-run costs
// its share only until the failure is declared, and a worker joining mid-run takes a share from
// the next second.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { baseEnv, cliPath, freePorts } from '../../bench/harness.js';
import { HistogramSum, type LoadResult } from '../../bench/loadgen.js';
import type { DistributedResult } from '../../bench/distributed/client.js';
import { decodeHistogram, newHistogram, summarize } from '../../monitoring/histogram.js';
import { eventually } from '../helpers/eventually.js';
import { makeNetwork, type Machine, type Network } from '../helpers/netns.js';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 60_000 });

const TOKEN = 'distributed-load-test-token';
const COORDINATOR = 'e2etest';
let net: Network;
let join: string;
let target: string;
const children: ChildProcess[] = [];

interface Proc { child: ChildProcess; out: () => string; err: () => string; lines: () => any[] }

function start(on: Machine, args: string[]): Proc {
  const child = on.spawn(process.execPath, [cliPath, ...args], { env: baseEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const lines = (): any[] => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  return { child, out: () => out, err: () => err, lines };
}

const exited = (p: Proc): Promise<number | null> => (p.child.exitCode !== null ? Promise.resolve(p.child.exitCode) : new Promise((r) => p.child.once('exit', (code) => r(code))));

let coordinator: Proc;
const workers: Proc[] = [];

beforeAll(async () => {
  net = makeNetwork(5);
  const [redisPort, targetPort] = await freePorts(2);
  const bind = net.host.address;
  const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', bind, '--requirepass', 'load-test-redis-password', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  children.push(redis);
  // The target: a small server in its own process, answering after 1 ms.
  const server = spawn(process.execPath, ['-e', `require('node:http').createServer((q, s) => { q.resume(); setTimeout(() => s.end('ok'), 1); }).listen(${targetPort}, '${bind}', () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(server);
  await new Promise((r) => server.stdout!.once('data', r));
  target = `http://${bind}:${targetPort}`;
  const redisUrl = `redis://default:load-test-redis-password@${bind}:${redisPort}`;
  coordinator = start(net.machines[0]!, ['bench', 'coordinator', '--redis', redisUrl, '--token', TOKEN, '--id', COORDINATOR, '--json']);
  join = await eventually('the coordinator\'s join string', async () => coordinator.lines()[0]?.join as string | undefined);
  // Shares by declared capacity: w3 says it can send half what the others can.
  for (const k of [1, 2, 3]) workers.push(start(net.machines[k]!, ['bench', 'worker', '--join', join, '--name', `w${k}`, '--max-rate', k === 3 ? '500' : '1000', '--json']));
  await eventually('three workers joined', async () => (coordinator.lines().filter((l) => l.event === 'joined').length === 3 ? true : undefined));
});

afterAll(async () => {
  for (const c of children.reverse()) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  net?.close();
});

const drive = (args: string[]): Proc => start(net.host, ['bench', 'load', '--coordinator', join, '--target', target, '--allow-remote', '--mix', 'GET:/a:3,GET:/b:1', '--json', ...args]);

it('three workers on their own machines send the plan within 2 %, each its share by capacity, and the merged percentiles are one histogram\'s of what they recorded', async () => {
  if (!net.isolated) console.warn('distributed-load: no network namespaces here; every "machine" is this one, on loopback');
  const client = drive(['--rate', '300', '--duration', '10']);
  expect(await exited(client), client.err()).toBe(0);
  const r = JSON.parse(client.out()) as Omit<DistributedResult, 'histograms'>;
  const d = r.distributed;
  expect(d.planned).toBe(3000);
  expect(Math.abs(r.sent - d.planned) / d.planned).toBeLessThanOrEqual(0.02);
  expect(d.workers.map((w) => [w.id.replace(/-.*/, ''), w.outcome])).toEqual([['w1', 'ran'], ['w2', 'ran'], ['w3', 'ran']]);
  // 1000 : 1000 : 500 of 3,000.
  d.workers.forEach((w, k) => expect(Math.abs(w.planned - [1200, 1200, 600][k]!)).toBeLessThanOrEqual(15));
  // Each sent its share (within 1 %: a worker that read the run late on this busy box loses its first arrivals, as a gap).
  for (const w of d.workers) expect(Math.abs(w.sent - w.planned)).toBeLessThanOrEqual(w.planned * 0.01);
  expect(d.gaps.reduce((n, g) => n + g.missing, 0)).toBeLessThanOrEqual(d.planned * 0.01);
  expect(r.byEndpoint['GET /a']! + r.byEndpoint['GET /b']!).toBe(r.sent);

  // What each worker recorded itself (its own totals, not the deltas it streamed), as one histogram.
  const own = await eventually('every worker\'s own totals for the run', async () => {
    const found = workers.map((w) => w.lines().find((l) => l.run === d.run) as LoadResult | undefined);
    return found.every(Boolean) ? (found as LoadResult[]) : undefined;
  });
  const one = newHistogram();
  for (const w of own) one.add(decodeHistogram(w.histograms.latency));
  const exactMax = Math.max(...own.map((w) => Math.round(w.latency.maxMs * 1000)));
  (one as { maxValue: number }).maxValue = exactMax;
  const reference = summarize(one, own.reduce((n, w) => n + w.failed, 0));
  expect(r.latency).toEqual(reference);
  expect(reference.count).toBe(r.sent);
  // And the same through the sum every merge here uses.
  const sum = new HistogramSum();
  for (const w of own) sum.add(w.histograms.latency, Math.round(w.latency.maxMs * 1000));
  expect(sum.summary(r.failed).p99Ms).toBe(r.latency.p99Ms);
});

it('a worker with the wrong token is refused, and a client with it is not heard', async () => {
  const wrong = join.replace(/\.[^.]+$/, '.not-the-right-token-at-all');
  const worker = start(net.machines[4]!, ['bench', 'worker', '--join', wrong, '--name', 'intruder']);
  expect(await exited(worker)).toBe(5);
  expect(worker.err()).toMatch(/the load coordinator refused: the join token does not match/);
  await eventually('the refusal reported', async () => (coordinator.lines().some((l) => l.event === 'refused' && String(l.worker).startsWith('intruder')) ? true : undefined));
  const client = start(net.host, ['bench', 'load', '--coordinator', wrong, '--target', target, '--allow-remote', '--rate', '10', '--duration', '1']);
  expect(await exited(client)).toBe(3);
  expect(client.err()).toMatch(/did not take the run within 5 s/);
});

it('kill -9 of a worker mid-run: the run completes within 5 % of the plan, the failure and the reassignment are in the result; a newcomer takes a share from the next second', async () => {
  // The worker killed has a fifth of the load (its declared capacity): what it leaves undone until
  // its failure is declared (3-4 s of its share, and its last second's unsent report) is ~3 % of 30 s.
  const client = drive(['--rate', '240', '--duration', '30']);
  const runLine = await eventually('the run started', async () => coordinator.lines().find((l) => l.kind === 'run' && l.plan.durationSeconds === 30));
  // A few seconds into the run (by the shared clock's schedule, as the coordinator saw it start).
  await new Promise((r) => setTimeout(r, Math.max(0, runLine.t0 - Date.now()) + 8_000));
  workers[2]!.child.kill('SIGKILL');
  const killedAt = Date.now() - runLine.t0;
  await eventually('the failure declared', async () => coordinator.lines().find((l) => l.event === 'failed'), 15_000);
  const newcomer = start(net.machines[4]!, ['bench', 'worker', '--join', join, '--name', 'w4', '--max-rate', '1000', '--json']);
  workers.push(newcomer);
  expect(await exited(client), client.err()).toBe(0);
  const { distributed: d, ...r } = JSON.parse(client.out()) as DistributedResult;

  expect(d.planned).toBe(7200);
  expect(Math.abs(r.sent - d.planned) / d.planned).toBeLessThanOrEqual(0.05);
  const failed = d.events.find((e) => e.event === 'failed')!;
  expect(failed.worker).toMatch(/^w3-/);
  // Declared 3 s after its last heartbeat (at most a second before the kill), its share moved within 2 s.
  expect(failed.atMs!).toBeGreaterThanOrEqual(killedAt + 1_500);
  expect(failed.atMs!).toBeLessThanOrEqual(killedAt + 6_000);
  const moved = d.shares.find((s) => s.why === `${failed.worker} failed`)!;
  expect(moved.fromMs - failed.atMs!).toBeLessThanOrEqual(2_000);
  expect(Object.keys(moved.weights).sort().map((w) => w.replace(/-.*/, ''))).toEqual(['w1', 'w2']);
  expect(d.workers.find((w) => w.id === failed.worker)!.outcome).toBe('failed');
  // The gaps are the dead worker's (anyone else's at most 1 % of the plan).
  expect(d.gaps.length).toBeGreaterThan(0);
  expect(d.gaps.some((g) => g.workers.includes(failed.worker))).toBe(true);
  expect(d.gaps.filter((g) => !g.workers.includes(failed.worker)).reduce((n, g) => n + g.missing, 0)).toBeLessThanOrEqual(d.planned * 0.01);
  // The newcomer: joined during the run, its share from a whole second, and it sent it.
  const joined = d.events.find((e) => e.event === 'joined' && e.worker.startsWith('w4-'))!;
  const share = d.shares.find((s) => s.why === `${joined.worker} joined`)!;
  expect(share.fromMs % 1000).toBe(0);
  expect(share.fromMs).toBeGreaterThan(joined.atMs!);
  const w4 = d.workers.find((w) => w.id === joined.worker)!;
  expect(w4.outcome).toBe('ran');
  expect(w4.sent).toBeGreaterThan(0);
  expect(Math.abs(w4.sent - w4.planned)).toBeLessThanOrEqual(w4.planned * 0.02);
});
