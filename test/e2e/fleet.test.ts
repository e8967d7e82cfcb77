// A fleet end to end: one Postgres and one Redis (the project's own scratch Postgres; redis-server),
// three appliances in external mode on their own ports, and nginx round-robin in front of them with
// open-model load through it. A bad release is rolled back by the fleet's merged verdict on all
// three; kill -9 of the controller's whole appliance mid-rollout hands the lease to another within
// 10 s while the survivors route stable-only, and the deployment goes on; the dead controller's
// write is refused by epoch; a fourth instance joins mid-rollout and follows; the good release is
// promoted on all four (by an operator, through the newcomer), and a fifth that joins after serves
// the promoted release.
import { writeFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startFleetHarness, type FleetHarness } from '../../bench/fleet-harness.js';
import type { Appliance } from '../../bench/harness.js';
import { startLoad, type Load } from '../../bench/load.js';
import { PgRolloutStore } from '../../rollout/index.js';
import { runCli } from '../helpers/cli.js';

vi.setConfig({ testTimeout: 300_000, hookTimeout: 240_000 });
const until = <T>(fn: () => Promise<T>, timeoutMs = 90_000): Promise<T> => vi.waitFor(fn, { timeout: timeoutMs, interval: 250 });
const TERMINAL = ['promoted', 'rolled_back', 'aborted', 'failed'];

let fleet: FleetHarness;
let instances: Map<string, Appliance>;
let load: Load | null = null;

const launchInstance = (id: string): Promise<Appliance> => fleet.launch(id);
const api = (app: Appliance, method: string, path: string, body?: unknown): Promise<any> => fleet.api(app, method, path, body);
const status = (app: Appliance): Promise<any> => api(app, 'GET', '/api/status');
const live = (): Appliance[] => fleet.live();
const controllerOf = async (): Promise<[string, Appliance]> => until(async () => {
  for (const [id, app] of instances) {
    if (!live().includes(app)) continue;
    if ((await status(app)).fleet.controller) return [id, app];
  }
  throw new Error('no instance is the controller');
});
const finished = (app: Appliance, id: string): Promise<any> => until(async () => {
  const d = await api(app, 'GET', `/api/deployments/${id}`);
  expect(TERMINAL, `deployment ${id} is ${d.status?.phase}`).toContain(d.status.phase);
  return d;
}, 120_000);
/** Every live instance applies this split (the routing its status reports). */
const everywhere = (check: (s: any) => boolean, what: string): Promise<void> => until(async () => {
  for (const app of live()) {
    const s = await status(app);
    expect(check(s), `${s.fleet.instance}: ${what}; routing ${JSON.stringify(s.routing)}`).toBe(true);
  }
});

beforeAll(async () => {
  fleet = await startFleetHarness({
    CHANGELENS_CANARY_STEPS: '50,100', CHANGELENS_STEP_SECONDS: '6', CHANGELENS_WINDOW_SECONDS: '3', CHANGELENS_MIN_SAMPLES: '20',
    CHANGELENS_KEEP_WARM_SECONDS: '2', CHANGELENS_INSPECT_SECONDS: '2', CHANGELENS_JOB_CLAIM_IDLE_MS: '1000', CHANGELENS_WARMUP_SECONDS: '2',
  });
  instances = fleet.instances;
  // Three at once: the migrations' advisory lock lets one migrate while the others wait.
  await Promise.all(['fleet-a', 'fleet-b', 'fleet-c'].map((id) => launchInstance(id)));
  load = startLoad(`${await fleet.balance()}/api/work?ms=5`, 60);
});

afterAll(async () => {
  // FLEET_DEBUG=<file>: every instance's proxy lines, and every warning, for reading a failure after.
  if (process.env.FLEET_DEBUG && instances) writeFileSync(process.env.FLEET_DEBUG, [...instances.entries()].flatMap(([id, a]) => a.records.filter((r) => r.service === 'proxy' || r.level === 'warn' || r.level === 'error').map((r) => JSON.stringify({ id, ...r }))).join('\n'));
  await load?.stop();
  await fleet?.stop();
});

