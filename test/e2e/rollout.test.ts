// Progressive delivery end to end, on one shared appliance under open-model load: canaries that
// are promoted or rolled back by the judge, blue/green with a preview pin and an instant switch
// back, the proxy killed -9 mid-rollout, the admin API's refusals, the CLI, exports, hooks,
// another app as an artifact, and the Prometheus exposition checked by promtool.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { baseEnv, cliPath, freePorts, launchAppliance, type Appliance } from '../../bench/harness.js';
import { runCli } from '../helpers/cli.js';
import { reapOrphans } from '../../supervisor/index.js';
import { packageRoot } from '../../lib/package-root.js';
import { startLoad, type Load } from '../../bench/load.js';

type Color = 'blue' | 'green';
/** Retries fn (its expectations) until it passes. */
const until = <T>(fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> => vi.waitFor(fn, { timeout: timeoutMs, interval: 200 });
const TERMINAL = ['promoted', 'rolled_back', 'aborted', 'failed'];
const RATE = 80; // requests per second through the proxy while a deployment runs
vi.setConfig({ testTimeout: 120_000 });

let app: Appliance;
let token: string;
let hooksFile: string;
let chat: Server;
const chatMessages: string[] = [];

beforeAll(async () => {
  const scratch = join(process.env.TMPDIR ?? '/tmp', `changelens-rollout-${process.pid}`);
  mkdirSync(scratch, { recursive: true });
  // The hook command runs in the proxy, as the service user when the appliance runs as root.
  chmodSync(scratch, 0o777);
  hooksFile = join(scratch, 'hooks.jsonl');
  // Slack is outside this machine: a local server stands in for its incoming webhook.
  chat = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      chatMessages.push(JSON.parse(body).text);
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => chat.listen(0, '127.0.0.1', () => r()));
  app = await launchAppliance({
    env: {
      CHANGELENS_NOTIFY: `slack:http://127.0.0.1:${(chat.address() as AddressInfo).port}/services/T0/B0/s3cret`,
      CHANGELENS_PUBLIC_URL: 'https://app.example.com',
      CHANGELENS_SEED_ITEMS: '200',
      // Short analysis so the file runs in about two minutes; the rules are the defaults.
      CHANGELENS_CANARY_STEPS: '50,100',
      CHANGELENS_STEP_SECONDS: '6',
      CHANGELENS_WINDOW_SECONDS: '3',
      CHANGELENS_MIN_SAMPLES: '30',
      CHANGELENS_HOOK_COMMAND: `cat >> ${hooksFile} && echo >> ${hooksFile}`,
      // Each deployment starts from a fresh Postgres backup (checked in the first canary test).
      CHANGELENS_BACKUP_BEFORE_DEPLOY: '1',
    },
  });
  await app.ready;
  token = app.secrets().adminToken;
});

afterAll(async () => {
  chat?.close();
  if (app && app.child.exitCode === null) await app.stop('SIGTERM');
  if (app) await reapOrphans(join(app.dataDir, 'state', 'pm2'));
});

