// The supervisor's bounded copy of recent log lines: its limits, its filters, and a follower that
// reads slower than lines come.
import { createServer, request, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { LogRing } from './log-ring.js';

let server: Server | null = null;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

describe('the log ring', () => {
  it('keeps at most its lines and bytes per service, oldest dropped first; one chatty service does not push others out', () => {
    const ring = new LogRing({ lines: 100, bytes: 1_000 });
    for (let i = 0; i < 500; i++) ring.push('api-green', JSON.stringify({ i }), i);
    ring.push('proxy', '{"msg":"quiet"}', 250);
    const green = ring.recent({ service: 'api-green' });
    expect(green).toHaveLength(100);
    expect(green[0]!.line).toBe('{"i":400}');
    for (let i = 0; i < 50; i++) ring.push('api-blue', 'x'.repeat(100), 600 + i);
    expect(ring.recent({ service: 'api-blue' }).length).toBeLessThanOrEqual(10);
    expect(ring.recent({ service: 'proxy' })).toEqual([{ at: 250, service: 'proxy', line: '{"msg":"quiet"}' }]);
    // One line over the byte limit is kept alone rather than nothing shown.
    ring.push('worker-blue', 'y'.repeat(5_000), 700);
    expect(ring.recent({ service: 'worker-blue' })).toHaveLength(1);
  });

  it('filters by service family and time, merges services in time order, and gives the last N', () => {
    const ring = new LogRing();
    ring.push('api-blue', 'b1', 10);
    ring.push('proxy', 'p1', 15);
    ring.push('api-green', 'g1', 20);
    ring.push('api-blue', 'b2', 30);
    expect(ring.recent().map((l) => l.line)).toEqual(['b1', 'p1', 'g1', 'b2']);
    expect(ring.recent({ service: 'api' }).map((l) => l.line)).toEqual(['b1', 'g1', 'b2']);
    expect(ring.recent({ service: 'api-b' }).map((l) => l.line)).toEqual([]);
    expect(ring.recent({ since: 16 }).map((l) => l.line)).toEqual(['g1', 'b2']);
    expect(ring.recent({ lines: 2 }).map((l) => l.line)).toEqual(['g1', 'b2']);
    expect(ring.services()).toEqual(['api-blue', 'api-green', 'proxy']);
  });

  it('filters by level (pino\'s labels or numbers) before it counts the last N', () => {
    const ring = new LogRing();
    ring.push('proxy', '{"level":"error","msg":"e1"}', 1);
    for (let i = 0; i < 50; i++) ring.push('proxy', `{"level":"info","msg":"i${i}"}`, 2 + i);
    ring.push('api-blue', '{"level":50,"msg":"e2"}', 60);
    ring.push('api-blue', 'not json at all', 61);
    expect(ring.recent({ level: 'error', lines: 5 }).map((l) => l.line)).toEqual(['{"level":"error","msg":"e1"}', '{"level":50,"msg":"e2"}']);
    expect(ring.recent({ level: 'info', lines: 2 }).map((l) => l.line)).toEqual(['{"level":50,"msg":"e2"}', 'not json at all']);
  });

  it('tee writes through and keeps each whole line', () => {
    const ring = new LogRing();
    let written = '';
    const sink = ring.tee({ write: (s: string) => (written += s) }, 'supervisor');
    sink.write('{"a":1}\n');
    sink.write('{"b":2}\n{"c":3}\n');
    expect(written).toBe('{"a":1}\n{"b":2}\n{"c":3}\n');
    expect(ring.recent().map((l) => l.line)).toEqual(['{"a":1}', '{"b":2}', '{"c":3}']);
  });

  it('a follower gets the kept lines, then new ones; a reader that does not read loses lines, not memory, and is told how many', async () => {
    const ring = new LogRing();
    ring.push('proxy', '{"n":0}');
    server = createServer((_req, res) => ring.serve(res, { service: 'proxy' }, true));
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const res = await new Promise<import('node:http').IncomingMessage>((resolve) => request({ port, host: '127.0.0.1' }, resolve).end());
    // Not reading: the socket's buffers fill, and the ring stops writing to it.
    const big = JSON.stringify({ pad: 'z'.repeat(64 * 1024) });
    for (let i = 0; i < 200; i++) ring.push('proxy', big);
    ring.push('api-blue', '{"other":true}');
    await new Promise((r) => setTimeout(r, 50));
    let text = '';
    res.setEncoding('utf8').on('data', (c: string) => (text += c));
    await new Promise((r) => setTimeout(r, 200));
    ring.push('proxy', '{"n":"last"}');
    await new Promise((r) => setTimeout(r, 200));
    res.destroy();
    const lines = text.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toEqual({ n: 0 });
    expect(lines.some((l) => l.other)).toBe(false);
    const notice = lines.find((l) => typeof l.msg === 'string' && l.msg.includes('log lines not shown'));
    expect(notice?.msg).toMatch(/^\d+ log lines not shown: the reader was slower than the lines came$/);
    const shown = lines.filter((l) => l.pad).length;
    expect(shown + Number(notice.msg.split(' ')[0])).toBe(200);
    expect(lines.at(-1)).toEqual({ n: 'last' });
  });

  it('close ends every follower (the supervisor stops: nothing waits on a logs -f)', async () => {
    const ring = new LogRing();
    server = createServer((_req, res) => ring.serve(res, {}, true));
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const res = await new Promise<import('node:http').IncomingMessage>((resolve) => request({ port, host: '127.0.0.1' }, resolve).end());
    const ended = new Promise<void>((r) => res.on('end', () => r()).resume());
    ring.close();
    await ended;
    ring.push('proxy', '{"after":true}');
  });
});
