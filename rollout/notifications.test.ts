// Chat notifications: each service's payload, retries with backoff (4xx not retried, robots'
// error codes read), the final failure audited and shown, and URLs never shown past their host.
// Slack, Teams, WeCom and DingTalk are outside this machine: a local HTTP server stands in for them.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../lib/logger.js';
import { parseNotifyTargets, type NotifyTarget } from '../lib/contracts/notify-targets.js';
import type { Deployment } from './model.js';
import { notice, Notifier, payloadFor, type NoticeEvent } from './notifications.js';
import { initialStatus } from './state-machine.js';

const deployment = (over: Partial<Deployment['status']> = {}): Deployment => ({
  id: 'dep-1', version: 'v2', strategy: 'canary', stableVersion: 'v1', stableColor: 'blue', candidateColor: 'green',
  status: { ...initialStatus([5, 25, 100]), phase: 'rolled_back', reason: '2 consecutive failing windows: error rate 31.0 % > 5.0 % (candidate 62 of 200)', ...over },
  plan: {} as Deployment['plan'], actor: 'test', startedAt: new Date(0).toISOString(), endedAt: null, result: null,
} as unknown as Deployment);

let server: ReturnType<typeof createServer> | null = null;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

/** A stand-in service: answers each request with the next of `answers` (the last one repeats). */
async function service(answers: Array<(res: ServerResponse) => void>): Promise<{ url: string; bodies: unknown[]; paths: string[] }> {
  const bodies: unknown[] = [];
  const paths: string[] = [];
  server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      bodies.push(JSON.parse(body));
      paths.push(req.url ?? '');
      answers[Math.min(bodies.length - 1, answers.length - 1)]!(res);
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies, paths };
}

const ok = (res: ServerResponse): void => void res.writeHead(200).end('ok');
const status = (code: number, headers: Record<string, string> = {}) => (res: ServerResponse): void => void res.writeHead(code, headers).end();
const robot = (errcode: number) => (res: ServerResponse): void => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ errcode, errmsg: errcode ? 'no' : 'ok' }));

function notifier(targets: NotifyTarget[], over: { timeoutMs?: number } = {}) {
  const audits: Array<{ event: NoticeEvent; target: string; attempts: number; ok: boolean; error: string | null }> = [];
  const waits: number[] = [];
  const n = new Notifier({
    targets, timeoutMs: over.timeoutMs ?? 2_000, log: createLogger('test', { level: 'silent' }), publicUrl: 'https://app.example.com/',
    audit: async ({ deployment: _d, ...o }) => void audits.push(o),
    sleep: async (ms) => void waits.push(ms),
  });
  return { n, audits, waits };
}

