// The public port held here and handed to a real child process over a real IPC channel, as the
// supervisor does with the proxy: served, waited for, not refused across a kill -9, bounded.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HANDOFF_CONNECTION } from '../lib/contracts/handoff.js';
import { createLogger } from '../lib/logger.js';
import { eventually } from '../test/helpers/eventually.js';
import { PublicListener, type HandoffTarget } from './public-listener.js';

const log = createLogger('test', { level: 'silent' });
let dir: string;
let server: string;
const children: ChildProcess[] = [];
const listeners: PublicListener[] = [];

/** A stand-in proxy: serves what it is handed, answering its pid. */
const SERVER = `
import http from 'node:http';
import net from 'node:net';
const s = http.createServer((req, res) => { res.setHeader('connection', 'close'); res.end(String(process.pid)); });
s.listen({ host: '127.0.0.1', port: 0 }, () => process.send('ready'));
process.on('message', (m, h) => { if (m === ${JSON.stringify(HANDOFF_CONNECTION)} && h instanceof net.Socket) s.emit('connection', h); });
`;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cl-public-'));
  server = join(dir, 'server.mjs');
  writeFileSync(server, SERVER);
});
afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const l of listeners.splice(0)) l.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function startServer(): Promise<ChildProcess> {
  const child = fork(server, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  children.push(child);
  await new Promise((resolve) => child.once('message', resolve));
  return child;
}

function targetOf(child: ChildProcess): HandoffTarget {
  return {
    get connected() { return child.connected; },
    send: (socket, done) => { child.send(HANDOFF_CONNECTION, socket, { keepOpen: true }, (err) => done(err ?? null)); },
  };
}

async function openListener(options: { maxWaiting?: number; maxWaitMs?: number } = {}): Promise<{ listener: PublicListener; port: number }> {
  const port = await freePort();
  const listener = new PublicListener({ host: '127.0.0.1', port, log, ...options });
  listeners.push(listener);
  await listener.listen();
  return { listener, port };
}

interface Answer { status: number; body: string; headers: http.IncomingHttpHeaders; error?: string; startedAt: number }

/** One request on its own connection (no pool), so every request is a new accept. */
function get(port: number): Promise<Answer> {
  const startedAt = Date.now();
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 15_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers, startedAt }));
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ status: 0, body: '', headers: {}, error: err.code ?? err.message, startedAt }));
  });
}

