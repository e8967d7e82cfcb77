// The proxy against real local upstreams: which requests are retried on the stable colour when the
// candidate cannot be reached (and which are not), what the judge is told, and that a 503 is never
// retried (reply-from would retry it ten times by default).
import { createServer, request, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Color } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { initTracing } from '../lib/tracing.js';
import type { RoutingTable } from '../lib/contracts/routing.js';
import { buildProxyServer, type ProxyOptions } from './server.js';

type Hit = { color: Color; method: string };
const hits: Hit[] = [];
const measured: Array<[Color, number]> = [];
const retried: Color[] = [];
let stable: Server;
let candidate503: Server;
let deadPort: number;
let table: RoutingTable;

function upstream(color: Color, status: number): Promise<Server> {
  const server = createServer((req, res) => {
    hits.push({ color, method: req.method! });
    req.resume().on('end', () => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ color })));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}
const portOf = (s: Server): number => (s.address() as AddressInfo).port;

const held: Color[] = [];

/** Waits (on state, not time) until `done` holds. */
async function until(what: string, done: () => boolean, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !done();) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const previewed: Array<[Color, number]> = [];

async function proxyTo(candidatePort: number, o: { holdMs?: number; stablePort?: number; maxInFlight?: number; clientTimeouts?: { headersMs: number; requestMs: number }; previewAccess?: ProxyOptions['previewAccess']; jobColor?: ProxyOptions['jobColor']; notReady?: ProxyOptions['notReady'] } = {}) {
  const app = await buildProxyServer({
    ...(o.notReady !== undefined ? { notReady: o.notReady } : {}),
    ...(o.jobColor !== undefined ? { jobColor: o.jobColor } : {}),
    ...(o.previewAccess !== undefined ? { previewAccess: o.previewAccess } : {}),
    onPreview: (color, status) => previewed.push([color, status]),
    ...(o.holdMs !== undefined ? { holdMs: o.holdMs } : {}),
    ...(o.maxInFlight !== undefined ? { maxInFlight: o.maxInFlight } : {}),
    ...(o.clientTimeouts !== undefined ? { clientTimeouts: o.clientTimeouts } : {}),
    onHeld: (color) => held.push(color),
    log: createLogger('proxy-test', { level: 'silent' }),
    upstreams: { blue: `http://127.0.0.1:${o.stablePort ?? portOf(stable)}`, green: `http://127.0.0.1:${candidatePort}` },
    routingTable: () => table,
    accessLog: 'off',
    onMeasured: (color, _ms, status) => measured.push([color, status]),
    onRetriedOnStable: (from) => retried.push(from),
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, url: `http://127.0.0.1:${portOf(app.server)}` };
}

beforeAll(async () => {
  // As in the appliance without an OTLP endpoint: ids drawn, nothing recorded; the trace header reaches the app.
  await initTracing('proxy-test', undefined);
  stable = await upstream('blue', 200);
  candidate503 = await upstream('green', 503);
  // A port nobody listens on: bound once, then released.
  const probe = await upstream('green', 200);
  deadPort = portOf(probe);
  await new Promise((r) => probe.close(r));
});
afterAll(() => {
  stable.close();
  candidate503.close();
});
afterEach(() => {
  held.length = 0;
  hits.length = 0;
  measured.length = 0;
  retried.length = 0;
});

describe('a candidate that cannot be reached', () => {
  it('GET by weight: answered by the stable colour, and the judge sees the candidate fail', async () => {
    table = { stable: 'blue', candidate: 'green', candidateWeight: 1, rolloutId: 'r1' };
    const { app, url } = await proxyTo(deadPort);
    try {
      for (const method of ['GET', 'HEAD']) {
        measured.length = 0;
        const res = await fetch(`${url}/api/data`, { method });
        await res.arrayBuffer();
        expect(res.status, method).toBe(200);
        expect(res.headers.get('x-changelens-color')).toBe('blue');
        expect(res.headers.get('x-changelens-retried-from')).toBe('green');
        expect(measured).toEqual([['green', 502], ['blue', 200]]);
      }
      expect(retried).toEqual(['green', 'green']);
    } finally {
      await app.close();
    }
  });

  it('POST is not retried (its body was consumed): the client sees the failure', async () => {
    table = { stable: 'blue', candidate: 'green', candidateWeight: 1, rolloutId: 'r1' };
    const { app, url } = await proxyTo(deadPort);
    try {
      const res = await fetch(`${url}/api/process`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"workMs":1}' });
      await res.arrayBuffer();
      expect(res.status).toBeGreaterThanOrEqual(500);
      expect(hits).toEqual([]);
      expect(retried).toEqual([]);
      expect(measured).toEqual([['green', res.status]]);
    } finally {
      await app.close();
    }
  });

  it('a pinned request (a preview) sees the candidate\'s real failure', async () => {
    table = { stable: 'blue', candidate: 'green', candidateWeight: 0.5, rolloutId: 'r1' };
    const { app, url } = await proxyTo(deadPort);
    try {
      const res = await fetch(`${url}/api/data`, { headers: { 'x-changelens-color': 'green' } });
      await res.arrayBuffer();
      expect(res.status).toBeGreaterThanOrEqual(500);
      expect(hits).toEqual([]);
      expect(retried).toEqual([]);
    } finally {
      await app.close();
    }
  });
});

describe('a colour that is down (crashed, pm2 restarting it)', () => {
  it('an idempotent request is held and re-sent to it until it is back: the client sees a wait, not an error', async () => {
    table = { stable: 'blue', candidate: null, candidateWeight: 0, rolloutId: null };
    const port = deadPort;
    const { app, url } = await proxyTo(deadPort, { stablePort: port });
    let back: Server | undefined;
    try {
      const started = performance.now();
      const answer = fetch(`${url}/api/data`).then(async (res) => ({ status: res.status, body: await res.json(), ms: performance.now() - started }));
      // It comes back on its port once the proxy has been refused (and holds the request).
      await until('the request held', () => held.length > 0);
      back = createServer((req, res) => {
        hits.push({ color: 'blue', method: req.method! });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"back":true}');
      });
      await new Promise<void>((r) => back!.listen(port, '127.0.0.1', r));
      const res = await answer;
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ back: true });
      expect(held).toEqual(['blue']);
      expect(hits).toEqual([{ color: 'blue', method: 'GET' }]);
      // The judge sees one request, with the wait in its latency.
      expect(measured).toEqual([['blue', 200]]);
    } finally {
      await app.close();
      back?.close();
    }
  });

  it('the hold is bounded: a colour that stays down gives 502 after it; a request with a body or a pin fails at once', async () => {
    table = { stable: 'blue', candidate: null, candidateWeight: 0, rolloutId: null };
    const { app, url } = await proxyTo(deadPort, { holdMs: 600, stablePort: deadPort });
    try {
      const timed = async (init: RequestInit = {}) => {
        const started = performance.now();
        const res = await fetch(`${url}/api/data`, init);
        await res.arrayBuffer();
        return { status: res.status, ms: performance.now() - started };
      };
      const get = await timed();
      expect(get.status).toBe(502);
      expect(get.ms).toBeGreaterThanOrEqual(550);
      expect(get.ms).toBeLessThan(5_000);
      const post = await timed({ method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"workMs":1}' });
      expect(post.status).toBe(502);
      const pinned = await timed({ headers: { 'x-changelens-color': 'blue' } });
      expect(pinned.status).toBe(502);
      // Neither waited for the colour: only the GET was held.
      expect(held).toEqual(['blue']);
      expect(post.ms + pinned.ms).toBeLessThan(get.ms);
    } finally {
      await app.close();
    }
  });
});