async function api(method: string, path: string, body?: unknown, auth: string | null = token): Promise<{ status: number; body: any }> {
  const res = await fetch(`${app.url}/_changelens${path}`, {
    method,
    headers: { ...(auth === null ? {} : { authorization: `Bearer ${auth}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function deploy(body: Record<string, unknown>): Promise<any> {
  const r = await api('POST', '/api/deployments', body);
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return r.body;
}

async function finished(id: string, timeoutMs = 60_000): Promise<any> {
  return until(async () => {
    const r = await api('GET', `/api/deployments/${id}`);
    expect(TERMINAL, `deployment ${id} is ${r.body.status?.phase}`).toContain(r.body.status.phase);
    // A rollback's timing counts what reached the candidate after the swap for a moment longer.
    expect(r.body.result?.rollback_timing?.settled ?? true, `deployment ${id}: rollback timing not settled`).toBe(true);
    return r.body;
  }, timeoutMs);
}

const active = async (): Promise<{ version: string; color: Color }> => (await api('GET', '/api/status')).body.active;
const other = (c: Color): Color => (c === 'blue' ? 'green' : 'blue');

/** Runs fn under load and returns the load's samples with fn's result. */
async function underLoad<T>(fn: (load: Load) => Promise<T>, path = '/api/work?ms=10'): Promise<{ load: Load; result: T }> {
  const load = startLoad(`${app.url}${path}`, RATE);
  try {
    return { load, result: await fn(load) };
  } finally {
    await load.stop();
  }
}

describe('the admin API refuses what it must', () => {
  it('401 without the bearer token or with a wrong one, on every admin route', async () => {
    for (const auth of [null, 'wrong-token-wrong-token']) {
      for (const [method, path] of [['GET', '/api/status'], ['POST', '/api/deployments'], ['GET', '/metrics'], ['GET', '/api/audit']] as const) {
        const r = await api(method, path, method === 'POST' ? { version: 'x' } : undefined, auth);
        expect(r.status, `${method} ${path}`).toBe(401);
        expect(r.body.code).toBe('CL_ERR_UNAUTHORIZED');
      }
    }
  });

  it('400 naming the field for bad payloads, and nothing is recorded', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{}, 'version'],
      [{ version: 'bad version!' }, 'body/version'],
      [{ version: 'v1', strategy: 'yolo' }, 'body/strategy'],
      [{ version: 'v1', steps: [50, 25, 100] }, 'body/steps'],
      [{ version: 'v1', steps: [5, 25] }, 'body/steps'],
      [{ version: 'v1', stepSeconds: 0 }, 'body/stepSeconds'],
      [{ version: 'v1', p99Ratio: 0.5 }, 'body/p99Ratio'],
      [{ version: 'v1', env: { DATABASE_URL: 'postgres://x' } }, 'body/env.DATABASE_URL'],
      [{ version: 'v1', env: { CHANGELENS_REGRESSION: 'cpu:0' } }, 'body/env.CHANGELENS_REGRESSION'],
      [{ version: 'v1', colour: 'green' }, 'body/colour'],
      [{ version: 'v1', strategy: 'bluegreen', steps: [50, 100] }, 'body/steps'],
      [{ version: 'v1', artifact: '/nonexistent/app' }, '/nonexistent/app'],
    ];
    for (const [body, field] of cases) {
      const r = await api('POST', '/api/deployments', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.message, JSON.stringify(body)).toContain(field);
    }
    const releases = (await api('GET', '/api/releases')).body.releases.map((r: any) => r.version);
    expect(releases).toEqual(['initial']);
    expect((await api('GET', '/api/deployments')).body.deployments).toEqual([]);
    expect((await api('POST', '/api/deployment/promote', {})).body.code).toBe('CL_ERR_NO_DEPLOYMENT');
    expect((await api('GET', '/api/nothing-here')).status).toBe(404);
    const badPin = await fetch(`${app.url}/api/work?ms=1`, { headers: { 'x-changelens-color': 'red' } });
    expect(badPin.status).toBe(400);
    expect(await badPin.json()).toMatchObject({ code: 'CL_ERR_BAD_PIN', message: expect.stringContaining('x-changelens-color') });
  });
});

describe('canary', () => {
  it('promotes a good release under load: it becomes active and last_good, and the old colour stays warm', async () => {
    const before = await active();
    const { load, result: d } = await underLoad(async () => finished((await deploy({ version: 'good-1' })).id));
    expect(d.status.phase, d.status.reason).toBe('promoted');
    expect(d.verdicts.filter((v: any) => v.verdict === 'pass').length).toBeGreaterThanOrEqual(1);
    expect(d.verdicts.every((v: any) => v.verdict !== 'fail' || d.verdicts.filter((w: any) => w.verdict === 'fail').length < 2)).toBe(true);
    const now = await active();
    expect(now).toEqual({ version: 'good-1', color: other(before.color) });
    const { pointers } = (await api('GET', '/api/releases')).body;
    expect(pointers).toEqual({ active: now, lastGood: now });
    // Both colours served during the canary, and after the promotion only the new one does.
    expect(load.served(before.color).length).toBeGreaterThan(0);
    expect(load.served(now.color).length).toBeGreaterThan(0);
    const after = await fetch(`${app.url}/api/work?ms=1`);
    expect(after.headers.get('x-changelens-color')).toBe(now.color);
    const snapshot = JSON.parse(readFileSync(join(app.dataDir, 'state', 'proxy', 'routing.json'), 'utf8'));
    expect(snapshot).toMatchObject({ activeColor: now.color, release: { version: 'good-1', artifact: 'builtin' } });
    const processes = (await app.status()).processes;
    expect(processes.find((p) => p.name === `api-${before.color}`)?.state).toBe('online');
    // CHANGELENS_BACKUP_BEFORE_DEPLOY: a Postgres backup was taken before the deployment started.
    const { backups } = (await api('GET', '/api/backups')).body;
    const preDeploy = backups.find((b: any) => b.reason === 'pre-deploy');
    expect(preDeploy).toMatchObject({ kinds: ['postgres'] });
    expect(Date.parse(preDeploy.finishedAt)).toBeLessThanOrEqual(Date.parse(d.startedAt));
  });

  it('promotes a release identical to the running one, run after run', async () => {
    for (const version of ['same-1', 'same-2']) {
      const { result: d } = await underLoad(async () => finished((await deploy({ version })).id));
      expect(d.status.phase, `${version}: ${d.status.reason}`).toBe('promoted');
      expect((await active()).version).toBe(version);
    }
  });

  it('under a closed-loop client that keeps the box busy (wrk, 4 connections): identical releases promoted, +100 ms rolled back', async () => {
    // The load the false rollbacks of issue 16 came from: a fresh candidate process sharing
    // saturated cores with the stable one. Its tail is a few ms longer, which no user notices.
    const wrk = spawn('wrk', ['-t1', '-c4', '-d170s', `${app.url}/api/data`], { stdio: 'ignore' });
    const exited = new Promise<unknown>((resolve) => { wrk.once('exit', resolve); wrk.once('error', resolve); });
    try {
      expect(wrk.pid, 'wrk (scripts/install-system-deps.sh --test installs it)').toBeDefined();
      for (const version of ['busy-same-1', 'busy-same-2']) {
        const d = await finished((await deploy({ version })).id);
        expect(d.status.phase, `${version}: ${d.status.reason} ${JSON.stringify(d.verdicts.map((v: any) => v.explanation))}`).toBe('promoted');
        expect(d.verdicts.some((v: any) => v.verdict === 'pass'), 'judged, not waved through').toBe(true);
      }
      // The floor does not hide what a user notices, on the same busy box.
      const slow = await finished((await deploy({ version: 'busy-slow', env: { CHANGELENS_REGRESSION: 'dependency:100/0' } })).id);
      expect(slow.status.phase, JSON.stringify(slow.verdicts.map((v: any) => v.explanation))).toBe('rolled_back');
    } finally {
      wrk.kill('SIGINT');
      await exited;
    }
  }, 180_000);

  it('rolls back a release that answers errors on the window rule (fast trip and early verdicts off), while the stable colour serves none', async () => {
    const stable = await active();
    const { load, result: d } = await underLoad(async () => finished((await deploy({ version: 'errors-1', env: { CHANGELENS_REGRESSION: 'errors:0.5' }, tripConsecutive5xx: 0, sequential: false })).id));
    expect(d.status.phase).toBe('rolled_back');
    expect(d.status.reason).toMatch(/error rate/);
    const failing = d.verdicts.filter((v: any) => v.verdict === 'fail');
    expect(failing.length).toBeGreaterThanOrEqual(2);
    const rule = failing.at(-1).rules.find((r: any) => r.rule === 'error_rate');
    expect(rule).toMatchObject({ verdict: 'fail', threshold: 0.05 });
    expect(rule.observed).toBeGreaterThan(0.05);
    expect(await active()).toEqual(stable);
    expect(load.served(stable.color).filter((s) => s.status >= 500)).toEqual([]);
    expect(load.served(other(stable.color)).filter((s) => s.status >= 500).length).toBeGreaterThan(0);
    // After the verdict no unpinned request reached the candidate.
    expect(d.result.rollback_timing.candidate_requests_after_swap).toBe(0);
    const rolledBackAt = Date.parse(d.updatedAt);
    expect(load.served(other(stable.color), rolledBackAt)).toEqual([]);
  });

  it('rolls back a release whose P99 regressed, on the P99 ratio rule (early verdicts off)', async () => {
    const stable = await active();
    const { result: d } = await underLoad(async () => finished((await deploy({ version: 'slow-1', env: { CHANGELENS_REGRESSION: 'dependency:150' }, sequential: false })).id));
    expect(d.status.phase).toBe('rolled_back');
    const failing = d.verdicts.filter((v: any) => v.verdict === 'fail').at(-1);
    const rule = failing.rules.find((r: any) => r.rule === 'p99_ratio');
    expect(rule).toMatchObject({ verdict: 'fail', threshold: 1.5 });
    expect(rule.observed).toBeGreaterThan(1.5);
    expect(failing.samples.candidate).toBeGreaterThanOrEqual(30);
    expect(await active()).toEqual(stable);
  });

  it('trips at once on a candidate answering 5xx to everything: rolled back before its first window closes', async () => {
    const stable = await active();
    const { load, result: d } = await underLoad(async () => finished((await deploy({ version: 'all-5xx', env: { CHANGELENS_REGRESSION: 'errors:1' }, windowSeconds: 6 })).id));
    expect(d.status.phase).toBe('rolled_back');
    expect(d.status.reason).toMatch(/^fast trip: 5 5xx in a row/);
    // The trip is the only verdict: no window had closed.
    expect(d.verdicts).toHaveLength(1);
    expect(d.verdicts[0].rules[0]).toMatchObject({ rule: 'consecutive_5xx', verdict: 'fail', observed: 5, threshold: 5 });
    expect(load.served(stable.color).filter((s) => s.status >= 500)).toEqual([]);
    expect(await active()).toEqual(stable);
  });

  it('early verdicts: the sequential tests roll back 10 % errors or a release 100 ms slower without waiting for windows of evidence', async () => {
    // The slow release times out none of its calls (`/0`): with the default 5 % timeouts it also
    // fails requests, and the error test could fire first (it once did). +100 ms, not +30 ms: on a
    // busy 2-core box the stable colour's own tail reaches 30-60 ms, and a +30 ms release was once
    // promoted there (then neither it nor the window rule can tell; issue 16 is about that).
    for (const [version, regression, rule] of [['seq-errors', 'errors:0.1', 'sequential_errors'], ['seq-slow', 'dependency:100/0', 'sequential_latency']] as const) {
      const stable = await active();
      const { result: d } = await underLoad(async () => finished((await deploy({ version, env: { CHANGELENS_REGRESSION: regression }, tripConsecutive5xx: 0, windowSeconds: 6 })).id));
      expect(d.status.phase, version).toBe('rolled_back');
      expect(d.status.reason).toMatch(/^early verdict: /);
      const fired = d.verdicts.at(-1);
      expect(fired.rules[0]).toMatchObject({ rule, verdict: 'fail' });
      expect(fired.explanation).toMatch(/95 % interval .* the sequential test crossed its boundary/);
      expect(await active()).toEqual(stable);
    }
  });

  it('trips at once when the candidate process is killed -9', async () => {
    const stable = await active();
    const candidate = other(stable.color);
    // No traffic: the crash alone (pm2's restart) must trip it, not the 502s it would cause.
    const d0 = await deploy({ version: 'crashy-1', stepSeconds: 120 });
    await until(async () => expect((await api('GET', `/api/deployments/${d0.id}`)).body.status.phase).toBe('shifting'), 30_000);
    const victim = (await app.status()).processes.find((p) => p.name === `api-${candidate}`)!;
    process.kill(victim.pid!, 'SIGKILL');
    const d = await finished(d0.id, 20_000);
    expect(d.status.phase).toBe('rolled_back');
    expect(d.status.reason).toMatch(/fast trip: api-(blue|green) crashed/);
    expect(d.verdicts.at(-1).rules[0].rule).toBe('process_restart');
    expect(await active()).toEqual(stable);
  });

  it('refuses a second deployment while one runs (409 naming it), and aborts on request', async () => {
    const first = await deploy({ version: 'busy-1', stepSeconds: 60 });
    const second = await api('POST', '/api/deployments', { version: 'busy-2' });
    expect(second.status).toBe(409);
    expect(second.body.code).toBe('CL_ERR_DEPLOYMENT_RUNNING');
    expect(second.body.message).toContain(first.id);
    const aborted = await api('POST', '/api/deployment/abort', { reason: 'test is done with it' });
    expect(aborted.status).toBe(200);
    const d = await finished(first.id);
    expect(d.status).toMatchObject({ phase: 'aborted', reason: 'test is done with it' });
    expect((await api('GET', '/api/releases')).body.releases.map((r: any) => r.version)).not.toContain('busy-2');
  });
});

describe('blue/green', () => {
  it('reaches the new colour by pin only during the preview, then switches back at once when the post-switch analysis fails', async () => {
    const stable = await active();
    const candidate = other(stable.color);
    const stablePid = (await app.status()).processes.find((p) => p.name === `api-${stable.color}`)!.pid;
    const d0 = await deploy({ version: 'bg-errors', strategy: 'bluegreen', previewSeconds: 4, env: { CHANGELENS_REGRESSION: 'errors:0.5' } });
    // (Right after the abort above, whose candidate may still be starting: this one must not inherit it.)
    await until(async () => expect((await api('GET', `/api/deployments/${d0.id}`)).body.status.phase).toBe('warming'), 30_000);
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${app.url}/api/work?ms=1`);
      await res.arrayBuffer();
      expect(res.headers.get('x-changelens-color')).toBe(stable.color);
      const pinned = await fetch(`${app.url}/api/regression`, { headers: { 'x-changelens-color': candidate, 'x-changelens-preview': app.secrets().adminToken } });
      expect(pinned.headers.get('x-changelens-color')).toBe(candidate);
      expect(((await pinned.json()) as { color: string }).color).toBe(candidate);
    }
    const { load, result: d } = await underLoad(() => finished(d0.id));
    expect(d.status.phase, JSON.stringify(d.verdicts)).toBe('rolled_back');
    expect(load.served(candidate).length).toBeGreaterThan(0); // the switch happened
    expect(d.result.rollback_timing.candidate_requests_after_swap).toBe(0);
    // Switching back started nothing: the old colour had stayed up, same process.
    expect((await app.status()).processes.find((p) => p.name === `api-${stable.color}`)!.pid).toBe(stablePid);
    expect(load.served(candidate, Date.parse(d.updatedAt))).toEqual([]);
    expect(await active()).toEqual(stable);
  });
});