describe('the public port held by the supervisor', () => {
  it('hands each connection to the attached process, which answers it', async () => {
    const { listener, port } = await openListener();
    const child = await startServer();
    listener.attach(targetOf(child), child.pid!);
    const answers = await Promise.all([get(port), get(port), get(port)]);
    expect(answers.map((a) => [a.status, a.body])).toEqual(Array(3).fill([200, String(child.pid)]));
    expect(listener.stats()).toMatchObject({ listening: true, proxyPid: child.pid, handedOff: 3, waited: 0, refused: 0 });
  });

  it('held closed until what the proxy needs is ready: refused before (not held), served after', async () => {
    const port = await freePort();
    const listener = new PublicListener({ host: '127.0.0.1', port, log });
    listeners.push(listener);
    let ready: () => void = () => {};
    listener.holdUntil(new Promise<void>((resolve) => (ready = resolve)));
    const child = await startServer();
    // The proxy says it accepts, as at the start of a boot: the port must not open yet.
    const opened = listener.listen().then(() => listener.attach(targetOf(child), child.pid!));
    await new Promise((r) => setTimeout(r, 100));
    expect((await get(port)).error).toBe('ECONNREFUSED');
    expect(listener.stats()).toMatchObject({ listening: false });
    ready();
    await opened;
    expect(await get(port)).toMatchObject({ status: 200, body: String(child.pid) });
  });

  it('a connection made while no process is attached waits, and the next one to attach serves it', async () => {
    const { listener, port } = await openListener();
    const pending = get(port);
    await eventually('the connection waiting', async () => (listener.stats().waitingNow === 1 ? true : undefined));
    const child = await startServer();
    listener.attach(targetOf(child), child.pid!);
    expect(await pending).toMatchObject({ status: 200, body: String(child.pid) });
    expect(listener.stats()).toMatchObject({ waited: 1, waitingNow: 0, refused: 0 });
  });

  it('kill -9 of the process under load: no connection refused, everything sent after the loss is served by the next one', async () => {
    const { listener, port } = await openListener();
    const first = await startServer();
    const firstTarget = targetOf(first);
    listener.attach(firstTarget, first.pid!);
    const answers: Promise<Answer>[] = [];
    let running = true;
    const loop = (async () => {
      while (running) {
        answers.push(get(port));
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await eventually('answers from the first', async () => ((await Promise.all(answers)).length >= 20 ? true : undefined));
    let lostAt = 0;
    const gone = new Promise<void>((resolve) => first.once('exit', () => {
      lostAt = Date.now();
      listener.detach(firstTarget, 'exited');
      resolve();
    }));
    first.kill('SIGKILL');
    await gone;
    await eventually('connections waiting for the next', async () => (listener.stats().waitingNow > 0 ? true : undefined));
    const second = await startServer();
    listener.attach(targetOf(second), second.pid!);
    await eventually('answers from the next', async () => ((await Promise.all(answers)).some((a) => a.body === String(second.pid)) ? true : undefined));
    running = false;
    await loop;
    const all = await Promise.all(answers);
    expect(all.filter((a) => a.error === 'ECONNREFUSED')).toEqual([]);
    // Nothing hangs: a connection still queued for the dead one went to the next.
    expect(all.filter((a) => a.error === 'client timeout')).toEqual([]);
    // Sent before the loss was seen: those were inside, or on their way to, the dead process.
    expect(all.filter((a) => a.startedAt > lostAt && a.status !== 200)).toEqual([]);
    expect(all.filter((a) => a.startedAt > lostAt).length).toBeGreaterThan(0);
    expect(listener.stats().waited).toBeGreaterThan(0);
  });

  it('a connection that waits too long is answered 503 with Retry-After in the error shape', async () => {
    const { listener, port } = await openListener({ maxWaitMs: 300 });
    const a = await get(port);
    expect(a.status).toBe(503);
    expect(a.headers['retry-after']).toBe('1');
    expect(JSON.parse(a.body)).toMatchObject({ statusCode: 503, code: 'CL_ERR_PROXY_RESTARTING', error: 'Service Unavailable' });
    expect(listener.stats()).toMatchObject({ waited: 1, refused: 1, waitingNow: 0 });
  });

  it('a connection that finds too many waiting is answered 503 at once; so is every one after pm2 gave up', async () => {
    const { listener, port } = await openListener({ maxWaiting: 1, maxWaitMs: 60_000 });
    const first = get(port);
    await eventually('one waiting', async () => (listener.stats().waitingNow === 1 ? true : undefined));
    const second = await get(port);
    expect([second.status, JSON.parse(second.body).code]).toEqual([503, 'CL_ERR_PROXY_RESTARTING']);
    listener.giveUp();
    expect((await first).status).toBe(503);
    expect((await get(port)).status).toBe(503);
    expect(listener.stats()).toMatchObject({ refused: 3, waitingNow: 0 });
  });

  it('a live proxy whose hand-off fails once keeps its place, and the connection is offered again; a repeated attach changes nothing', async () => {
    const { listener, port } = await openListener();
    const child = await startServer();
    const real = targetOf(child);
    let failures = 1;
    const flaky: HandoffTarget = {
      get connected() { return real.connected; },
      send: (socket, done) => (failures-- > 0 ? done(new Error('a transient failure')) : real.send(socket, done)),
    };
    listener.attach(flaky, child.pid!);
    listener.attach(flaky, child.pid!);
    const a = await get(port);
    expect([a.status, a.body]).toEqual([200, String(child.pid)]);
    expect(listener.stats()).toMatchObject({ proxyPid: child.pid, handedOff: 1, refused: 0 });
  });

  it('only the attached process is detached by its pid; close answers the waiting and stops listening', async () => {
    const { listener, port } = await openListener();
    const child = await startServer();
    const target = targetOf(child);
    listener.attach(target, child.pid!);
    listener.detach(targetOf(child), 'exited');
    expect(listener.stats().proxyPid).toBe(child.pid);
    listener.detach(target, 'stopping');
    const pending = get(port);
    await eventually('the connection waiting', async () => (listener.stats().waitingNow === 1 ? true : undefined));
    listener.close();
    const closing = await pending;
    expect([closing.status, JSON.parse(closing.body).code]).toEqual([503, 'CL_ERR_CLOSING']);
    expect((await get(port)).error).toBe('ECONNREFUSED');
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
