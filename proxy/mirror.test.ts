// The mirror through the real proxy, against real local upstreams: clients get only the stable
// colour's answers (bodies and headers exactly as without a mirror), copies appear in no client
// count, only GET/HEAD without a body is copied and never a pinned request, and the mirror is
// bounded (rate, in flight) and survives a candidate that hangs or is not there.
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Color } from '../lib/config.js';
import type { RoutingTable } from '../lib/contracts/routing.js';
import { createLogger } from '../lib/logger.js';
import { createMirror, MIRROR_MAX_IN_FLIGHT, type Mirror } from './mirror.js';
import { MIRROR_HEADER } from './router.js';
import { buildProxyServer } from './server.js';

const log = createLogger('mirror-test', { level: 'silent' });
type Seen = { method: string; url: string; headers: IncomingHttpHeaders };
const seen: Record<Color, Seen[]> = { blue: [], green: [] };
const held: ServerResponse[] = [];
let blue: Server;
let green: Server;
let greenHangs = false;

function upstream(color: Color): Promise<Server> {
  const server = createServer((req, res) => {
    seen[color].push({ method: req.method!, url: req.url!, headers: req.headers });
    req.resume().on('end', () => {
      if (color === 'green' && greenHangs) return void held.push(res);
      const body = JSON.stringify({ color, url: req.url });
      res.writeHead(color === 'green' ? 500 : 200, { 'content-type': 'application/json', 'x-app': color, 'set-cookie': `from=${color}` }).end(req.method === 'HEAD' ? undefined : body);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}
const url = (s: Server): string => `http://127.0.0.1:${(s.address() as AddressInfo).port}`;

const warmup = (share = 1): RoutingTable => ({ stable: 'blue', candidate: null, candidateWeight: 0, rolloutId: null, mirror: { color: 'green', share, purpose: 'warmup' } });

interface Harness {
  url: string;
  mirror: Mirror;
  measured: Color[];
  answered: Array<{ color: Color; purpose: string; status: number }>;
  skipped: string[];
  close(): Promise<void>;
}

async function proxy(table: RoutingTable | null, o: { maxPerSecond?: number; now?: () => number; greenUrl?: string } = {}): Promise<Harness> {
  const measured: Color[] = [];
  const answered: Harness['answered'] = [];
  const skipped: string[] = [];
  const upstreams = { blue: url(blue), green: o.greenUrl ?? url(green) };
  const mirror = createMirror({
    upstreams, maxPerSecond: o.maxPerSecond ?? 100_000, log,
    onAnswered: (color, purpose, _ms, status) => answered.push({ color, purpose, status }),
    onSkipped: (_color, reason) => skipped.push(reason),
    ...(o.now ? { now: o.now } : {}),
  });
  const app = await buildProxyServer({
    log, upstreams, accessLog: 'off', routingTable: () => table ?? { stable: 'blue', candidate: null, candidateWeight: 0, rolloutId: null },
    onMeasured: (color) => measured.push(color), mirror,
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { url: url(app.server), mirror, measured, answered, skipped, async close() { await app.close(); await mirror.close(); } };
}

/** Waits (on state, not time) until `done` holds. */
async function until(what: string, done: () => boolean, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !done();) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function get(base: string, path: string, init: RequestInit = {}): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const res = await fetch(`${base}${path}`, init);
  const body = await res.text();
  const headers = Object.fromEntries([...res.headers].filter(([k]) => k !== 'date'));
  return { status: res.status, headers, body };
}

beforeAll(async () => {
  blue = await upstream('blue');
  green = await upstream('green');
});
afterAll(() => {
  blue.close();
  green.close();
});
afterEach(() => {
  seen.blue.length = 0;
  seen.green.length = 0;
  greenHangs = false;
  for (const res of held.splice(0)) res.destroy();
});

describe('the mirror', () => {
  it('gives clients the stable answer unchanged, copies GET/HEAD to the candidate with a mark, and counts copies apart', async () => {
    const plain = await proxy(null);
    const mirrored = await proxy(warmup());
    try {
      for (const [method, path] of [['GET', '/api/data?x=1'], ['HEAD', '/api/items']] as const) {
        const without = await get(plain.url, path, { method, headers: { cookie: 'session=abc' } });
        const withCopy = await get(mirrored.url, path, { method, headers: { cookie: 'session=abc' } });
        expect(withCopy, method).toEqual(without);
        expect(withCopy.headers['x-app']).toBe('blue');
        expect(withCopy.headers['set-cookie']).toBe('from=blue');
      }
      await until('two copies answered', () => mirrored.answered.length === 2);
      // The candidate answered 500 to each copy: no client saw it, and no client count has it.
      expect(mirrored.answered).toEqual([{ color: 'green', purpose: 'warmup', status: 500 }, { color: 'green', purpose: 'warmup', status: 500 }]);
      await until('both client answers measured', () => mirrored.measured.length === 2);
      expect(mirrored.measured).toEqual(['blue', 'blue']);
      expect(seen.green.map((s) => [s.method, s.url, s.headers[MIRROR_HEADER], s.headers.cookie])).toEqual([['GET', '/api/data?x=1', 'warmup', 'session=abc'], ['HEAD', '/api/items', 'warmup', 'session=abc']]);
      expect(mirrored.mirror.counts('green')).toMatchObject({ mirrored: 2, answered: 2, ok: 0, failed: 2, skipped: 0 });
    } finally {
      await plain.close();
      await mirrored.close();
    }
  });

  it('never copies a request with a body, another method, or a pin', async () => {
    const h = await proxy(warmup());
    try {
      await get(h.url, '/api/items', { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } });
      await get(h.url, '/api/items/1', { method: 'DELETE' });
      await get(h.url, '/api/items/1', { method: 'PUT', body: 'x' });
      await get(h.url, '/api/data', { method: 'OPTIONS' });
      await get(h.url, '/api/data', { headers: { 'x-changelens-color': 'blue' } });
      await get(h.url, '/api/data', { headers: { cookie: 'changelens-color=blue' } });
      // A pin to the candidate reaches it once, as the client's own request, never as a copy.
      await get(h.url, '/api/data', { headers: { 'x-changelens-color': 'green' } });
      // One plain GET is copied: the mirror works, the others were refused by rule. A client's own
      // mark is stripped: only the proxy says what is a copy.
      await get(h.url, '/api/data', { headers: { [MIRROR_HEADER]: 'analysis' } });
      await until('the one copy answered', () => h.answered.length === 1);
      expect(seen.green.map((s) => [s.method, s.headers[MIRROR_HEADER] ?? 'client'])).toEqual([['GET', 'client'], ['GET', 'warmup']]);
      expect(seen.blue.at(-1)!.headers[MIRROR_HEADER]).toBeUndefined();
      expect(h.mirror.counts('green').mirrored).toBe(1);
    } finally {
      await h.close();
    }
  });

  it('copies only its share', async () => {
    const h = await proxy(warmup(0.25));
    try {
      for (let i = 0; i < 400; i++) await get(h.url, '/api/data');
      const copies = h.mirror.counts('green').mirrored;
      // Binomial(400, 0.25): 100 ± 8.7; the bounds are over 5 standard deviations out.
      expect(copies).toBeGreaterThan(55);
      expect(copies).toBeLessThan(145);
    } finally {
      await h.close();
    }
  });

  it('is bounded by its rate: past the bucket, copies are skipped and counted', async () => {
    // Time stands still: the bucket (a tenth of a second of 50/s = 5) never refills.
    const h = await proxy(warmup(), { maxPerSecond: 50, now: () => 1_000 });
    try {
      for (let i = 0; i < 40; i++) await get(h.url, '/api/data');
      expect(h.mirror.counts('green')).toMatchObject({ mirrored: 5, skipped: 35 });
      expect(new Set(h.skipped)).toEqual(new Set(['rate']));
      expect(h.mirror.synthetic('green', '/')).toBe(false);
      await until('every client answer measured', () => h.measured.length === 40);
    } finally {
      await h.close();
    }
  });

  it('is bounded in flight: a candidate that hangs holds at most its share of sockets, and clients do not wait for it', async () => {
    greenHangs = true;
    const h = await proxy(warmup());
    try {
      const answers = await Promise.all(Array.from({ length: MIRROR_MAX_IN_FLIGHT + 20 }, () => get(h.url, '/api/data')));
      expect(answers.every((a) => a.status === 200 && a.headers['x-app'] === 'blue')).toBe(true);
      await until('the copies reached the candidate', () => held.length === MIRROR_MAX_IN_FLIGHT);
      expect(h.mirror.counts('green')).toMatchObject({ mirrored: MIRROR_MAX_IN_FLIGHT, skipped: 20, answered: 0 });
      expect(new Set(h.skipped)).toEqual(new Set(['in_flight']));
    } finally {
      await h.close();
    }
  });

  it('survives a candidate that is not there: failures are counted, clients answered', async () => {
    const probe = await upstream('green');
    const dead = url(probe);
    await new Promise((r) => probe.close(r));
    const h = await proxy(warmup(), { greenUrl: dead });
    try {
      for (let i = 0; i < 5; i++) expect((await get(h.url, '/api/data')).status).toBe(200);
      await until('five failed copies', () => h.answered.length === 5);
      expect(h.answered.every((a) => a.status === 0)).toBe(true);
      expect(h.mirror.counts('green')).toMatchObject({ mirrored: 5, answered: 0, failed: 5 });
    } finally {
      await h.close();
    }
  });

  it('sends synthetic warm-up GETs straight to the colour, marked, and nothing after close', async () => {
    const h = await proxy(null);
    try {
      expect(h.mirror.synthetic('green', '/api/data?warm=1')).toBe(true);
      await until('the synthetic GET answered', () => h.answered.length === 1);
      expect(seen.green.map((s) => [s.method, s.url, s.headers[MIRROR_HEADER], s.headers['user-agent']])).toEqual([['GET', '/api/data?warm=1', 'warmup', 'changelens-warmup']]);
      expect(h.measured).toEqual([]);
      expect(h.mirror.counts('green')).toMatchObject({ synthetic: 1, answered: 1, ok: 0 });
    } finally {
      await h.close();
    }
    expect(h.mirror.synthetic('green', '/')).toBe(false);
  });
});