describe('a proxy killed -9 mid-rollout', () => {
  it('comes back routing safely and judges the deployment again', async () => {
    const stable = await active();
    const { result } = await underLoad(async () => {
      const d0 = await deploy({ version: 'restart-1', stepSeconds: 120 });
      await until(async () => expect((await api('GET', `/api/deployments/${d0.id}`)).body.verdicts.length).toBeGreaterThanOrEqual(1), 30_000);
      const proxy = (await app.status()).processes.find((p) => p.name === 'proxy')!;
      process.kill(proxy.pid!, 'SIGKILL');
      // pm2 restarts it; the new proxy takes the deployment over and judges fresh windows.
      const resumed = await until(async () => {
        const r = await api('GET', `/api/deployments/${d0.id}`);
        expect(r.status).toBe(200);
        return r.body;
      }, 30_000);
      const before = resumed.verdicts.length;
      await until(async () => {
        const r = await api('GET', `/api/deployments/${d0.id}`);
        expect(r.body.verdicts.length).toBeGreaterThan(before);
      }, 30_000);
      const audit = (await api('GET', '/api/audit?since=5m')).body.events;
      expect(audit.some((e: any) => e.eventType === 'resume' && e.deploymentId === d0.id && e.actor === 'controller')).toBe(true);
      // Operators see the running deployment and why its last window did (not) roll back.
      const status = await runCli(['status'], app.env);
      expect(status.stdout).toContain(`rollout   ${d0.id}: canary of restart-1 shifting, step 1/2, weight 50%`);
      expect(status.stdout).toMatch(/last window (passed|failed|not judged)/);
      const rolledBack = await api('POST', '/api/deployment/rollback', { reason: 'enough' });
      expect(rolledBack.status).toBe(200);
      return finished(d0.id);
    });
    expect(result.status.phase).toBe('rolled_back');
    expect(await active()).toEqual(stable);
  });
});

