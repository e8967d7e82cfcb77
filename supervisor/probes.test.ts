// Probes report, they never throw: a service that refuses, or accepts and says nothing, reads as
// "not ready" with the reason, within the probe's bound (the boot loop calls them until ready).
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeHttp, probePostgres, probeRedis } from './probes.js';

let refusedPort: number;
let silent: Server;
let silentPort: number;
const sockets: Socket[] = [];

const listen = (server: Server): Promise<number> => new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));

beforeAll(async () => {
  // A port nobody listens on: bound once, then closed.
  const once = createServer();
  refusedPort = await listen(once);
  await new Promise((resolve) => once.close(resolve));
  silent = createServer((socket) => { sockets.push(socket); });
  silentPort = await listen(silent);
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => silent.close(resolve));
});

const probes = {
  postgres: (port: number) => probePostgres(`postgres://u:p@127.0.0.1:${port}/db`),
  redis: (port: number) => probeRedis(`redis://127.0.0.1:${port}`),
  http: (port: number) => probeHttp(`http://127.0.0.1:${port}/readyz`),
};

describe.each(Object.entries(probes))('%s probe', (_name, probe) => {
  it('a refused connection is "not ready", naming ECONNREFUSED; probing again works the same', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await probe(refusedPort);
      expect(r.ok).toBe(false);
      expect(r.error).toMatch(/ECONNREFUSED/);
    }
  });

  it('a service that accepts and never answers is "not ready" within the probe\'s bound', async () => {
    const started = performance.now();
    const r = await probe(silentPort);
    expect(r.ok).toBe(false);
    expect(r.error).toBeTruthy();
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});
