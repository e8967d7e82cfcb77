// The proxy against real local upstreams: which requests are retried on the stable colour when the
// candidate cannot be reached (and which are not), what the judge is told, and that a 503 is never
// retried (reply-from would retry it ten times by default).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Color } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import type { RoutingTable } from './router.js';
import { buildProxyServer } from './server.js';

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

async function proxyTo(candidatePort: number) {
  const app = await buildProxyServer({
    log: createLogger('proxy-test', { level: 'silent' }),
    upstreams: { blue: `http://127.0.0.1:${portOf(stable)}`, green: `http://127.0.0.1:${candidatePort}` },
    routingTable: () => table,
    accessLog: 'off',
    onMeasured: (color, _ms, status) => measured.push([color, status]),
    onRetriedOnStable: (from) => retried.push(from),
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, url: `http://127.0.0.1:${portOf(app.server)}` };
}

beforeAll(async () => {
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