describe('a fleet of three behind nginx', () => {
  it('lists every instance on every instance, exactly one of them the controller', async () => {
    const [controllerId] = await controllerOf();
    for (const app of live()) {
      const s = await status(app);
      expect(s.fleet.instances.filter((i: any) => !i.gone).map((i: any) => i.id).sort()).toEqual(['fleet-a', 'fleet-b', 'fleet-c']);
      expect(s.fleet.lease.holder).toBe(controllerId);
      expect(s.fleet.controller).toBe(s.fleet.instance === controllerId);
    }
    // As an operator reads it: `changelens status` on an instance lists the fleet and who drives.
    const some = live()[0]!;
    const { code, stdout } = await runCli(['status'], some.env);
    expect(code, stdout).toBe(0);
    expect(stdout).toMatch(new RegExp(`fleet +instance fleet-[abc], one of 3 live; controller ${controllerId} \\(epoch \\d+\\)`));
    expect(stdout).toMatch(new RegExp(`${controllerId} +controller, (blue|green) 100%`));
  });

  it('rolls a bad release back on all three, by the verdict on every instance\'s requests, asked through a follower', async () => {
    const [controllerId] = await controllerOf();
    const follower = [...instances.entries()].find(([id]) => id !== controllerId)![1];
    const stable = (await status(follower)).active.color;
    // Neither the 5xx run nor the sequential test: the windows, merged across instances, decide.
    const d0 = await api(follower, 'POST', '/api/deployments', { version: 'fleet-bad', env: { CHANGELENS_REGRESSION: 'errors:0.3' }, tripConsecutive5xx: 0, sequential: false });
    const d = await finished(follower, d0.id);
    // Every follower applied the step (the controller applies it itself).
    for (const [id, app] of instances) {
      if (id === controllerId) continue;
      await app.waitForRecord((r) => r.service === 'proxy' && r.msg === 'applying the deployment\'s step here' && r.deployment === d0.id && r.weight === 0.5, 1_000);
    }
    expect(d.status.phase).toBe('rolled_back');
    expect(d.status.reason).toMatch(/failing windows/);
    // The verdicts counted more candidate requests than any one instance served in a window.
    const failing = d.verdicts.filter((v: any) => v.verdict === 'fail');
    expect(failing.length).toBeGreaterThan(0);
    await everywhere((s) => s.routing.candidateWeight === 0 && s.active.color === stable, 'everything on the stable colour');
  });

  it('kill -9 of the controller\'s appliance mid-rollout: another takes the lease within 10 s, nobody sends the candidate unjudged traffic meanwhile, the dead one\'s write is refused; a fourth instance joins and follows; promoted on all', async () => {
    const [deadId, dead] = await controllerOf();
    const survivors = [...instances.entries()].filter(([id]) => id !== deadId).map(([, app]) => app);
    // A good release; the box boots whole appliances while it is judged, so a latency outlier is not what this test is about.
    const d0 = await api(survivors[0]!, 'POST', '/api/deployments', { version: 'fleet-good', steps: [50, 100], stepSeconds: 20, p99Ratio: 5 });
    await everywhere((s) => s.routing.candidateWeight === 0.5, 'the candidate takes half');
    // The dead controller will have judged a window of the step: the new one must go on from its end.
    await until(async () => expect((await api(dead, 'GET', `/api/deployments/${d0.id}`)).verdicts.length).toBeGreaterThan(0));
    const db = new pg.Pool({ connectionString: fleet.postgresUrl, max: 2 });
    try {
      const { rows: [lease] } = await db.query<{ holder: string; epoch: string }>(`SELECT holder, epoch FROM fleet_leases WHERE name = 'controller'`);
      expect(lease!.holder).toBe(deadId);
      // The whole machine: its supervisor and every process pm2 runs for it.
      const killedAt = await fleet.kill(dead);
      const [nextId, next] = await controllerOf();
      expect(nextId).not.toBe(deadId);
      // The take-over as the new controller itself logged it (not when this test's polling saw it).
      const took = await next.waitForRecord((r) => r.service === 'proxy' && r.msg === 'took the controller lease: this instance drives deployments' && Date.parse(String(r.time)) >= killedAt);
      expect(Date.parse(String(took.time)) - killedAt).toBeLessThan(10_000);
      // Between the last renewal and the take-over, no instance let the candidate take traffic.
      const after = (r: Record<string, unknown>): boolean => Date.parse(String(r.time)) >= killedAt;
      for (const app of survivors) {
        await app.waitForRecord((r) => r.service === 'proxy' && r.msg === 'routing to the stable colour only here' && r.deployment === d0.id && after(r) && /no controller/.test(String(r.why)), 10_000);
      }
      await next.waitForRecord((r) => r.service === 'proxy' && /taking over a deployment/.test(String(r.msg)) && after(r), 10_000);

      // Held at this step (through an instance that is not the controller) while the rest happens.
      const other = survivors.find((a) => a !== next)!;
      await api(other, 'POST', '/api/deployment/pause', { reason: 'a fourth instance joins' });
      // The deposed controller's write, as it would make it if it woke now: refused by epoch, nothing changed.
      const paused = await api(next, 'GET', `/api/deployments/${d0.id}`);
      expect(paused.status.phase).toBe('paused');
      const deposed = new PgRolloutStore(db, () => ({ holder: deadId, epoch: Number(lease!.epoch) }));
      await expect(deposed.saveStatus(d0.id, paused.status, { ...paused.status, phase: 'promoted', revision: paused.status.revision + 1 }))
        .rejects.toMatchObject({ code: 'CL_ERR_NOT_CONTROLLER' });
      expect((await api(next, 'GET', `/api/deployments/${d0.id}`)).status.revision).toBe(paused.status.revision);

      // A fourth instance joins: stable-only until its candidate is ready, then it follows the step.
      const fourth = await launchInstance('fleet-d');
      await until(async () => {
        const s = await status(fourth);
        expect(s.fleet.controller).toBe(false);
        expect(s.routing.candidateWeight, JSON.stringify(s.routing)).toBe(0.5);
      });
      // Every second of the step was judged, the seconds around the kill too: the new controller's
      // first window begins where the dead one's last ended (the fleet's slices outlived it).
      const { verdicts } = await api(next, 'GET', `/api/deployments/${d0.id}`);
      const windows = (verdicts as Array<{ stepIndex: number; window: { startMs: number; endMs: number } }>).filter((v) => v.stepIndex === 0).map((v) => v.window);
      for (let i = 1; i < windows.length; i++) expect(windows[i]!.startMs, JSON.stringify(windows)).toBeLessThanOrEqual(windows[i - 1]!.endMs);
      expect(windows.some((w) => w.startMs <= killedAt && killedAt < w.endMs), JSON.stringify({ killedAt, windows })).toBe(true);

      // Promoted by an operator through the newcomer: forwarded to the controller, followed by all.
      await api(fourth, 'POST', '/api/deployment/promote');
      const d = await finished(fourth, d0.id);
      expect(d.status.phase, d.status.reason).toBe('promoted');
      await everywhere((s) => s.routing.candidateWeight === 0 && s.active.color === d.candidateColor && s.active.version === 'fleet-good', 'everything on the promoted colour');

      // One that joins after the promotion boots the colour its own (new) data dir names, starts the
      // fleet's active release and serves that: never a colour it does not run.
      const late = await launchInstance('fleet-e');
      await until(async () => {
        const s = await status(late);
        expect(s.active, JSON.stringify(s.routing)).toEqual({ version: 'fleet-good', color: d.candidateColor });
        expect(s.routing.stable).toBe(d.candidateColor);
      });
      const res = await fetch(`${late.url}/api/work?ms=1`);
      expect(res.status).toBe(200);
      expect(res.headers.get('x-changelens-color')).toBe(d.candidateColor);
    } finally {
      await db.end();
    }
  });
});
