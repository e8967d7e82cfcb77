// A small open-model load for end-to-end tests and bench:rollback: requests start at a constant rate whatever the
// answers do (a slow colour cannot slow the arrivals), and each answer is counted by the colour
// that served it (x-changelens-color) and by when it started. Not a benchmark: bench/ has that.
import { Pool } from 'undici';
import { newHistogram, recordLatency, summarize } from '../monitoring/histogram.js';

type Color = 'blue' | 'green';

export interface Sample {
  startedAt: number;
  endedAt: number;
  color: Color | null;
  status: number;
}

export interface Load {
  samples: Sample[];
  /** Samples served by a colour in [from, to) by start time. */
  served(color: Color, from?: number, to?: number): Sample[];
  stop(): Promise<void>;
}

export function startLoad(url: string, ratePerSecond: number, init: RequestInit = {}): Load {
  const samples: Sample[] = [];
  const inFlight = new Set<Promise<void>>();
  const intervalMs = 1000 / ratePerSecond;
  const t0 = performance.now();
  let sent = 0;
  let stopped = false;
  const fire = (): void => {
    const startedAt = Date.now();
    const p = fetch(url, { ...init, signal: AbortSignal.timeout(10_000) }).then(
      async (res) => {
        await res.arrayBuffer();
        samples.push({ startedAt, endedAt: Date.now(), color: res.headers.get('x-changelens-color') as Color | null, status: res.status });
      },
      () => { samples.push({ startedAt, endedAt: Date.now(), color: null, status: 0 }); },
    ).finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  // A coarse timer catches up in bursts: the arrival schedule, not the timer, sets the count.
  const timer = setInterval(() => {
    if (stopped) return;
    const due = Math.floor((performance.now() - t0) / intervalMs);
    while (sent < due) { sent++; fire(); }
  }, 5);
  return {
    samples,
    served: (color, from = 0, to = Infinity) => samples.filter((s) => s.color === color && s.startedAt >= from && s.startedAt < to),
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all([...inFlight]);
    },
  };
}

/**
 * Constant arrival rate on one pooled origin, each latency counted from the request's intended send
 * time (so a stall shows in full, not hidden by a client that waited). Runs for `duration` seconds,
 * or until the promise settles. Latencies of non-2xx answers count too; `failed` says how many.
 */
export async function openModel(url: string, rate: number, duration: number | Promise<unknown>): Promise<{ p50: number; p99: number; max: number; count: number; failed: number }> {
  const { origin, pathname, search } = new URL(url);
  const pool = new Pool(origin, { connections: 64, pipelining: 1 });
  const h = newHistogram();
  const interval = 1000 / rate;
  let done = false;
  const total = typeof duration === 'number' ? rate * duration : Infinity;
  if (typeof duration !== 'number') void duration.then(() => { done = true; }, () => { done = true; });
  const t0 = performance.now();
  const pending: Promise<void>[] = [];
  let failed = 0;
  for (let i = 0; i < total && !done; i++) {
    const intended = t0 + i * interval;
    // Never early: a request sent before its intended time would read faster than it was.
    const wait = intended - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    pending.push(pool.request({ path: pathname + search, method: 'GET' }).then(async (res) => {
      await res.body.dump();
      if (res.statusCode >= 300) failed++;
      recordLatency(h, performance.now() - intended);
    }, () => { failed++; }));
  }
  await Promise.all(pending);
  await pool.close();
  const s = summarize(h, 0);
  return { p50: s.p50Ms, p99: s.p99Ms, max: s.maxMs, count: pending.length, failed };
}