describe('a held request and the routing', () => {
  it('moves to the stable colour when the routing left the down one meanwhile (a switch)', async () => {
    table = { stable: 'blue', candidate: null, candidateWeight: 0, rolloutId: null };
    // blue is down; green (the upstream that answers) becomes the stable colour while the request waits.
    const { app, url } = await proxyTo(portOf(stable), { stablePort: deadPort });
    try {
      const answer = fetch(`${url}/api/data`).then(async (res) => ({ status: res.status, color: res.headers.get('x-changelens-color') }));
      await until('the request held', () => held.length > 0);
      table = { stable: 'green', candidate: null, candidateWeight: 0, rolloutId: null };
      expect(await answer).toEqual({ status: 200, color: 'green' });
      expect(measured).toEqual([['green', 200]]);
    } finally {
      await app.close();
    }
  });

  it('does not wait again for a colour that has been down for longer than the hold', async () => {
    table = { stable: 'blue', candidate: null, candidateWeight: 0, rolloutId: null };
    const { app, url } = await proxyTo(deadPort, { holdMs: 300, stablePort: deadPort });
    try {
      const first = await fetch(`${url}/api/data`);
      expect(first.status).toBe(502);
      await first.arrayBuffer();
      const started = performance.now();
      const second = await fetch(`${url}/api/data`);
      await second.arrayBuffer();
      expect(second.status).toBe(502);
      expect(held).toEqual(['blue']);
      expect(performance.now() - started).toBeLessThan(300);
    } finally {
      await app.close();
    }
  });
});