describe('the changelens command', () => {
  it('deploy --wait exits 0 when promoted and 1 when rolled back, showing progress and the verdict', async () => {
    const load = startLoad(`${app.url}/api/work?ms=10`, RATE);
    try {
      const good = await runCli(['deploy', 'cli-good', '--wait', '--json'], app.env, 90_000);
      expect(good.code, good.stderr).toBe(0);
      expect(JSON.parse(good.stdout).status.phase).toBe('promoted');
      expect(good.stderr).toMatch(/shifting step 1\/2 weight 50%/);
      const bad = await runCli(['deploy', 'cli-bad', '--set', 'CHANGELENS_REGRESSION=errors:0.6', '--trip-consecutive-5xx', '0', '--no-sequential', '--wait'], app.env, 90_000);
      expect(bad.code).toBe(1);
      expect(bad.stdout).toMatch(/rolled_back/);
      expect(bad.stdout).toMatch(/error rate/);
      // Chat heard of it: what fired with its numbers, and a link to the deployment's page.
      const id = /deployment (\S+):/.exec(bad.stdout)![1]!;
      await until(async () => expect(chatMessages.find((m) => m.startsWith('*ChangeLens: cli-bad rolled back*'))).toMatch(new RegExp(`was rolled back to cli-good: .*error rate.*\\n<https://app.example.com/_changelens/\\?deployment=${id}\\|Open the deployment>$`, 's')), 20_000);
      expect(chatMessages.some((m) => m.startsWith('*ChangeLens: cli-good promoted*'))).toBe(true);
      const port = (chat.address() as AddressInfo).port;
      expect((await runCli(['status'], app.env)).stdout).toMatch(new RegExp(`notify {4}slack http://127.0.0.1:${port}/…: delivered `));
      const config = (await runCli(['config', '--json'], app.env)).stdout;
      expect(JSON.parse(config).notify).toBe(`slack http://127.0.0.1:${port}/…`);
      expect(config).not.toContain('s3cret');
    } finally {
      await load.stop();
    }
    const usage = await runCli(['deploy', 'v9', '--step-seconds', 'soon'], app.env);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--step-seconds');
    // The range is the config table's (CHANGELENS_STEP_SECONDS's), checked before anything is sent.
    const range = await runCli(['deploy', 'v9', '--step-seconds', '0'], app.env);
    expect(range.code).toBe(2);
    expect(range.stderr).toContain("option '--step-seconds <seconds>' argument '0' is invalid. expected seconds 1-86400");
    expect(range.stderr).toContain('hint: run: changelens deploy --help');
  });

  it('a gate holds before the first step until promote --step approves; promote --step moves one step at a time, watch shows it, logs -f follows the proxy, wait attaches, undo goes back at once', async () => {
    const before = await active();
    const started = await runCli(['deploy', 'stepwise', '--steps', 'pause,10,60,100', '--step-seconds', '600', '--json'], app.env);
    expect(started.code, started.stderr).toBe(0);
    const id = JSON.parse(started.stdout).id as string;
    expect(JSON.parse(started.stdout).plan.gates).toEqual([0]);
    await until(async () => expect((await api('GET', `/api/deployments/${id}`)).body.status).toMatchObject({ phase: 'paused', stepIndex: 0, reason: expect.stringMatching(/^waiting for approval before step 1\/3 \(10 %\)/) }), 30_000);
    const held = JSON.parse((await runCli(['watch', id, '--once', '--json'], app.env)).stdout);
    expect(held.deployment).toMatchObject({ phase: 'paused', step: 1, weight: 0 });
    expect((await api('GET', '/api/status')).body.routing.candidateWeight).toBe(0);
    // A gate is not resumed: it is approved.
    const resumed = await runCli(['resume'], app.env);
    expect([resumed.code, resumed.stderr]).toEqual([1, expect.stringContaining('approve (changelens promote --step)')]);
    const approved = await runCli(['promote', '--step', '--reason', 'change ticket 42 approved', '--json'], app.env);
    expect(approved.code, approved.stderr).toBe(0);
    expect(JSON.parse(approved.stdout).status).toMatchObject({ phase: 'shifting', stepIndex: 0 });
    // The proxy's lines, as they come, through the supervisor's socket.
    const follower = spawn(process.execPath, [cliPath, 'logs', '-f', '--service', 'proxy', '--lines', '1', '--json'], { env: { ...baseEnv(), ...app.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let followed = '';
    follower.stdout.setEncoding('utf8').on('data', (c: string) => (followed += c));
    try {
      await until(async () => expect(followed).not.toBe(''), 10_000);
      const step = await runCli(['promote', '--step', '--reason', 'dashboards look right', '--json'], app.env);
      expect(step.code, step.stderr).toBe(0);
      expect(JSON.parse(step.stdout).status).toMatchObject({ phase: 'shifting', stepIndex: 1 });
      const watched = await runCli(['watch', id, '--once', '--json'], app.env);
      expect(watched.code, watched.stderr).toBe(0);
      expect(JSON.parse(watched.stdout)).toMatchObject({ deployment: { id, version: 'stepwise', phase: 'shifting', step: 2, weight: 60 }, active: before, colours: { blue: { rps: expect.any(Number) }, green: { rps: expect.any(Number) } } });
      const last = await runCli(['promote', '--step'], app.env);
      expect(last.stdout).toContain(`deployment ${id}: canary of stepwise on ${other(before.color)} is promoted`);
      await until(async () => expect(followed).toMatch(/"msg":"promoted"/), 10_000);
    } finally {
      follower.kill('SIGINT');
    }
    expect(followed.trim().split('\n').every((l) => JSON.parse(l).service === 'proxy')).toBe(true);
    const waited = await runCli(['wait', id, '--json'], app.env);
    expect([waited.code, JSON.parse(waited.stdout).status.phase]).toEqual([0, 'promoted']);
    const events = (await api('GET', '/api/audit?since=5m')).body.events.filter((e: any) => e.deploymentId === id && ['gate', 'approve', 'step'].includes(e.eventType));
    // Newest first: the step onto 100 % (which promotes), the one onto 60 % with its reason, the approval, the gate.
    expect(events.map((e: any) => [e.eventType, e.details])).toEqual([
      ['step', { stepIndex: 3 - 1, weight: 100, by: 'operator' }],
      ['step', { stepIndex: 1, weight: 60, by: 'operator', reason: 'dashboards look right' }],
      ['approve', { stepIndex: 0, weight: 10, reason: 'change ticket 42 approved' }],
      ['gate', { stepIndex: 0, weight: 10, webhook: false }],
    ]);
    // Undo: the release before, on the colour still warm with it, without a start.
    const undoStarted = Date.now();
    const undone = await runCli(['undo', '--wait', '--json'], app.env, 60_000);
    expect(undone.code, undone.stderr).toBe(0);
    expect(JSON.parse(undone.stdout)).toMatchObject({ version: before.version, strategy: 'direct', status: { phase: 'promoted' } });
    expect(await active()).toEqual(before);
    expect(Date.now() - undoStarted).toBeLessThan(15_000);
    const recent = await runCli(['logs', '--service', 'proxy', '--since', '2m', '--json'], app.env);
    expect(recent.stdout).toContain('"msg":"promoted"');
  });

  it('deploy --wait never hangs on a box with no traffic: the progress deadline aborts (exit 4), and --timeout gives up (exit 4)', async () => {
    const stable = await active();
    // No load: every window is insufficient; the deadline (4 s) ends it at the first window after.
    const idle = await runCli(['deploy', 'idle-1', '--progress-deadline', '4', '--wait', '--json'], app.env, 90_000);
    expect(idle.code, idle.stderr).toBe(4);
    const d = JSON.parse(idle.stdout);
    expect(d.status).toMatchObject({ phase: 'aborted', reason: expect.stringMatching(/^progress deadline: no decisive verdict for 4 s/) });
    expect(await active()).toEqual(stable);
    const audit = (await api('GET', '/api/audit?since=5m')).body.events;
    expect(audit.find((e: any) => e.eventType === 'deadline' && e.deploymentId === d.id)).toMatchObject({ actor: 'controller', details: { action: 'abort', seconds: 4 } });
    // Its own patience: --timeout ends the wait, not the deployment.
    const started = Date.now();
    const impatient = await runCli(['deploy', 'idle-2', '--wait', '--timeout', '2'], app.env, 60_000);
    expect(impatient.code, impatient.stderr).toBe(4);
    expect(impatient.stderr).toContain('gave up waiting after 2 s (--timeout); the deployment goes on');
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await api('POST', '/api/deployment/abort', { reason: 'test is done with it' })).toMatchObject({ status: 200 });
    const usage = await runCli(['deploy', 'idle-3', '--timeout', '5'], app.env);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--timeout: only with --wait');
  });

  it('lists releases, the audit log and exports a deployment in the seed\'s formats', async () => {
    const releases = await runCli(['releases', '--json'], app.env);
    expect(releases.code, releases.stderr).toBe(0);
    const list = JSON.parse(releases.stdout).releases;
    expect(list.find((r: any) => r.version === 'cli-good')).toMatchObject({ active: true, lastGood: true });
    const status = await runCli(['status'], app.env);
    expect(status.stdout).toMatch(/active +(blue|green) \(release cli-good\)/);
    const audit = await runCli(['audit', '--since', '1h', '--json'], app.env);
    const events = JSON.parse(audit.stdout).events;
    for (const type of ['deploy', 'promote', 'rollback', 'abort', 'resume']) expect(events.map((e: any) => e.eventType)).toContain(type);
    expect(events[0]).toEqual(expect.objectContaining({ eventId: expect.any(String), eventType: expect.any(String), at: expect.any(String), actor: expect.any(String), success: expect.any(Boolean) }));
    const deployments = (await api('GET', '/api/deployments')).body.deployments;
    const bad = deployments.find((d: any) => d.version === 'cli-bad');
    const out = join(app.dataDir, 'export');
    const exported = await runCli(['export', bad.id, '--out', out], app.env);
    expect(exported.code, exported.stderr).toBe(0);
    const result = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8'));
    expect(result).toMatchObject({ deployment_id: bad.id, status: 'rolled_back', rollback_reason: expect.stringMatching(/error rate/) });
    expect(result.metrics_summary.candidate.errors).toBeGreaterThan(0);
    expect(result.metrics_summary.stable.errors).toBe(0);
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(metrics.bucket_duration_sec).toBe(3);
    expect(metrics.total_buckets).toBe(metrics.buckets.length);
    expect(metrics.buckets[0]).toEqual(expect.objectContaining({ timestamp: expect.any(String), p50_ms: expect.any(Number), p95_ms: expect.any(Number), p99_ms: expect.any(Number), error_rate: expect.any(Number), response_count: expect.any(Number), slo_violations: expect.any(Number), color: expect.stringMatching(/^(blue|green)$/) }));
    expect(metrics.buckets.some((b: any) => b.role === 'candidate' && b.slo_violations > 0)).toBe(true);
  });
});

describe('another app as the artifact', () => {
  it('runs a directory holding a Node app on the port it is given', async () => {
    const dir = join(app.dataDir, '..', `other-app-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'other', main: 'app.js', changelens: { readyPath: '/health' } }));
    writeFileSync(join(dir, 'app.js'), `require('node:http').createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ app: 'other', path: req.url }));
    }).listen(Number(process.env.PORT), '127.0.0.1');\n`);
    const d = await finished((await deploy({ version: 'other-1', strategy: 'direct', artifact: dir })).id);
    expect(d.status.phase, d.status.reason).toBe('promoted');
    const res = await fetch(`${app.url}/anything`);
    expect(await res.json()).toEqual({ app: 'other', path: '/anything' });
    // And back to the built-in API, whose release exists already and is still warm on the other
    // colour: switching back reuses that process instead of starting one.
    const warmColor = other(d.candidateColor);
    const warmPid = (await app.status()).processes.find((p) => p.name === `api-${warmColor}`)!.pid;
    const back = await finished((await deploy({ version: 'cli-good', strategy: 'direct' })).id);
    expect(back.status.phase).toBe('promoted');
    expect(back.candidateColor).toBe(warmColor);
    expect((await app.status()).processes.find((p) => p.name === `api-${warmColor}`)!.pid).toBe(warmPid);
    expect((await fetch(`${app.url}/api/regression`)).status).toBe(200);
  });
});

describe('custom metric rules', () => {
  it('rolls back a release whose own quality metric falls below its floor, and strips the metric header', async () => {
    const stable = await active();
    const dir = join(app.dataDir, '..', `recall-app-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'server.js'), `require('node:http').createServer((req, res) => {
      res.setHeader('x-changelens-metric-recall_at_10', process.env.RECALL);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ app: 'recall' }));
    }).listen(Number(process.env.PORT), '127.0.0.1');\n`);
    const { load, result: d } = await underLoad(async () => {
      const d0 = await deploy({ version: 'recall-low', artifact: dir, env: { RECALL: '0.2' }, metricRules: 'recall_at_10>=0.30' });
      await until(async () => expect((await api('GET', `/api/deployments/${d0.id}`)).body.status.phase).toBe('shifting'), 30_000);
      const pinned = await fetch(`${app.url}/x`, { headers: { 'x-changelens-color': d0.candidateColor, 'x-changelens-preview': app.secrets().adminToken } });
      expect(await pinned.json()).toEqual({ app: 'recall' });
      expect([...pinned.headers.keys()].filter((h) => h.startsWith('x-changelens-metric'))).toEqual([]);
      return finished(d0.id);
    });
    expect(d.status.phase).toBe('rolled_back');
    const rule = d.verdicts.filter((v: any) => v.verdict === 'fail').at(-1).rules.find((r: any) => r.rule === 'metric:recall_at_10');
    expect(rule).toMatchObject({ verdict: 'fail', threshold: 0.3 });
    expect(rule.observed).toBeCloseTo(0.2, 9);
    expect(load.served(other(stable.color)).length).toBeGreaterThan(0);
    expect(await active()).toEqual(stable);
  });
});

