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
  /**
   * timer (the default): a timer only, a millisecond or two late at P99, nearly free — right for load
   * beside what it measures on a small machine, where a spin would take the measured system's CPU
   * (bench:proxy's P99 at 1,000 req/s read 14× nginx's with it, against 1.6× without). precise: each
   * request leaves within microseconds of its time, at the cost of spinning the last 2 ms before
   * each (up to a core): for a load machine of its own (the distributed workers).
   */
  timing?: 'precise' | 'timer';
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
  /** Failed requests by kind: "HTTP 503", or the connection error's code (ECONNREFUSED, UND_ERR_SOCKET…). */
  failures: Record<string, number>;
  /** From each request's intended send time: what users waited. */
  latency: LatencySummary;
  /** From each request's actual send time: what a closed-loop tool would report. */
  serviceTime: LatencySummary;
  /**
   * How late the generator itself sent each request after its intended time: its own error. A P99
   * above a millisecond or so means this process (or machine) is saturated: add processes or workers.
   */
  sendLag: LatencySummary;
  byEndpoint: Record<string, number>;
  /** The merged histograms, encoded (for a caller merging further). */
  histograms: { latency: string; serviceTime: string; sendLag: string };
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

/** A uniform number in [0, 1) from (seed, i): arrival i's own, whoever asks and in whatever order. */
export function uniformAt(seed: number, i: number): number {
  let t = (Math.imul(i | 0, 0x9e3779b1) ^ Math.imul(seed | 0, 0x85ebca6b) ^ Math.floor(i / 4294967296)) >>> 0;
  t = (t + 0x6d2b79f5) >>> 0;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

/** The first arrival due at or after `ms` (the inverse of intendedTimeMs). */
export function firstIndexAt(ms: number, rate: number, rampSeconds: number): number {
  if (ms <= 0) return 0;
  const t = ms / 1000;
  const ramp = rampSeconds;
  const n = ramp > 0 && t < ramp ? (rate * t * t) / (2 * ramp) : (rate * ramp) / 2 + rate * (t - ramp);
  let i = Math.max(0, Math.floor(n) - 2);
  while (intendedTimeMs(i, rate, ramp) < ms) i++;
  return i;
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
  const t0 = performance.now();
  return drive(plan, { t0, epoch0: Date.now(), owns: (i) => i % stride === offset, stopAtMs: () => (plan.signal?.aborted ? -Infinity : Infinity) });
}

/** A timer fires up to a millisecond or so late (libuv counts whole ms): it is set this much early, and the rest is waited out turn by turn. */
const SPIN_MS = 2;

/**
 * Resolves at `t` (performance.now()), not before, and within a few µs after when the event loop is
 * free: a timer alone would put a millisecond or two of the generator's own lateness into every
 * latency it measures. The last SPIN_MS are spent yielding (I/O still runs), which costs CPU.
 */
async function until(t: number, precise: boolean): Promise<void> {
  const wait = t - performance.now();
  if (!precise) {
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    return;
  }
  if (wait > SPIN_MS) await new Promise((r) => setTimeout(r, wait - SPIN_MS));
  while (performance.now() < t) await new Promise((r) => setImmediate(r));
}

/** Which arrivals of the schedule this process sends, and when its time 0 is. */
export interface Slice {
  /** performance.now() at the schedule's time 0 (may be in the future). */
  t0: number;
  /** ms since the epoch at time 0 (what RequestResult.intendedAt counts from). */
  epoch0: number;
  /** Whether arrival `i`, due `atMs` after time 0, is this process's (asked ≥ 100 ms before it is due). */
  owns(i: number, atMs: number): boolean;
  /** Arrivals due before this (ms from time 0) are not looked at: a worker that joined a run late. */
  fromMs?: number;
  /** Until this resolves, whose arrival `atMs` is may still change (a worker still reading the shares). */
  ready?: (atMs: number) => Promise<void> | undefined;
  /** No arrival due at or after this (ms from time 0) is sent; read before every arrival. */
  stopAtMs(): number;
  /** Every second and at the end: what completed since the last call. */
  onFlush?: (delta: LoadDelta) => void;
  /** Per-request results in each delta (for time series by colour). */
  detail?: boolean;
}

/** What completed in one interval: exact counts and histograms a receiver adds up. */
export interface LoadDelta {
  /** Second of the schedule (by intended time) → requests of it that completed, and how many failed. */
  bySecond: Record<string, [sent: number, failed: number]>;
  statuses: Record<string, number>;
  failures: Record<string, number>;
  byEndpoint: Record<string, number>;
  latency: string;
  latencyMaxUs: number;
  serviceTime: string;
  serviceMaxUs: number;
  sendLag: string;
  sendLagMaxUs: number;
  /** With `detail`: [ms after time 0 it was due, latency in µs, status, colour, endpoint index in the mix]. */
  requests?: [number, number, number, string, number][];
}

/** Why a request failed: its 5xx status, or the connection error's code. */
function failureKind(status: number, err?: Error): string {
  if (status > 0) return `HTTP ${status}`;
  const e = err as (Error & { code?: string; cause?: { code?: string } }) | undefined;
  return e?.code ?? e?.cause?.code ?? e?.name ?? 'no answer';
}

/**
 * Sends this slice's arrivals of the plan's schedule, each at its intended time (never early), and
 * measures each from that time. Arrival i's endpoint is drawn from (seed, i), so whichever process
 * sends it, together they send exactly the plan's mix.
 */
export async function drive(plan: LoadPlan, slice: Slice): Promise<LoadResult> {
  const { origin } = new URL(plan.target);
  // A target that never answers costs a request, not the run: 30 s, then it fails (UND_ERR_HEADERS_TIMEOUT).
  const pool = new Pool(origin, { connections: plan.connections ?? 128, pipelining: 1, headersTimeout: 30_000, bodyTimeout: 30_000 });
  const latency = newHistogram();
  const service = newHistogram();
  const lag = newHistogram();
  const statuses: Record<string, number> = {};
  const failures: Record<string, number> = {};
  const byEndpoint: Record<string, number> = {};
  const seed = plan.seed ?? 1;
  const total = plan.mix.reduce((n, e) => n + e.weight, 0);
  /** Arrival i's endpoint: from (seed, i) alone, so any process can start anywhere in the schedule. */
  const pick = (i: number): number => {
    let x = uniformAt(seed, i) * total;
    for (let k = 0; k < plan.mix.length; k++) if ((x -= plan.mix[k]!.weight) < 0) return k;
    return plan.mix.length - 1;
  };
  const ramp = plan.rampSeconds ?? 0;
  const scheduled = Math.floor(plan.rate * (plan.durationSeconds - ramp) + (plan.rate * ramp) / 2);
  const count = Math.min(scheduled, plan.maxRequests ?? Infinity);
  const { t0, epoch0 } = slice;
  const precise = plan.timing === 'precise';
  const report = plan.onResult;
  const delta = slice.onFlush ? newDelta() : null;
  const flush = (): void => {
    if (!delta || !slice.onFlush) return;
    slice.onFlush(delta.take());
  };
  const flusher = slice.onFlush ? setInterval(flush, 1000) : null;
  const pending = new Set<Promise<void>>();
  let sent = 0;
  let failed = 0;
  const settle = (k: number, atMs: number, intended: number, sentAt: number, status: number, color: string | null, err?: Error): void => {
    const done = performance.now();
    const key = `${plan.mix[k]!.method} ${plan.mix[k]!.path}`;
    statuses[status] = (statuses[status] ?? 0) + 1;
    const bad = status === 0 || status >= 500;
    if (bad) {
      failed++;
      const kind = failureKind(status, err);
      failures[kind] = (failures[kind] ?? 0) + 1;
    }
    recordLatency(latency, done - intended);
    recordLatency(service, done - sentAt);
    // atMs as scheduled, not intended − t0: a float's rounding would move an arrival due at 1000 ms into second 0.
    delta?.record(k, key, atMs, done - intended, done - sentAt, status, color, bad ? failureKind(status, err) : null, slice.detail === true);
    report?.({ intendedAt: epoch0 + (intended - t0), latencyMs: done - intended, status, color, endpoint: key });
  };
  try {
    for (let i = firstIndexAt(slice.fromMs ?? 0, plan.rate, ramp); i < count; i++) {
      const atMs = intendedTimeMs(i, plan.rate, ramp);
      const intended = t0 + atMs;
      // Ownership is decided shortly before an arrival is due: a share that changes (a worker failed
      // or joined) is announced for a moment at least 400 ms after it was decided.
      const lead = intended - 100 - performance.now();
      if (lead > 2) await new Promise((r) => setTimeout(r, lead));
      if (atMs >= slice.stopAtMs()) break;
      const gate = slice.ready?.(atMs);
      if (gate) await gate;
      if (atMs >= slice.stopAtMs()) break;
      if (!slice.owns(i, atMs)) continue;
      const k = pick(i);
      // Never early: a request sent before its intended time would read faster than it was.
      await until(intended, precise);
      const key = `${plan.mix[k]!.method} ${plan.mix[k]!.path}`;
      byEndpoint[key] = (byEndpoint[key] ?? 0) + 1;
      const endpoint = plan.mix[k]!;
      const sentAt = performance.now();
      const body = endpoint.body === undefined ? null : JSON.stringify(endpoint.body);
      sent++;
      recordLatency(lag, sentAt - intended);
      delta?.lagged(sentAt - intended);
      const p: Promise<void> = pool.request({ path: endpoint.path, method: endpoint.method, body, headers: body ? { 'content-type': 'application/json' } : {} }).then(async (res) => {
        await res.body.dump();
        settle(k, atMs, intended, sentAt, res.statusCode, (res.headers['x-changelens-color'] as string | undefined) ?? null);
      }, (err: Error) => settle(k, atMs, intended, sentAt, 0, null, err)).finally(() => pending.delete(p));
      pending.add(p);
    }
    while (pending.size > 0) await Promise.all([...pending]);
  } finally {
    if (flusher) clearInterval(flusher);
    await pool.close();
  }
  flush();
  return {
    sent, failed, statuses, failures, byEndpoint,
    latency: summarize(latency, failed), serviceTime: summarize(service, failed), sendLag: summarize(lag, 0),
    histograms: { latency: encodeHistogram(latency), serviceTime: encodeHistogram(service), sendLag: encodeHistogram(lag) },
  };
}

/** The counts and histograms since the last take(). */
function newDelta() {
  let d = fresh();
  function fresh() {
    return { bySecond: {} as LoadDelta['bySecond'], statuses: {} as Record<string, number>, failures: {} as Record<string, number>, byEndpoint: {} as Record<string, number>, latency: newHistogram(), service: newHistogram(), lag: newHistogram(), requests: [] as NonNullable<LoadDelta['requests']> };
  }
  return {
    lagged(ms: number): void {
      recordLatency(d.lag, ms);
    },
    record(k: number, key: string, atMs: number, latencyMs: number, serviceMs: number, status: number, color: string | null, failure: string | null, detail: boolean): void {
      const second = String(Math.floor(atMs / 1000));
      const row = (d.bySecond[second] ??= [0, 0]);
      row[0]++;
      if (failure !== null) {
        row[1]++;
        d.failures[failure] = (d.failures[failure] ?? 0) + 1;
      }
      d.statuses[status] = (d.statuses[status] ?? 0) + 1;
      d.byEndpoint[key] = (d.byEndpoint[key] ?? 0) + 1;
      recordLatency(d.latency, latencyMs);
      recordLatency(d.service, serviceMs);
      if (detail) d.requests.push([Math.round(atMs), Math.round(latencyMs * 1000), status, color ?? '', k]);
    },
    take(): LoadDelta {
      const out: LoadDelta = {
        bySecond: d.bySecond, statuses: d.statuses, failures: d.failures, byEndpoint: d.byEndpoint,
        latency: encodeHistogram(d.latency), latencyMaxUs: d.latency.totalCount ? d.latency.maxValue : 0,
        serviceTime: encodeHistogram(d.service), serviceMaxUs: d.service.totalCount ? d.service.maxValue : 0,
        sendLag: encodeHistogram(d.lag), sendLagMaxUs: d.lag.totalCount ? d.lag.maxValue : 0,
        ...(d.requests.length ? { requests: d.requests } : {}),
      };
      d = fresh();
      return out;
    },
  };
}

function merge(parts: readonly LoadResult[]): LoadResult {
  const latency = new HistogramSum();
  const service = new HistogramSum();
  const lag = new HistogramSum();
  const statuses: Record<string, number> = {};
  const byEndpoint: Record<string, number> = {};
  const failures: Record<string, number> = {};
  let sent = 0;
  let failed = 0;
  for (const p of parts) {
    for (const [k, v] of Object.entries(p.failures)) failures[k] = (failures[k] ?? 0) + v;
    latency.add(p.histograms.latency, decodeHistogram(p.histograms.latency).maxValue);
    service.add(p.histograms.serviceTime, decodeHistogram(p.histograms.serviceTime).maxValue);
    lag.add(p.histograms.sendLag, decodeHistogram(p.histograms.sendLag).maxValue);
    for (const [k, v] of Object.entries(p.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
    for (const [k, v] of Object.entries(p.byEndpoint)) byEndpoint[k] = (byEndpoint[k] ?? 0) + v;
    sent += p.sent;
    failed += p.failed;
  }
  return { sent, failed, statuses, failures, byEndpoint, latency: latency.summary(failed), serviceTime: service.summary(failed), sendLag: lag.summary(0), histograms: { latency: latency.encoded(), serviceTime: service.encoded(), sendLag: lag.encoded() } };
}

/**
 * Encoded histograms added up exactly: the counts are the sum of theirs, and the maximum the largest
 * of their exact maxima (the encoding keeps only the maximum's bucket).
 */
export class HistogramSum {
  private readonly h = newHistogram();
  private maxUs = 0;

  add(encoded: string, exactMaxUs: number): void {
    const part = decodeHistogram(encoded, exactMaxUs);
    if (part.totalCount === 0) return;
    this.h.add(part);
    this.maxUs = Math.max(this.maxUs, exactMaxUs);
  }

  /** Percentiles of everything added, capped by the exact maximum. */
  summary(errors: number): LatencySummary {
    if (this.h.totalCount > 0 && this.maxUs > 0 && this.maxUs <= this.h.maxValue && this.maxUs >= this.h.maxValue * 0.998) {
      (this.h as { maxValue: number }).maxValue = this.maxUs;
    }
    return summarize(this.h, errors);
  }

  encoded(): string {
    return encodeHistogram(this.h);
  }
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