describe('a candidate that answers', () => {
  it('a 503 reaches the client once: no retry, on either colour', async () => {
    table = { stable: 'blue', candidate: 'green', candidateWeight: 1, rolloutId: 'r1' };
    const { app, url } = await proxyTo(portOf(candidate503));
    try {
      const res = await fetch(`${url}/api/data`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ color: 'green' });
      expect(hits).toEqual([{ color: 'green', method: 'GET' }]);
      expect(measured).toEqual([['green', 503]]);
    } finally {
      await app.close();
    }
  });
});

describe('what passes through', () => {
  /** An upstream that echoes what it received and answers with the headers it is told to. */
  function echo(answer: Record<string, string | string[]>, body = ''): Promise<Server> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c)).on('end', () => {
        res.writeHead(200, { ...answer, 'content-type': 'application/json' });
        res.end(JSON.stringify({ headers: req.headers, method: req.method, url: req.url, body: Buffer.concat(chunks).toString(), extra: body }));
      });
    });
    return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
  }

  it('request: hop-by-hop headers dropped, x-forwarded-* and traceparent added, body and query intact', async () => {
    table = { stable: 'blue', candidate: null, candidateWeight: 0, rolloutId: null };
    const up = await echo({});
    stable.close();
    stable = up;
    const { app, url } = await proxyTo(deadPort);
    try {
      // node:http, not fetch: fetch refuses to send a Connection header.
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const r = request(`${url}/api/echo?q=1&r=%20`, {
          method: 'POST',
          headers: { connection: 'keep-alive, x-hop', 'x-hop': 'secret', 'x-kept': 'yes', 'content-type': 'text/plain' },
        }, (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (c: string) => { text += c; }).on('end', () => resolve({ status: res.statusCode!, body: text }));
        });
        r.on('error', reject).end('x'.repeat(100_000));
      });
      const res = { status };
      const seen = JSON.parse(body) as { headers: Record<string, string>; url: string; body: string; method: string };
      expect(res.status).toBe(200);
      expect(seen.method).toBe('POST');
      expect(seen.url).toBe('/api/echo?q=1&r=%20');
      expect(seen.body).toBe('x'.repeat(100_000));
      expect(seen.headers['x-kept']).toBe('yes');
      expect(seen.headers['x-hop']).toBeUndefined();
      expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
      expect(seen.headers['x-forwarded-proto']).toBe('http');
      expect(seen.headers['x-forwarded-host']).toBe(new URL(url).host);
      expect(seen.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    } finally {
      await app.close();
    }
  });

  it('trace context: a valid one is continued (same trace, this proxy\'s span, its tracestate); a malformed one starts a trace and none of it goes on', async () => {
    table = { stable: 'blue', candidate: null, candidateWeight: 0, rolloutId: null };
    const up = await echo({});
    stable.close();
    stable = up;
    const { app, url } = await proxyTo(deadPort);
    const seen = async (headers: Record<string, string>): Promise<Record<string, string>> =>
      ((await (await fetch(`${url}/api/echo`, { headers })).json()) as { headers: Record<string, string> }).headers;
    try {
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const continued = await seen({ traceparent: `00-${traceId}-00f067aa0ba902b7-01`, tracestate: 'vendor=abc' });
      expect(continued.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
      expect(continued.traceparent).not.toContain('00f067aa0ba902b7');
      expect(continued.tracestate).toBe('vendor=abc');
      const fresh = await seen({ traceparent: `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`, tracestate: `vendor=${'x'.repeat(4000)}` });
      expect(fresh.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
      expect(fresh.traceparent).not.toContain('0'.repeat(32));
      expect(fresh.tracestate).toBeUndefined();
    } finally {
      await app.close();
    }
  });

  it('response: metric headers reported and stripped, sticky cookie added after the app\'s own, colour echoed', async () => {
    table = { stable: 'blue', candidate: 'green', candidateWeight: 1, rolloutId: 'r1' };
    const green = await echo({ 'x-changelens-metric-recall_at_10': '0.42', 'x-changelens-metric-Bad-Name': '1', 'set-cookie': ['a=1', 'b=2'] });
    const metrics: Array<[Color, string, number]> = [];
    const app = await buildProxyServer({
      log: createLogger('proxy-test', { level: 'silent' }),
      upstreams: { blue: `http://127.0.0.1:${portOf(stable)}`, green: `http://127.0.0.1:${portOf(green)}` },
      routingTable: () => table, accessLog: 'off',
      onMetric: (color, name, value) => metrics.push([color, name, value]),
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const res = await fetch(`http://127.0.0.1:${portOf(app.server)}/api/data`);
      await res.arrayBuffer();
      expect(res.headers.get('x-changelens-color')).toBe('green');
      expect([...res.headers.keys()].filter((h) => h.startsWith('x-changelens-metric'))).toEqual([]);
      expect(metrics).toEqual([['green', 'recall_at_10', 0.42]]);
      const cookies = res.headers.getSetCookie();
      expect(cookies.slice(0, 2)).toEqual(['a=1', 'b=2']);
      expect(cookies[2]).toMatch(/^changelens-sticky=.+; Path=\/; HttpOnly/);
    } finally {
      await app.close();
      green.close();
    }
  });

  it('own paths stay the appliance\'s; a look-alike path is the app\'s', async () => {
    table = { stable: 'blue', candidate: null, candidateWeight: 0, rolloutId: null };
    const { app, url } = await proxyTo(deadPort);
    try {
      expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: 'ok' });
      const lookAlike = await fetch(`${url}/_changelensx/y`);
      expect(lookAlike.headers.get('x-changelens-color')).toBe('blue');
      await lookAlike.arrayBuffer();
    } finally {
      await app.close();
    }
  });

  it('while unavailable (a restore): 503 with Retry-After, nothing reaches the app', async () => {
    table = { stable: 'blue', candidate: null, candidateWeight: 0, rolloutId: null };
    const app = await buildProxyServer({
      log: createLogger('proxy-test', { level: 'silent' }),
      upstreams: { blue: `http://127.0.0.1:${portOf(stable)}`, green: `http://127.0.0.1:${deadPort}` },
      routingTable: () => table, accessLog: 'off',
      unavailable: () => ({ retryAfterSeconds: 7, reason: 'restoring backup b-1' }),
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const res = await fetch(`http://127.0.0.1:${portOf(app.server)}/api/data`);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('7');
      expect(await res.json()).toMatchObject({ code: 'CL_ERR_MAINTENANCE', message: 'restoring backup b-1' });
      expect(hits).toEqual([]);
    } finally {
      await app.close();
    }
  });

  it('a client that leaves mid-request: the app\'s request is aborted and 499 recorded', async () => {
    table = { stable: 'blue', candidate: null, candidateWeight: 0, rolloutId: null };
    let upstreamClosed!: () => void;
    const closed = new Promise<void>((r) => { upstreamClosed = r; });
    const slow = createServer((req) => { req.socket.on('close', () => upstreamClosed()); });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    stable.close();
    stable = slow;
    const { app, url } = await proxyTo(deadPort);
    try {
      const ac = new AbortController();
      const pending = fetch(`${url}/api/hang`, { signal: ac.signal }).catch(() => 'aborted');
      await new Promise((r) => setTimeout(r, 100));
      ac.abort();
      expect(await pending).toBe('aborted');
      await closed;
      await expect.poll(() => measured).toEqual([['blue', 499]]);
    } finally {
      await app.close();
      slow.closeAllConnections();
    }
  });

  it('/readyz: not ready while the proxy itself lacks something (its rollout state), however ready the app is', async () => {
    table = { stable: 'blue', candidate: null, candidateWeight: 0, rolloutId: null };
    let lacking: string | null = 'rollout state not loaded from Postgres yet';
    const ready = await upstream('blue', 200);
    const { app, url } = await proxyTo(deadPort, { stablePort: portOf(ready), notReady: () => lacking });
    try {
      const before = await fetch(`${url}/readyz`);
      expect(before.status).toBe(503);
      expect(await before.json()).toMatchObject({ status: 'not ready', reason: 'rollout state not loaded from Postgres yet' });
      lacking = null;
      const after = await fetch(`${url}/readyz`);
      expect([after.status, (await after.json() as { status: string }).status]).toEqual([200, 'ready']);
    } finally {
      await app.close();
      ready.close();
    }
  });

  it('an app that cannot be reached (past the hold): 502 naming the colour and what failed, in the error shape, never an internal address', async () => {
    table = { stable: 'green', candidate: null, candidateWeight: 0, rolloutId: null };
    const { app, url } = await proxyTo(deadPort, { holdMs: 100 });
    try {
      const res = await fetch(`${url}/api/data`);
      expect(res.status).toBe(502);
      const body = await res.json() as { message: string };
      expect(body).toMatchObject({ statusCode: 502, code: 'CL_ERR_UPSTREAM', error: 'Bad Gateway', message: 'api-green could not be reached: ECONNREFUSED' });
      expect(JSON.stringify(body)).not.toContain(String(deadPort));
      const ready = await fetch(`${url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.text()).not.toContain(String(deadPort));
    } finally {
      await app.close();
    }
  });
});

describe('ambiguous framing (raw sockets): refused with the connection closed, or cleaned, before the app', () => {
  /** What the app received: method, url, headers and body of each request. */
  const received: { method: string; url: string; headers: Record<string, string | string[] | undefined>; body: string }[] = [];
  let app: Server;
  let proxy: Awaited<ReturnType<typeof proxyTo>>;
  beforeAll(async () => {
    app = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        received.push({ method: req.method!, url: req.url!, headers: req.headers, body });
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    table = { stable: 'blue', candidate: null, candidateWeight: 0, rolloutId: null };
    proxy = await proxyTo(deadPort, { stablePort: portOf(app) });
  });
  afterAll(async () => {
    await proxy.app.close();
    app.close();
  });

  /** Writes raw bytes, reads until the proxy closes the connection (or 5 s pass: then `closed` is false). */
  function raw(bytes: string): Promise<{ text: string; closed: boolean }> {
    return new Promise((resolve) => {
      const socket = connect(portOf(proxy.app.server), '127.0.0.1');
      let text = '';
      const timer = setTimeout(() => { socket.destroy(); resolve({ text, closed: false }); }, 5_000);
      socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
      socket.on('error', () => {});
      socket.on('close', () => { clearTimeout(timer); resolve({ text, closed: true }); });
      socket.write(bytes);
    });
  }

  it.each([
    ['a body on GET', 'GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 38\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n', 'CL_ERR_AMBIGUOUS_REQUEST'],
    ['a chunked body on HEAD', 'HEAD /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', null],
    ['Transfer-Encoding on HTTP/1.0', 'POST /x HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', 'CL_ERR_AMBIGUOUS_REQUEST'],
    ['Content-Length and Transfer-Encoding together', 'POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n', null],
    ['two different lengths', 'POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc', null],
    ['a space before the colon', 'POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc', null],
    ['an encoding that does not end in chunked', 'POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n', null],
  ])('%s: 400, the connection closed, nothing reaches the app', async (_what, bytes, code) => {
    received.length = 0;
    const { text, closed } = await raw(bytes);
    expect(text).toMatch(/^HTTP\/1\.[01] 400 /);
    if (code) expect(text).toContain(code);
    expect(closed).toBe(true);
    expect(received).toEqual([]);
  });

  it('header names with an underscore never reach the app (some servers read them as Transfer-Encoding or Content-Length); the body arrives whole', async () => {
    received.length = 0;
    const { text } = await raw('POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer_Encoding: chunked\r\nContent_Length: 0\r\nX_Custom: 1\r\nX-Kept: 2\r\nX-ChangeLens-Control: a-credential\r\nX-ChangeLens-Job-Color: green\r\nConnection: close\r\n\r\nabc');
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(received).toHaveLength(1);
    expect(Object.keys(received[0]!.headers).filter((h) => h.includes('_'))).toEqual([]);
    // Nor the app's control credential: only the admin API adds it.
    expect(received[0]!.headers['x-changelens-control']).toBeUndefined();
    // Nor a job colour of the client's choosing: only the proxy names one (CHANGELENS_JOB_SPLIT=weight).
    expect(received[0]!.headers['x-changelens-job-color']).toBeUndefined();
    expect(received[0]).toMatchObject({ method: 'POST', url: '/x', body: 'abc', headers: { 'x-kept': '2', 'content-length': '3' } });
  });

  it('jobs split by weight: the proxy names the worker\'s colour for what the stable colour serves, whatever the client said', async () => {
    const split = await proxyTo(deadPort, { stablePort: portOf(app), jobColor: (served) => (served === 'blue' ? 'green' : undefined) });
    try {
      received.length = 0;
      const res = await fetch(`${split.url}/api/process`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-changelens-job-color': 'blue' }, body: '{}' });
      await res.text();
      expect(received.map((r) => r.headers['x-changelens-job-color'])).toEqual(['green']);
    } finally {
      await split.app.close();
    }
  });

  it('a GET with an empty body (Content-Length: 0) is fine', async () => {
    received.length = 0;
    const { text } = await raw('GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(received.map((r) => r.method)).toEqual(['GET']);
  });
});

describe('slow clients and a busy colour are bounded', () => {
  /** Requests the app received (whole, and as they started), and those it has not answered yet (held until released). */
  const arrived: string[] = [];
  const started: string[] = [];
  let holding: (() => void)[] = [];
  let app: Server;
  beforeAll(async () => {
    app = createServer((req, res) => {
      // Counted as it arrives, before its body: a slow body passed on as it comes would show here.
      started.push(`${req.method} ${req.url}`);
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        arrived.push(`${req.method} ${req.url} ${body.length > 100 ? `(${body.length} bytes)` : body}`);
        const answer = (): void => { res.end('ok'); };
        if (req.url === '/hang') holding.push(answer);
        else answer();
      });
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    table = { stable: 'blue', candidate: null, candidateWeight: 0, rolloutId: null };
  });
  afterAll(() => {
    app.closeAllConnections();
    app.close();
  });

  it('300 clients sending their bodies slowly hold no connection to the app: others are served as fast as before', async () => {
    const proxy = await proxyTo(deadPort, { stablePort: portOf(app) });
    const port = portOf(proxy.app.server);
    const timed = async (init?: RequestInit): Promise<number> => {
      const t = performance.now();
      const res = await fetch(`http://127.0.0.1:${port}/fast`, init);
      expect(res.status).toBe(200);
      await res.text();
      return performance.now() - t;
    };
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const slow: Socket[] = [];
    try {
      const before: number[] = [];
      for (let i = 0; i < 30; i++) before.push(await timed());
      arrived.length = 0;
      started.length = 0;
      for (let i = 0; i < 300; i++) {
        const socket = connect(port, '127.0.0.1');
        socket.on('error', () => {});
        socket.write('POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nx');
        slow.push(socket);
      }
      await until('300 slow clients connected', () => (proxy.app.server as unknown as { _connections: number })._connections >= 300);
      const during: number[] = [];
      for (let i = 0; i < 30; i++) during.push(await timed(i % 3 === 0 ? { method: 'POST', body: 'a small body' } : undefined));
      // None of the slow ones reached the app, not even their headers: their bodies are still being read by the proxy.
      expect(started.filter((a) => a.startsWith('POST /slow'))).toEqual([]);
      expect(arrived.filter((a) => a === 'POST /fast a small body')).toHaveLength(10);
      expect(median(during), `median ${median(during).toFixed(1)} ms vs ${median(before).toFixed(1)} ms before`).toBeLessThan(Math.max(3 * median(before), median(before) + 25));
    } finally {
      for (const socket of slow) socket.destroy();
      await proxy.app.close();
    }
  });

  it('a colour with its in-flight limit reached answers 503 + Retry-After at once, and serves again once they finish', async () => {
    const proxy = await proxyTo(deadPort, { stablePort: portOf(app), maxInFlight: 3 });
    try {
      const hanging = [1, 2, 3].map(() => fetch(`${proxy.url}/hang`));
      await until('three requests held by the app', () => holding.length === 3);
      const busy = await fetch(`${proxy.url}/fast`);
      expect(busy.status).toBe(503);
      expect(busy.headers.get('retry-after')).toBe('1');
      expect(await busy.json()).toMatchObject({ code: 'CL_ERR_UPSTREAM_BUSY', message: 'api-blue is at its bound: 3 requests in flight' });
      for (const answer of holding.splice(0)) answer();
      expect((await Promise.all(hanging)).map((r) => r.status)).toEqual([200, 200, 200]);
      expect((await fetch(`${proxy.url}/fast`)).status).toBe(200);
    } finally {
      holding = [];
      await proxy.app.close();
    }
  });

  it('a body over 1 MiB is streamed on and arrives whole; an Expect: 100-continue upload goes through', async () => {
    const proxy = await proxyTo(deadPort, { stablePort: portOf(app) });
    try {
      arrived.length = 0;
      const big = 'x'.repeat(3 * 1024 * 1024);
      const res = await fetch(`${proxy.url}/fast`, { method: 'POST', body: big });
      expect(res.status).toBe(200);
      expect(arrived).toEqual([`POST /fast (${big.length} bytes)`]);
      // curl sends Expect: 100-continue for large bodies; undici would refuse to pass it on.
      const answer = await new Promise<number>((resolve, reject) => {
        const req = request(`${proxy.url}/fast`, { method: 'POST', headers: { expect: '100-continue', 'content-length': '5' } }, (r) => { r.resume(); resolve(r.statusCode!); });
        req.on('continue', () => req.end('hello'));
        req.on('error', reject);
      });
      expect(answer).toBe(200);
    } finally {
      await proxy.app.close();
    }
  });

  it('headers not finished in time, or a body not finished in time: 408 and closed, nothing reaches the app', async () => {
    const proxy = await proxyTo(deadPort, { stablePort: portOf(app), clientTimeouts: { headersMs: 300, requestMs: 1_000 } });
    const port = portOf(proxy.app.server);
    const stall = (bytes: string): Promise<string> => new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let text = '';
      socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
      socket.on('error', () => {});
      socket.on('close', () => resolve(text));
      socket.write(bytes);
    });
    try {
      arrived.length = 0;
      const [headers, body] = await Promise.all([
        stall('GET /x HTTP/1.1\r\nHost: a\r\n'),
        stall('POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc'),
      ]);
      expect(headers).toMatch(/^HTTP\/1\.1 408 /);
      expect(body).toMatch(/^HTTP\/1\.1 408 /);
      expect(arrived).toEqual([]);
    } finally {
      await proxy.app.close();
    }
  });
});