describe('observability of rollouts', () => {
  it('exposes Prometheus metrics that promtool accepts, by colour and release', async () => {
    const r = await fetch(`${app.url}/_changelens/metrics`, { headers: { authorization: `Bearer ${token}` } });
    expect(r.status).toBe(200);
    const text = await r.text();
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.error, 'promtool missing: run scripts/install-system-deps.sh --test').toBeUndefined();
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(text).toMatch(/changelens_request_duration_seconds_bucket\{[^}]*color="(blue|green)"[^}]*release="cli-good"/);
    expect(text).toMatch(/changelens_rollbacks_total\{trigger="judge"\} [1-9]/);
    expect(text).toMatch(/changelens_verdicts_total\{verdict="fail"\} [1-9]/);
  });

  it('fired the hook command on deploy, promote and rollback', async () => {
    const events = readFileSync(hooksFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const types = new Set(events.map((e) => e.type));
    expect([...types].sort()).toEqual(['deploy', 'promote', 'rollback']);
    expect(events.find((e) => e.type === 'rollback')).toMatchObject({ version: expect.any(String), phase: expect.any(String), reason: expect.any(String) });
  });
});

describe('shipping from CI: upload and the remote CLI', () => {
  /** A tiny app of its own, answering `status` to everything. */
  function appDir(name: string, status: number): string {
    const dir = join(app.dataDir, '..', `${name}-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, main: 'server.js' }));
    writeFileSync(join(dir, 'server.js'), `require('node:http').createServer((req, res) => {
      res.statusCode = req.url === '/readyz' ? 200 : ${status};
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ app: '${name}' }));
    }).listen(Number(process.env.PORT), '127.0.0.1');\n`);
    return dir;
  }
  const remoteEnv = () => ({ ...app.env, CHANGELENS_DATA_DIR: '/nonexistent', CHANGELENS_ADMIN_TOKEN: token });

  it('refuses without a token, with a wrong one, and says when nothing answers', async () => {
    const none = await runCli(['releases', '--url', app.url], { ...app.env, CHANGELENS_DATA_DIR: '/nonexistent' });
    expect(none.code).toBe(5);
    expect(none.stderr).toContain('no admin token for the remote appliance');
    const wrong = await runCli(['releases', '--url', app.url], { ...remoteEnv(), CHANGELENS_ADMIN_TOKEN: 'a-wrong-but-well-formed-token-0123456789' });
    expect(wrong.code).toBe(5);
    expect(wrong.stderr).toContain('CL_ERR_UNAUTHORIZED');
    const [deadPort] = await freePorts(1);
    const dead = await runCli(['releases', '--url', `http://127.0.0.1:${deadPort}`], remoteEnv());
    expect(dead.code).toBe(3);
    expect(dead.stderr).toContain(`CL_ERR_UNREACHABLE: nothing answers at http://127.0.0.1:${deadPort}/_changelens: connect ECONNREFUSED`);
    // An appliance behind a certificate this machine does not trust: said to be TLS, not "down".
    const certDir = join(app.dataDir, '..', `tls-${process.pid}`);
    mkdirSync(certDir, { recursive: true });
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem')], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    const tls = createHttpsServer({ key: readFileSync(join(certDir, 'key.pem')), cert: readFileSync(join(certDir, 'cert.pem')) }, (_req, res) => res.end('{}'));
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    try {
      const untrusted = await runCli(['releases', '--url', `https://127.0.0.1:${(tls.address() as { port: number }).port}`], remoteEnv());
      expect(untrusted.code).toBe(3);
      expect(untrusted.stderr).toMatch(/CL_ERR_UNREACHABLE: nothing answers at https:\/\/127\.0\.0\.1:\d+\/_changelens: TLS: DEPTH_ZERO_SELF_SIGNED_CERT/);
    } finally {
      tls.close();
    }
    const ok = await runCli(['releases', '--json'], { ...remoteEnv(), CHANGELENS_URL: app.url });
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).releases.map((r: any) => r.version)).toContain('initial');
  });

  it('uploads, deploys and waits: a good app is promoted (exit 0), one answering 5xx is rolled back (exit 1)', async () => {
    // The example app the release workflow ships (.github/workflows/release.yml), packed by the CLI.
    const example = join(packageRoot, 'examples', 'hello-app');
    const good = await runCli(['deploy', 'up-good', '--artifact', example, '--set', 'APP_VERSION=up-good', '--url', app.url, '--strategy', 'direct', '--wait', '--json'], remoteEnv(), 90_000);
    expect(good.code, good.stderr).toBe(0);
    expect(good.stderr).toMatch(/artifact uploaded: \d+ bytes, sha256 [0-9a-f]{64}/);
    expect(JSON.parse(good.stdout).status.phase).toBe('promoted');
    expect(await (await fetch(`${app.url}/anything`)).json()).toEqual({ app: 'hello-app', version: 'up-good', path: '/anything' });
    const load = startLoad(`${app.url}/x`, RATE);
    try {
      const bad = await runCli(['deploy', 'up-bad', '--artifact', appDir('up-bad', 500), '--url', app.url, '--wait'], remoteEnv(), 90_000);
      expect(bad.code).toBe(1);
      expect(bad.stdout).toMatch(/rolled_back/);
    } finally {
      await load.stop();
    }
    expect((await active()).version).toBe('up-good');
    // Back to the built-in API for whatever runs after.
    expect((await finished((await deploy({ version: 'cli-good', strategy: 'direct' })).id)).status.phase).toBe('promoted');
  });

  it('refuses an upload with a wrong sha256, a zip-slip archive, or other content for an uploaded version', async () => {
    const put = async (version: string, body: Buffer, sha256: string) => {
      const res = await fetch(`${app.url}/_changelens/api/releases/${version}/artifact`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/gzip', 'x-changelens-sha256': sha256 }, body });
      return { status: res.status, body: await res.json() as any };
    };
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const dir = appDir('up-slip', 200);
    writeFileSync(join(dir, '..', 'up-slip-x'), 'escape');
    const evil = spawnSync('tar', ['-czf', '-', '-P', 'package.json', 'server.js', '../up-slip-x'], { cwd: dir }).stdout;
    const refused = await put('slip-1', evil, sha(evil));
    expect(refused.status).toBe(400);
    expect(refused.body.message).toMatch(/climbs out with \.\./);
    const wrongSha = await put('slip-2', evil, 'f'.repeat(64));
    expect(wrongSha.body.message).toContain('sha256');
    const releases = join(app.dataDir, 'releases');
    expect(readdirSync(releases).filter((n) => n.startsWith('slip') || n.startsWith('.'))).toEqual([]);
    const good = spawnSync('tar', ['-czf', '-', 'package.json', 'server.js'], { cwd: dir }).stdout;
    expect((await put('up-same', good, sha(good))).status).toBe(201);
    expect((await put('up-same', good, sha(good))).status).toBe(200);
    writeFileSync(join(dir, 'server.js'), '// another build');
    const other = spawnSync('tar', ['-czf', '-', 'package.json', 'server.js'], { cwd: dir }).stdout;
    const conflict = await put('up-same', other, sha(other));
    expect(conflict.status).toBe(409);
    expect(conflict.body.code).toBe('CL_ERR_RELEASE_CONFLICT');
  });
});