describe('notification messages', () => {
  it('say the version, the strategy, what fired with its numbers, and link to the deployment\'s page', () => {
    const n = notice('rollback', deployment(), new Date(0), 'https://app.example.com');
    expect(n.title).toBe('ChangeLens: v2 rolled back');
    expect(n.text).toBe('v2 (canary 5 → 25 → 100 %) was rolled back to v1: 2 consecutive failing windows: error rate 31.0 % > 5.0 % (candidate 62 of 200).');
    expect(n.link).toBe('https://app.example.com/_changelens/?deployment=dep-1');
    expect(notice('gate', deployment({ phase: 'paused', stepIndex: 2, reason: 'waiting for approval before step 3/3 (100 %)' }), new Date(0)).text).toBe('v2 (canary 5 → 25 → 100 %) is held at 25 %: waiting for approval before step 3/3 (100 %).');
    expect(notice('deploy', deployment({ phase: 'starting', reason: null }), new Date(0)).link).toBeNull();
  });

  it('in each service\'s own payload', () => {
    const n = notice('rollback', deployment(), new Date(0), 'https://app.example.com');
    expect(payloadFor('slack', n)).toEqual({ text: `*${n.title}*\n${n.text}\n<${n.link}|Open the deployment>` });
    expect(payloadFor('teams', n)).toMatchObject({ type: 'message', attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', content: { type: 'AdaptiveCard', body: [{ text: n.title }, { text: n.text }], actions: [{ type: 'Action.OpenUrl', url: n.link }] } }] });
    expect(payloadFor('wecom', n)).toEqual({ msgtype: 'markdown', markdown: { content: `**${n.title}**\n${n.text}\n[Open the deployment](${n.link})` } });
    expect(payloadFor('dingtalk', n)).toEqual({ msgtype: 'markdown', markdown: { title: n.title, text: `### ${n.title}\n${n.text}\n\n[Open the deployment](${n.link})` } });
    expect(payloadFor('webhook', n)).toBe(n);
  });
});

describe('the notifier', () => {
  it('retries a 5xx with backoff and delivers; the outcome says how many attempts it took', async () => {
    const svc = await service([status(500), status(503), ok]);
    const { n, audits, waits } = notifier([{ kind: 'slack', url: `${svc.url}/services/T0/B0/s3cret` }]);
    await n.send('rollback', deployment());
    expect(svc.bodies).toHaveLength(3);
    expect(waits).toHaveLength(2);
    expect(waits[0]).toBeGreaterThanOrEqual(1_000);
    expect(waits[1]).toBeGreaterThanOrEqual(2_000);
    expect(audits).toEqual([{ event: 'rollback', target: `slack ${svc.url}/…`, attempts: 3, ok: true, error: null }]);
    expect(n.status()[0]).toMatchObject({ target: `slack ${svc.url}/…`, lastOkAt: expect.any(String), lastFailure: null });
  });

  it('does not retry a 4xx; the failure is audited and shown, the URL only by its host', async () => {
    const svc = await service([status(404)]);
    const { n, audits } = notifier([{ kind: 'teams', url: `${svc.url}/workflows/s3cret?sig=abc` }]);
    await n.send('promote', deployment({ phase: 'promoted', reason: null }));
    expect(svc.bodies).toHaveLength(1);
    expect(audits).toEqual([{ event: 'promote', target: `teams ${svc.url}/…`, attempts: 1, ok: false, error: 'answered HTTP 404' }]);
    expect(n.status()[0]!.lastFailure).toMatchObject({ event: 'promote', version: 'v2', error: 'answered HTTP 404' });
    expect(JSON.stringify([audits, n.status()])).not.toContain('s3cret');
  });

  it('honours a 429\'s Retry-After, and gives up after its attempts', async () => {
    const svc = await service([status(429, { 'retry-after': '3' }), status(502)]);
    const { n, audits, waits } = notifier([{ kind: 'webhook', url: `${svc.url}/hook` }]);
    await n.send('deploy', deployment({ phase: 'starting', reason: null }));
    expect(svc.bodies).toHaveLength(5);
    expect(waits[0]).toBe(3_000);
    expect(audits[0]).toMatchObject({ ok: false, attempts: 5, error: 'answered HTTP 502' });
    expect(svc.bodies[0]).toMatchObject({ event: 'deploy', deploymentId: 'dep-1', version: 'v2', title: 'ChangeLens: deploying v2' });
  });

  it('reads a robot\'s error code: busy is retried, a bad key is not', async () => {
    const busy = await service([robot(45009), robot(0)]);
    const a = notifier([{ kind: 'wecom', url: `${busy.url}/cgi-bin/webhook/send?key=k` }]);
    await a.n.send('rollback', deployment());
    expect(a.audits[0]).toMatchObject({ ok: true, attempts: 2 });
    await new Promise<void>((r) => server!.close(() => r()));
    const bad = await service([robot(310000)]);
    const b = notifier([{ kind: 'dingtalk', url: `${bad.url}/robot/send?access_token=t` }]);
    await b.n.send('rollback', deployment());
    expect(bad.bodies).toHaveLength(1);
    expect(b.audits[0]).toMatchObject({ ok: false, attempts: 1, error: 'answered errcode 310000 (no)' });
  });

  it('a service that never answers is given up on after its timeout, every attempt', async () => {
    const svc = await service([() => {}]);
    const { n, audits } = notifier([{ kind: 'slack', url: `${svc.url}/x` }], { timeoutMs: 150 });
    await n.send('failed', deployment({ phase: 'failed', reason: 'green did not become ready' }));
    expect(audits[0]).toMatchObject({ ok: false, attempts: 5, error: 'no answer within 150 ms' });
    server!.closeAllConnections();
  });
});

describe('CHANGELENS_NOTIFY', () => {
  it('parses kind:URL entries and names a bad one by position and kind, never by its URL', () => {
    expect(parseNotifyTargets('slack:https://hooks.slack.com/services/a,webhook:http://10.0.0.2:8080/x')).toEqual([
      { kind: 'slack', url: 'https://hooks.slack.com/services/a' }, { kind: 'webhook', url: 'http://10.0.0.2:8080/x' },
    ]);
    expect(parseNotifyTargets('slack:https://a.example/x,irc:https://secret.example/y')).toEqual({ error: 'entry 2: expected kind:URL with kind slack, teams, wecom, dingtalk, webhook' });
    expect(parseNotifyTargets('teams:file:///etc/passwd')).toEqual({ error: 'entry 1 (teams): expected an http(s) URL of at most 2048 characters' });
    expect(parseNotifyTargets('')).toEqual({ error: 'expected 1-10 entries, got 0' });
  });
});
