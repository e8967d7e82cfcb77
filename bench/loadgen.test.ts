// The load generator against real local servers: a fixed delay is measured as that delay, a stall
// shows in the open model's percentiles where a closed-loop client hides it, the endpoint mix and
// the bounds hold, and two processes' histograms merge exactly.
import { spawn, type ChildProcess } from 'node:child_process';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkPlan, firstIndexAt, intendedTimeMs, runClosedLoop, runLoad, uniformAt } from './loadgen.js';

/** A server in its own process (so a stall there does not stall the generator): fixed delay, optional one-time stall. */
function server(delayMs: number, stallAfter = 0, stallMs = 0): Promise<{ url: string; child: ChildProcess }> {
  const script = `
    let n = 0;
    require('node:http').createServer((req, res) => {
      n++;
      if (${stallAfter} > 0 && n === ${stallAfter}) { const end = Date.now() + ${stallMs}; while (Date.now() < end); }
      req.resume();
      setTimeout(() => res.end(req.method + ' ' + req.url), ${delayMs});
    }).listen(0, '127.0.0.1', function () { console.log(this.address().port); });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve) => child.stdout!.once('data', (d: Buffer) => resolve({ url: `http://127.0.0.1:${d.toString().trim()}`, child })));
}

let fixed: { url: string; child: ChildProcess };
beforeAll(async () => { fixed = await server(20); });
afterAll(() => { fixed?.child.kill(); });

describe('accuracy', () => {
  it('a server with a fixed 20 ms delay measures 20 ms at the median, every request sent', async () => {
    const r = await runLoad({ target: fixed.url, rate: 100, durationSeconds: 2, mix: [{ method: 'GET', path: '/api/data', weight: 1 }] });
    expect(r.sent).toBe(200);
    expect(r.failed).toBe(0);
    expect(r.latency.p50Ms).toBeGreaterThanOrEqual(20);
    // Generous: the suite runs other files on the same two cores.
    expect(r.latency.p50Ms).toBeLessThan(40);
    expect(r.serviceTime.p50Ms).toBeGreaterThanOrEqual(20);
  });

  it('a 600 ms stall: the open model\'s P99 shows it, a closed-loop client\'s does not (coordinated omission)', async () => {
    const stalled = await server(1, 150, 600);
    // 5 ms per answer keeps the closed loop (2 × 200 req/s) from taking a whole core from the e2e
    // files running beside this one.
    const closedStalled = await server(5, 150, 600);
    try {
      const open = await runLoad({ target: stalled.url, rate: 100, durationSeconds: 3, mix: [{ method: 'GET', path: '/', weight: 1 }] });
      const closed = await runClosedLoop(closedStalled.url, '/', 2, 3);
      // ~60 of 300 requests were due during the stall: each waited for it from its intended time.
      expect(open.latency.p99Ms).toBeGreaterThan(400);
      expect(open.latency.p95Ms).toBeGreaterThan(100);
      // The closed loop sent many requests, and only the two in flight saw the stall.
      expect(closed.count).toBeGreaterThan(500);
      expect(closed.p99Ms).toBeLessThan(150);
      expect(closed.maxMs).toBeGreaterThan(400);
    } finally {
      stalled.child.kill();
      closedStalled.child.kill();
    }
  });
});

describe('the plan', () => {
  it('a weighted mix (3:1) and a request bound', async () => {
    const r = await runLoad({
      target: fixed.url, rate: 400, durationSeconds: 10, maxRequests: 400, seed: 7,
      mix: [{ method: 'GET', path: '/api/data', weight: 3 }, { method: 'POST', path: '/api/process', body: { workMs: 1 }, weight: 1 }],
    });
    expect(r.sent).toBe(400);
    const gets = r.byEndpoint['GET /api/data']!;
    expect(gets + r.byEndpoint['POST /api/process']!).toBe(400);
    expect(gets / 400).toBeGreaterThan(0.68);
    expect(gets / 400).toBeLessThan(0.82);
  });

  it('two processes share the schedule; their histograms merge exactly', async () => {
    const r = await runLoad({ target: fixed.url, rate: 200, durationSeconds: 1, processes: 2, mix: [{ method: 'GET', path: '/', weight: 1 }] });
    expect(r.sent).toBe(200);
    expect(r.latency.count).toBe(200);
    expect(r.statuses['200']).toBe(200);
    expect(r.latency.p50Ms).toBeGreaterThanOrEqual(20);
  });

  it('refuses a remote target unless asked, an empty mix, and a ramp longer than the run', () => {
    const mix = [{ method: 'GET' as const, path: '/', weight: 1 }];
    expect(() => checkPlan({ target: 'http://example.com', rate: 1, durationSeconds: 1, mix })).toThrow(/not a loopback address/);
    expect(() => checkPlan({ target: 'http://example.com', rate: 1, durationSeconds: 1, mix, allowRemote: true })).not.toThrow();
    expect(() => checkPlan({ target: 'http://127.0.0.1:1', rate: 1, durationSeconds: 1, mix: [] })).toThrow(/mix/);
    expect(() => checkPlan({ target: 'http://127.0.0.1:1', rate: 1, durationSeconds: 5, rampSeconds: 6, mix })).toThrow(/ramp/);
  });

  it('the ramp: send times increase, and by time t exactly the integral of the rate has been sent', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 5000 }), (rate, ramp, i) => {
      const t = intendedTimeMs(i, rate, ramp) / 1000;
      expect(intendedTimeMs(i + 1, rate, ramp)).toBeGreaterThan(intendedTimeMs(i, rate, ramp));
      const sentBy = t <= ramp && ramp > 0 ? (rate * t * t) / (2 * ramp) : (rate * ramp) / 2 + rate * (t - ramp);
      expect(sentBy).toBeCloseTo(i, 6);
    }));
  });

  it('firstIndexAt is the first arrival due at or after a moment (a worker joining late starts there)', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 60_000 }), (rate, ramp, ms) => {
      const i = firstIndexAt(ms, rate, ramp);
      expect(intendedTimeMs(i, rate, ramp)).toBeGreaterThanOrEqual(ms);
      if (i > 0) expect(intendedTimeMs(i - 1, rate, ramp)).toBeLessThan(ms);
    }));
  });

  it('each arrival\'s endpoint draw is its own (the same from any process) and uniform', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 31 }), fc.integer({ min: 0, max: 1e9 }), (seed, i) => {
      const u = uniformAt(seed, i);
      expect(u).toBeGreaterThanOrEqual(0);
      expect(u).toBeLessThan(1);
      expect(uniformAt(seed, i)).toBe(u);
    }));
    const buckets = new Array(10).fill(0);
    for (let i = 0; i < 100_000; i++) buckets[Math.floor(uniformAt(7, i) * 10)]++;
    for (const b of buckets) expect(Math.abs(b - 10_000)).toBeLessThan(500);
  });
});