describe('warm candidates', () => {
  /** A Prometheus counter's value summed over the series whose labels include every one given. */
  async function counter(name: string, labels: Record<string, string>): Promise<number> {
    const text = await fetch(`${app.url}/_changelens/metrics`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.text());
    let sum = 0;
    for (const m of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, 'gm'))) {
      if (Object.entries(labels).every(([k, v]) => m[1]!.includes(`${k}="${v}"`))) sum += Number(m[2]);
    }
    return sum;
  }

  it('warms the candidate on copies of live GETs before its first step: no client reaches it or is counted for it', async () => {
    const stable = (await active()).color;
    const candidate = other(stable);
    const copiesBefore = await counter('changelens_mirrored_requests_total', { color: candidate, purpose: 'warmup' });
    const { load, result: d } = await underLoad(async () => finished((await deploy({ version: 'warm-1', warmupSeconds: 60, warmupPaths: '/api/data' })).id), '/api/data');
    expect(d.status.phase, d.status.reason).toBe('promoted');
    const { events } = (await api('GET', `/api/audit?since=${encodeURIComponent(d.startedAt)}`)).body;
    const ready = events.find((e: any) => e.eventType === 'ready' && e.deploymentId === d.id);
    // Warm (300 answers) long before its 60 s; the live GETs at 80/s were copied, synthetic GETs made up the rest.
    expect(ready.details.warmup, JSON.stringify(ready.details)).toMatchObject({ warm: true, failed: 0 });
    const { warmup } = ready.details;
    expect(warmup.mirrored).toBeGreaterThan(0);
    expect(warmup.mirrored + warmup.synthetic).toBeGreaterThanOrEqual(300);
    expect(await counter('changelens_mirrored_requests_total', { color: candidate, purpose: 'warmup' }) - copiesBefore).toBeGreaterThanOrEqual(300);
    // The candidate took no client request while it warmed up: not before its first step (the
    // `ready` event; margin: a request's way from the client to the router).
    const warmEnd = Date.parse(ready.at) - 250;
    expect(load.samples.filter((s) => s.startedAt < warmEnd && s.startedAt > Date.parse(ready.at) - 250 - warmup.ms).length).toBeGreaterThan(20);
    expect(load.served(candidate, 0, warmEnd)).toEqual([]);
    // Copies are in no client count: the proxy counted for the new release the answers clients saw
    // from it (plus a rare one the candidate refused and stable answered), not its 300 and more copies.
    const counted = await counter('changelens_request_duration_seconds_count', { color: candidate, release: 'warm-1' });
    expect(counted).toBeGreaterThanOrEqual(load.served(candidate).length);
    expect(counted - load.served(candidate).length).toBeLessThan(20);
  });
});

