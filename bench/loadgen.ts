// The ChangeLens load generator: an open model (a constant arrival rate, like wrk2 -R or k6's
// constant-arrival-rate) whose latencies are counted from each request's *intended* send time, so a
// stall shows in full instead of being hidden by a client that waited (coordinated omission). It
// also records each request's service time (from its actual send), which is what a closed-loop tool
// reports, to show the difference. A weighted mix of endpoints, a linear ramp-up, bounds in requests
// and time, loopback targets unless told otherwise, and a multi-process mode whose workers' HdrHistograms
// are merged exactly.
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { Pool } from 'undici';
import { distDir } from '../lib/package-root.js';
import { decodeHistogram, encodeHistogram, newHistogram, recordLatency, summarize, type Histogram, type LatencySummary } from '../monitoring/histogram.js';
import { prng } from './prng.js';

export interface Endpoint {
  method: 'GET' | 'POST';
  path: string;
  /** JSON body of a POST. */
  body?: unknown;
  /** Relative share of the requests. */
  weight: number;
}

export interface LoadPlan {
  /** The origin, e.g. http://127.0.0.1:8080. */
  target: string;
  /** Requests per second once ramped up. */
  rate: number;
  durationSeconds: number;
  /** Linear ramp from 0 to `rate` over this many seconds (part of the duration). */
  rampSeconds?: number;
  mix: readonly Endpoint[];
  /** Stop after this many requests, whatever the duration. */
  maxRequests?: number;
  /** Pooled connections (the open model needs enough for rate × latency). */
  connections?: number;
  /** Processes sharing the rate, for rates one event loop cannot drive; histograms merged exactly. */
  processes?: number;
  /** Seed of the endpoint choice. */
  seed?: number;
  /** A target off this machine must be asked for. */
  allowRemote?: boolean;
  /** Stops sending when aborted (requests in flight still finish). One process only. */
  signal?: AbortSignal;
  /** Every answer as it arrives (one process only): for time series by colour. */
  onResult?: (r: RequestResult) => void;
}

export interface RequestResult {
  /** When it was meant to be sent (ms since the epoch). */
  intendedAt: number;
  /** From the intended send time. */
  latencyMs: number;
  /** 0 when no answer came. */
  status: number;
  /** x-changelens-color of the answer (null: none). */
  color: string | null;
  /** "METHOD path" of the mix's endpoint it was. */
  endpoint?: string;
}

export interface LoadResult {
  sent: number;
  failed: number;
  /** Answers by status code ("0" for no answer). */
  statuses: Record<string, number>;
  /** From each request's intended send time: what users waited. */
  latency: LatencySummary;
  /** From each request's actual send time: what a closed-loop tool would report. */
  serviceTime: LatencySummary;
  byEndpoint: Record<string, number>;
  /** The merged histograms, encoded (for a caller merging further). */
  histograms: { latency: string; serviceTime: string };
}

