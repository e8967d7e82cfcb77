import { createServer } from 'node:http';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fireHooks, type HookEvent } from './hooks.js';

const event: HookEvent = { type: 'rollback', deploymentId: 'dep-1', version: 'v2', strategy: 'canary', phase: 'rolling_back', reason: 'error rate 50% > 5%', at: new Date(0).toISOString() };
const received: Array<{ url: string; body: unknown; type: string | undefined }> = [];
const server = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c)).on('end', () => {
    received.push({ url: req.url!, body: JSON.parse(body), type: req.headers['content-type'] });
    if (req.url === '/slow') return void setTimeout(() => res.end(), 2_000);
    res.statusCode = req.url === '/fail' ? 500 : 204;
    res.end();
  });
});
let base: string;

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => { server.closeAllConnections(); server.close(); });

describe('hooks', () => {
  it('POSTs the event as JSON to every webhook and reports each outcome, failures included', async () => {
    received.length = 0;
    const outcomes = await fireHooks(event, { urls: [`${base}/ok`, `${base}/fail`, `${base}/slow`], command: undefined, timeoutMs: 300 });
    // Named by scheme and host only (these rows are audited and logged): a webhook's path is often its secret.
    expect(outcomes.map((o) => [o.hook, o.ok])).toEqual([[`webhook ${base}/…`, true], [`webhook ${base}/…`, false], [`webhook ${base}/…`, false]]);
    expect(outcomes[1]!.error).toContain('HTTP 500');
    expect(received.find((r) => r.url === '/ok')).toEqual({ url: '/ok', body: event, type: 'application/json' });
  });

  it('runs the command with the event on stdin and in CHANGELENS_EVENT, and kills it at the timeout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hooks-'));
    const out = join(dir, 'out');
    const [ok] = await fireHooks(event, { urls: [], command: `cat > ${out}; echo >> ${out}; echo "$CHANGELENS_EVENT" >> ${out}`, timeoutMs: 5_000 });
    expect(ok!.ok).toBe(true);
    const [json, type] = readFileSync(out, 'utf8').split('\n');
    expect(JSON.parse(json!)).toEqual(event);
    expect(type).toBe('rollback');
    const [failed] = await fireHooks(event, { urls: [], command: 'echo broken >&2; exit 3', timeoutMs: 5_000 });
    expect(failed).toMatchObject({ ok: false, error: 'exited 3: broken' });
    const [slow] = await fireHooks(event, { urls: [], command: 'sleep 5', timeoutMs: 200 });
    expect(slow!.ok).toBe(false);
    expect(slow!.ms).toBeLessThan(4_000);
  });
});