describe('a box with little traffic', () => {
  it('--analysis-load makes a canary on an idle box decisive: the proxy drives both colours itself', async () => {
    const bad = await runCli(['deploy', 'idle-load-0', '--analysis-load', '40,/_changelens/api/status'], app.env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--analysis-load: path "/_changelens/api/status"');
    const loaded = await runCli(['deploy', 'idle-load-1', '--analysis-load', '40,/api/data', '--wait', '--json'], app.env, 90_000);
    expect(loaded.code, loaded.stderr).toBe(0);
    const d = JSON.parse(loaded.stdout);
    expect(d.status.phase).toBe('promoted');
    expect(d.plan.analysisLoad).toEqual({ rate: 40, paths: ['/api/data'] });
    const judged = d.verdicts.filter((v: any) => v.verdict === 'pass');
    expect(judged.length, JSON.stringify(d.verdicts.map((v: any) => v.explanation))).toBeGreaterThan(0);
    expect(Math.min(...judged.map((v: any) => v.samples.candidate))).toBeGreaterThanOrEqual(30);
    // It ended with the deployment: nothing reaches the colours any more.
    const served = async (): Promise<number> => {
      const text = await fetch(`${app.url}/_changelens/metrics`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.text());
      return [...text.matchAll(/^changelens_request_duration_seconds_count\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    };
    const after = await served();
    await new Promise((r) => setTimeout(r, 2_000));
    expect(await served() - after).toBeLessThan(5);
  });
});

describe('observability assets: deploy/prometheus and deploy/grafana against a real Prometheus', () => {
  it('promtool accepts the alert rules and their tests; a real Prometheus scraping this appliance answers every dashboard query and fires the rollback alert', async () => {
    const rules = join(packageRoot, 'deploy', 'prometheus', 'alerts.yml');
    const checked = spawnSync('promtool', ['check', 'rules', rules], { encoding: 'utf8' });
    expect(checked.status, checked.stdout + checked.stderr).toBe(0);
    const tested = spawnSync('promtool', ['test', 'rules', join(packageRoot, 'deploy', 'prometheus', 'alerts.test.yml')], { encoding: 'utf8' });
    expect(tested.status, tested.stdout + tested.stderr).toBe(0);

    const dir = join(app.dataDir, '..', `prometheus-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    const [port] = await freePorts(1);
    writeFileSync(join(dir, 'prometheus.yml'), [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      `rule_files: ['${rules}']`,
      'scrape_configs:',
      '  - job_name: changelens',
      '    metrics_path: /_changelens/metrics',
      `    authorization: { credentials: '${token}' }`,
      `    static_configs: [{ targets: ['${new URL(app.url).host}'] }]`,
    ].join('\n') + '\n');
    const prometheus = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    prometheus.stderr.setEncoding('utf8').on('data', (c: string) => (log = (log + c).slice(-4000)));
    const query = async (expr: string): Promise<any[]> => {
      const r = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = await r.json() as { status: string; data: { result: any[] }; error?: string };
      expect(body.status, `${expr}: ${body.error}`).toBe('success');
      return body.data.result;
    };
    let jobs = true;
    let jobLoop: Promise<void> = Promise.resolve();
    try {
      await until(async () => expect((await query('up{job="changelens"}'))[0]?.value[1], log).toBe('1'), 30_000);
      // Jobs, and a bad release rolled back while Prometheus watches.
      // Jobs all along (a rate needs a series that grows between scrapes).
      jobLoop = (async () => {
        while (jobs) {
          await fetch(`${app.url}/api/process`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ workMs: 5, fail: false }) });
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      await underLoad(async () => {
        const d = await deploy({ version: 'prom-bad', env: { CHANGELENS_REGRESSION: 'errors:1' } });
        expect((await finished(d.id)).status.phase).toBe('rolled_back');
        await new Promise((r) => setTimeout(r, 3_000));
      }, '/api/work?ms=2');
      const dashboard = JSON.parse(readFileSync(join(packageRoot, 'deploy', 'grafana', 'changelens.json'), 'utf8'));
      const exprs = dashboard.panels.flatMap((p: any) => p.targets.map((t: any) => ({ panel: p.title, expr: (t.expr as string).replaceAll('$instance', '.*') })));
      expect(exprs.length).toBeGreaterThanOrEqual(11);
      for (const { panel, expr } of exprs) {
        await until(async () => {
          const series = await query(expr);
          expect(series.length, `${panel}: ${expr}`).toBeGreaterThan(0);
          expect(series.some((s) => Number.isFinite(Number(s.value[1]))), `${panel}: ${expr} only NaN`).toBe(true);
        }, 20_000);
      }
      // Annotations: each a query Prometheus takes; the rollback and the deployment's start are marked.
      const annotations = Object.fromEntries(dashboard.annotations.list.map((a: any) => [a.name, (a.expr as string).replaceAll('$instance', '.*')]));
      for (const expr of Object.values(annotations) as string[]) await query(expr);
      await until(async () => expect((await query(annotations.Rollbacks)).length).toBeGreaterThan(0), 20_000);
      expect((await query(annotations.Deployments)).length).toBeGreaterThan(0);
      // The variable's own query, and the rollback alert, evaluated by Prometheus itself.
      expect((await query(dashboard.templating.list[0].definition.replace(/^label_values\((\w+), instance\)$/, 'group by (instance) ($1)'))).length).toBe(1);
      await until(async () => expect(await query('ALERTS{alertname="ChangeLensRollback",alertstate="firing"}')).toMatchObject([{ metric: { trigger: expect.any(String), severity: 'warning' } }]), 20_000);
      expect(await query('changelens_process_up == 0')).toEqual([]);
    } finally {
      jobs = false;
      await jobLoop.catch(() => {});
      prometheus.kill('SIGTERM');
    }
  });
});