describe('pins need a preview credential, and previews are never judged', () => {
  const seen: { url: string; headers: Record<string, string | string[] | undefined> }[] = [];
  let app: Server;
  beforeAll(async () => {
    app = createServer((req, res) => {
      seen.push({ url: req.url!, headers: req.headers });
      // An app trying to pin, stick or sign its users in: only its own cookie may pass.
      res.setHeader('set-cookie', ['changelens-color=green; Path=/', 'CHANGELENS-STICKY=r1.green; Path=/', 'changelens-preview=p1.x; Path=/', 'changelens-admin=x; Path=/_changelens', 'session=app; Path=/']);
      res.setHeader('x-changelens-metric-recall', '0.1');
      res.end('ok');
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    table = { stable: 'blue', candidate: 'green', candidateWeight: 0, rolloutId: 'r1' };
  });
  afterAll(() => app.close());
  afterEach(() => { seen.length = 0; previewed.length = 0; });

  const access: ProxyOptions['previewAccess'] = (req) => (req.headers['x-changelens-preview'] === 'ok-preview' ? 'preview' : req.headers['x-changelens-preview'] === 'ok-analysis' ? 'analysis' : null);

  it('without a credential a pin is refused (403) and reaches nothing; with one it is served, the credential never passed on', async () => {
    const proxy = await proxyTo(portOf(app), { stablePort: portOf(app), previewAccess: access });
    try {
      for (const headers of [{ 'x-changelens-color': 'green' }, { cookie: 'changelens-color=green' }, { 'x-changelens-color': 'green', 'x-changelens-preview': 'forged' }] as Record<string, string>[]) {
        const refused = await fetch(`${proxy.url}/x`, { headers });
        expect(refused.status).toBe(403);
        expect(await refused.json()).toMatchObject({ code: 'CL_ERR_PIN_REFUSED', message: 'a request pinned to green needs a preview credential' });
      }
      expect(seen).toEqual([]);
      const ok = await fetch(`${proxy.url}/x`, { headers: { 'x-changelens-color': 'green', 'x-changelens-preview': 'ok-preview' } });
      expect([ok.status, ok.headers.get('x-changelens-color')]).toEqual([200, 'green']);
      expect(seen[0]!.headers['x-changelens-preview']).toBeUndefined();
      // Nor do the appliance's own cookies (a preview credential, a dashboard session): the app's pass.
      await (await fetch(`${proxy.url}/x`, { headers: { 'x-changelens-color': 'green', 'x-changelens-preview': 'ok-preview', cookie: 'changelens-preview=p1.x; session=app; changelens-admin=s' } })).text();
      expect(seen[1]!.headers.cookie).toBe('session=app');
    } finally {
      await proxy.app.close();
    }
  });

  it('a preview is counted apart and never judged (latency, status, app metrics); an analysis pin is judged', async () => {
    const metrics: string[] = [];
    const proxy = await buildProxyServer({
      log: createLogger('proxy-test', { level: 'silent' }), upstreams: { blue: `http://127.0.0.1:${portOf(app)}`, green: `http://127.0.0.1:${portOf(app)}` },
      routingTable: () => table, accessLog: 'off', previewAccess: access,
      onMeasured: (color, _ms, status) => measured.push([color, status]),
      onPreview: (color, status) => previewed.push([color, status]),
      onMetric: (color, name) => metrics.push(`${color}:${name}`),
    });
    await proxy.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${portOf(proxy.server)}`;
    try {
      measured.length = 0;
      await (await fetch(`${url}/x`, { headers: { 'x-changelens-color': 'green', 'x-changelens-preview': 'ok-preview' } })).text();
      await until('the preview counted', () => previewed.length === 1);
      expect([measured, metrics]).toEqual([[], []]);
      await (await fetch(`${url}/x`, { headers: { 'x-changelens-color': 'green', 'x-changelens-preview': 'ok-analysis' } })).text();
      await until('the analysis pin judged', () => measured.length === 1);
      expect([measured, previewed, metrics]).toEqual([[['green', 200]], [['green', 200]], ['green:recall']]);
    } finally {
      await proxy.close();
    }
  });

  it('an app cannot set the appliance\'s cookies (pin, sticky, preview, session); its own pass', async () => {
    const proxy = await proxyTo(portOf(app), { stablePort: portOf(app), previewAccess: access });
    try {
      const res = await fetch(`${proxy.url}/x`);
      expect(res.headers.getSetCookie()).toEqual(['session=app; Path=/']);
    } finally {
      await proxy.app.close();
    }
  });
});