/** Refuses a plan that could hurt someone: a remote target not asked for, no bound, no endpoints. */
export function checkPlan(plan: LoadPlan): void {
  const url = new URL(plan.target);
  if (!plan.allowRemote && !['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) throw new Error(`target ${plan.target}: not a loopback address; pass allowRemote (--allow-remote) to load another machine`);
  if (!(plan.rate > 0 && plan.rate <= 1_000_000)) throw new Error(`rate: expected 0 < rate ≤ 1000000 requests per second, got ${plan.rate}`);
  if (!(plan.durationSeconds > 0 && plan.durationSeconds <= 86_400)) throw new Error(`duration: expected 0-86400 seconds, got ${plan.durationSeconds}`);
  if ((plan.rampSeconds ?? 0) < 0 || (plan.rampSeconds ?? 0) > plan.durationSeconds) throw new Error(`ramp: expected 0 to the duration (${plan.durationSeconds} s), got ${plan.rampSeconds}`);
  if (plan.mix.length === 0 || plan.mix.some((e) => !(e.weight > 0) || !e.path.startsWith('/'))) throw new Error('mix: expected endpoints with a path starting with / and a weight > 0');
}

/**
 * When request i is meant to leave, in ms from the start: a linear ramp r(t) = rate·t/ramp has sent
 * rate·t²/(2·ramp) requests by t, then the constant rate.
 */
export function intendedTimeMs(i: number, rate: number, rampSeconds: number): number {
  const ramp = rampSeconds;
  const rampRequests = (rate * ramp) / 2;
  if (ramp > 0 && i < rampRequests) return Math.sqrt((2 * i * ramp) / rate) * 1000;
  return (ramp + (i - rampRequests) / rate) * 1000;
}

export async function runLoad(plan: LoadPlan): Promise<LoadResult> {
  checkPlan(plan);
  const processes = plan.processes ?? 1;
  if (processes <= 1) return runHere(plan, 0, 1);
  if (plan.signal || plan.onResult) throw new Error('processes: a signal or per-request results need a single process');
  // Each worker takes every n-th request of the same schedule, so together they send exactly it.
  const parts = await Promise.all(Array.from({ length: processes }, (_, k) => inWorker(plan, k, processes)));
  return merge(parts);
}

async function runHere(plan: LoadPlan, offset: number, stride: number): Promise<LoadResult> {
  const { origin } = new URL(plan.target);
  const pool = new Pool(origin, { connections: plan.connections ?? 128, pipelining: 1 });
  const latency = newHistogram();
  const service = newHistogram();
  const statuses: Record<string, number> = {};
  const byEndpoint: Record<string, number> = {};
  const random = prng(plan.seed ?? 1);
  const total = plan.mix.reduce((n, e) => n + e.weight, 0);
  const pick = (): Endpoint => {
    let x = random() * total;
    for (const e of plan.mix) if ((x -= e.weight) < 0) return e;
    return plan.mix.at(-1)!;
  };
  const ramp = plan.rampSeconds ?? 0;
  const scheduled = Math.floor(plan.rate * (plan.durationSeconds - ramp) + (plan.rate * ramp) / 2);
  const count = Math.min(scheduled, plan.maxRequests ?? Infinity);
  const t0 = performance.now();
  const epoch0 = Date.now();
  const report = plan.onResult;
  const pending: Promise<void>[] = [];
  let failed = 0;
  for (let i = 0; i < count && !plan.signal?.aborted; i++) {
    // Every request picks its endpoint, so each worker's choices follow the same seeded sequence.
    const endpoint = pick();
    if (i % stride !== offset) continue;
    const intended = t0 + intendedTimeMs(i, plan.rate, ramp);
    // Never early: a request sent before its intended time would read faster than it was.
    const wait = intended - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const key = `${endpoint.method} ${endpoint.path}`;
    byEndpoint[key] = (byEndpoint[key] ?? 0) + 1;
    const sentAt = performance.now();
    const body = endpoint.body === undefined ? null : JSON.stringify(endpoint.body);
    pending.push(pool.request({ path: endpoint.path, method: endpoint.method, body, headers: body ? { 'content-type': 'application/json' } : {} }).then(async (res) => {
      await res.body.dump();
      const done = performance.now();
      statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
      if (res.statusCode >= 500) failed++;
      recordLatency(latency, done - intended);
      recordLatency(service, done - sentAt);
      report?.({ intendedAt: epoch0 + (intended - t0), latencyMs: done - intended, status: res.statusCode, color: (res.headers['x-changelens-color'] as string | undefined) ?? null, endpoint: key });
    }, () => {
      const done = performance.now();
      statuses['0'] = (statuses['0'] ?? 0) + 1;
      failed++;
      recordLatency(latency, done - intended);
      recordLatency(service, done - sentAt);
      report?.({ intendedAt: epoch0 + (intended - t0), latencyMs: done - intended, status: 0, color: null, endpoint: key });
    }));
  }
  await Promise.all(pending);
  await pool.close();
  return {
    sent: pending.length, failed, statuses, byEndpoint,
    latency: summarize(latency, failed), serviceTime: summarize(service, failed),
    histograms: { latency: encodeHistogram(latency), serviceTime: encodeHistogram(service) },
  };
}

function merge(parts: readonly LoadResult[]): LoadResult {
  const latency = newHistogram();
  const service = newHistogram();
  const statuses: Record<string, number> = {};
  const byEndpoint: Record<string, number> = {};
  let sent = 0;
  let failed = 0;
  for (const p of parts) {
    latency.add(decodeHistogram(p.histograms.latency));
    service.add(decodeHistogram(p.histograms.serviceTime));
    for (const [k, v] of Object.entries(p.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
    for (const [k, v] of Object.entries(p.byEndpoint)) byEndpoint[k] = (byEndpoint[k] ?? 0) + v;
    sent += p.sent;
    failed += p.failed;
  }
  return { sent, failed, statuses, byEndpoint, latency: summarize(latency, failed), serviceTime: summarize(service, failed), histograms: { latency: encodeHistogram(latency), serviceTime: encodeHistogram(service) } };
}

function inWorker(plan: LoadPlan, offset: number, stride: number): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = fork(join(distDir, 'bench', 'loadgen.js'), ['--loadgen-worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', (result) => { resolve(result as LoadResult); child.disconnect(); });
    child.once('error', reject);
    child.once('exit', (code) => { if (code !== 0) reject(new Error(`load worker ${offset} exited with ${code}`)); });
    child.send({ plan, offset, stride });
  });
}

/** A closed-loop client (what most tools do): `concurrency` loops, each waiting for its answer before the next. */
export async function runClosedLoop(target: string, path: string, concurrency: number, durationSeconds: number): Promise<LatencySummary> {
  const { origin } = new URL(target);
  const pool = new Pool(origin, { connections: concurrency, pipelining: 1 });
  const h: Histogram = newHistogram();
  const end = performance.now() + durationSeconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const t = performance.now();
      const res = await pool.request({ path, method: 'GET' });
      await res.body.dump();
      recordLatency(h, performance.now() - t);
    }
  }));
  await pool.close();
  return summarize(h, 0);
}

if (process.argv.includes('--loadgen-worker') && process.send) {
  process.once('message', (msg: { plan: LoadPlan; offset: number; stride: number }) => {
    void runHere(msg.plan, msg.offset, msg.stride).then((r) => process.send!(r));
  });
}
