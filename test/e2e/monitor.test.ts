// The monitor end to end on one appliance with fast rules: a webhook receives its payload, CPU load
// scales the active API colour up while the proxy keeps serving without errors, and a service that
// stops answering (SIGSTOP) is restarted. Every action is audited and shown by `changelens status`.
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { launchAppliance, type Appliance } from '../../bench/harness.js';
import { runCli } from '../helpers/cli.js';
import { startLoad } from '../../bench/load.js';
import { reapOrphans } from '../../supervisor/index.js';

const until = <T>(fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> => vi.waitFor(fn, { timeout: timeoutMs, interval: 250 });
vi.setConfig({ testTimeout: 90_000 });

let app: Appliance;
let hookServer: Server;
const hooks: any[] = [];

beforeAll(async () => {
  hookServer = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c)).on('end', () => { hooks.push(JSON.parse(body)); res.end(); });
  });
  await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', r));
  const hookUrl = `http://127.0.0.1:${(hookServer.address() as { port: number }).port}/hook`;
  app = await launchAppliance({
    env: {
      CHANGELENS_SEED_ITEMS: '100',
      CHANGELENS_MONITOR_INTERVAL_SECONDS: '1',
      CHANGELENS_API_MAX_INSTANCES: '2',
      CHANGELENS_MONITOR_RULES: JSON.stringify([
        { name: 'hook-on-start', metric: 'disk_percent', op: '>', threshold: -1, forSeconds: 0, action: 'webhook', url: hookUrl, cooldownSeconds: 3600 },
        { name: 'busy', metric: 'cpu_percent', op: '>', threshold: 15, forSeconds: 2, action: 'scale_up', cooldownSeconds: 3600 },
        { name: 'down', metric: 'down:*', op: '>', threshold: 0, forSeconds: 2, action: 'restart_service', cooldownSeconds: 30 },
      ]),
    },
  });
  await app.ready;
});

afterAll(async () => {
  if (app && app.child.exitCode === null) await app.stop('SIGTERM');
  if (app) await reapOrphans(join(app.dataDir, 'state', 'pm2'));
  hookServer?.close();
});

async function audit(): Promise<any[]> {
  const res = await fetch(`${app.url}/_changelens/api/audit?since=1h`, { headers: { authorization: `Bearer ${app.secrets().adminToken}` } });
  return ((await res.json()) as { events: any[] }).events;
}

describe('health', () => {
  it('/healthz stays trivial; /healthz?all=1 reports every service\'s state to the operator only', async () => {
    expect(await (await fetch(`${app.url}/healthz`)).json()).toEqual({ status: 'ok' });
    for (const headers of [{}, { authorization: 'Bearer not-the-token' }] as Record<string, string>[]) {
      const anonymous = await fetch(`${app.url}/healthz?all=1`, { headers });
      expect(anonymous.status).toBe(401);
      expect(await anonymous.json()).toMatchObject({ code: 'CL_ERR_UNAUTHORIZED' });
    }
    const all = await (await fetch(`${app.url}/healthz?all=1`, { headers: { authorization: `Bearer ${app.secrets().adminToken}` } })).json() as any;
    expect(all).toMatchObject({ status: 'ok', phase: 'ready', activeColor: 'blue', services: { postgres: 'reachable', redis: 'reachable', 'worker-blue': 'online', 'api-blue': 'online', proxy: 'online' } });
    expect(all.services).not.toHaveProperty('api-green'); // the idle colour is not started
    expect(all.services).not.toHaveProperty('worker-green');
  });
});

describe('monitor rules', () => {
  it('POSTs a webhook rule\'s payload', async () => {
    await until(async () => expect(hooks.length).toBeGreaterThan(0));
    expect(hooks[0]).toMatchObject({ type: 'monitor', rule: 'hook-on-start', metric: 'disk_percent', op: '>', threshold: -1 });
    expect(hooks[0].value).toBeGreaterThan(0);
    expect(hooks).toHaveLength(1); // the cooldown holds it back
  });

  it('scales the active API colour up under CPU load while the proxy keeps serving without errors', async () => {
    const instances = async () => (await app.status()).processes.filter((p) => p.name === 'api-blue' && p.state === 'online').length;
    expect(await instances()).toBe(1);
    const load = startLoad(`${app.url}/api/work?ms=2`, 150);
    try {
      await until(async () => expect(await instances()).toBe(2), 60_000);
      // Both instances serve, and nothing failed while the second one joined.
      await new Promise((r) => setTimeout(r, 2_000));
    } finally {
      await load.stop();
    }
    expect(load.samples.length).toBeGreaterThan(100);
    expect(load.samples.filter((s) => s.status !== 200)).toEqual([]);
    const scaled = (await audit()).find((e) => e.eventType === 'monitor' && e.details.rule === 'busy');
    expect(scaled).toMatchObject({ actor: 'monitor', success: true });
    expect(scaled.details.outcome).toMatch(/scaled api-blue from 1 to 2 instances: cpu_percent \d/);
  });

  it('restarts a service that stops answering, and status shows it', async () => {
    const worker = (await app.status()).processes.find((p) => p.name === 'worker-blue')!;
    process.kill(worker.pid!, 'SIGSTOP');
    try {
      await until(async () => {
        const now = (await app.status()).processes.find((p) => p.name === 'worker-blue')!;
        expect(now.pid).not.toBe(worker.pid);
        expect(now.state).toBe('online');
      }, 60_000);
    } finally {
      try { process.kill(worker.pid!, 'SIGCONT'); } catch { /* gone, as expected */ }
    }
    const restarted = (await audit()).find((e) => e.eventType === 'monitor' && e.details.rule === 'down');
    expect(restarted).toMatchObject({ success: true, details: { metric: 'down:worker-blue', action: 'restart_service' } });
    const status = await runCli(['status'], app.env);
    expect(status.stdout).toMatch(/monitor +3 rules every 1 s/);
    const metrics = await (await fetch(`${app.url}/_changelens/metrics`, { headers: { authorization: `Bearer ${app.secrets().adminToken}` } })).text();
    expect(metrics).toMatch(/changelens_monitor_firings_total\{rule="down"\} [1-9]/);
    expect(metrics).toMatch(/changelens_monitor_firings_total\{rule="hook-on-start"\} 1/);
    expect(status.stdout).toMatch(/down: restarted worker-blue/);
  });
});
