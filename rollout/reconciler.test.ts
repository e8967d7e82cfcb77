// The reconciler without Postgres, pm2 or sockets: an in-memory store held to the Postgres store's
// contract, a fake supervisor (the only thing mocked: the colours' processes), the real sliced
// window and judge, and a clock the test moves. Traffic is recorded as the proxy would, split by
// the routing table the controller publishes. Minutes of rollout run in milliseconds.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Color } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { SlicedWindow } from '../monitoring/index.js';
import { ManualClock } from '../test/helpers/manual-clock.js';
import { FakeSupervisor } from '../test/helpers/fake-supervisor.js';
import { MemoryRolloutStore } from '../test/helpers/memory-rollout-store.js';
import { RolloutController } from './controller.js';
import type { DeployRequest, Plan } from './model.js';
import type { MirrorLink } from './ports.js';
import { WARM_ENOUGH } from './warmup.js';
import type { DeploymentStatus } from './state-machine.js';

/** Counts the store's status writes (to see how many a transition costs), and loses them on demand (Postgres away). */
class CountingStore extends MemoryRolloutStore {
  readonly writes: Array<{ id: string; from: string; to: string }> = [];
  failWrites = false;
  override async saveStatus(id: string, from: DeploymentStatus, to: DeploymentStatus, options?: Parameters<MemoryRolloutStore['saveStatus']>[3]): Promise<void> {
    if (this.failWrites) throw new Error('connection terminated unexpectedly');
    await super.saveStatus(id, from, to, options);
    this.writes.push({ id, from: from.phase, to: to.phase });
  }
}

/** The proxy's mirror as the warm-up sees it: every synthetic GET and every copy answered at once (the real one: proxy/mirror.test.ts, e2e). */
class FakeMirror implements MirrorLink {
  readonly totals: Record<Color, { mirrored: number; synthetic: number; answered: number; ok: number; failed: number }> = {
    blue: { mirrored: 0, synthetic: 0, answered: 0, ok: 0, failed: 0 }, green: { mirrored: 0, synthetic: 0, answered: 0, ok: 0, failed: 0 },
  };
  /** What the candidate answers the warm-up's requests (a 404 warms nothing). */
  status = 200;
  readonly paths: string[] = [];

  synthetic(color: Color, path: string): boolean {
    this.paths.push(path);
    this.totals[color].synthetic++;
    this.answer(color);
    return true;
  }

  copy(color: Color): void {
    this.totals[color].mirrored++;
    this.answer(color);
  }

  private answer(color: Color): void {
    const t = this.totals[color];
    t.answered++;
    if (this.status < 400) t.ok++;
    if (this.status >= 500) t.failed++;
  }

  counts(color: Color) {
    return { ...this.totals[color] };
  }
}

const PLAN: Plan = {
  stepSeconds: 10, windowSeconds: 5,
  rules: { p99Ratio: 1.5, maxErrorRate: 0.05, minSamples: 50, failuresToRollback: 2 },
  keepWarmSeconds: 60, inspectSeconds: 120, previewSeconds: 0, tripConsecutive5xx: 5, sequential: false,
};

const request = (version: string, over: Partial<DeployRequest> = {}, plan: Partial<Plan> = {}): DeployRequest => ({
  version, strategy: 'canary', steps: [50, 100], env: undefined, artifact: undefined, plan: { ...PLAN, ...plan, rules: { ...PLAN.rules, ...plan.rules } }, actor: 'test', ...over,
});

/** How the candidate answers: a latency multiple of the stable colour's, and its status. */
interface Behaviour { slower: number; status: number }
const GOOD: Behaviour = { slower: 1, status: 200 };

let dir: string;
let clock: ManualClock;
let store: CountingStore;
let supervisor: FakeSupervisor;
let controllers: RolloutController[];
let candidate: Behaviour;

/** What the analysis load was asked to do (the real one sends HTTP through the proxy: e2e). */
let loads: Array<{ rate: number; colors: readonly Color[]; stopped: boolean }>;
let mirror: FakeMirror;

function boot(extra: Partial<ConstructorParameters<typeof RolloutController>[0]> = {}): RolloutController {
  const controller = new RolloutController({
    ...extra,
    analysisLoad: (load, colors) => {
      const run = { rate: load.rate, colors, stopped: false };
      loads.push(run);
      return { stop: () => { run.stopped = true; return { sent: 0, skipped: 0, failed: 0 }; } };
    },
    mirror, store, supervisor, clock, window: new SlicedWindow(), log: createLogger('test', { level: 'silent' }),
    routingPath: join(dir, 'routing.json'), releasesDir: join(dir, 'releases'), releasesKeep: 5,
    hooks: { urls: [], command: undefined, timeoutMs: 1000 }, activeColor: 'blue',
    initialRelease: { version: 'v1', artifact: 'builtin', env: {} },
  });
  controllers.push(controller);
  return controller;
}

/**
 * `ms` of traffic, 20 requests per 100 ms, split by the routing table as the router would (the
 * first weight × 20 of each batch go to the candidate). Latencies cycle through 5-14 ms.
 */
async function serve(controller: RolloutController, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 100) {
    await clock.advance(100);
    const table = controller.routingTable();
    for (let i = 0; i < 20; i++) {
      const base = 5 + ((t / 100 + i) % 10);
      if (table.candidate && i < Math.round(table.candidateWeight * 20)) controller.record(table.candidate, base * candidate.slower, candidate.status);
      else {
        controller.record(table.stable, base, 200);
        // The proxy copies what the stable colour serves, when the table says so (all GETs here).
        const rule = table.mirror;
        if (rule && i < Math.round(rule.share * 20)) {
          mirror.copy(rule.color);
          controller.recordCopy(rule.color, rule.purpose, base * candidate.slower, candidate.status, rule.rolloutId ?? null);
        }
      }
    }
  }
}

/** Serves traffic until the deployment reaches a phase (or fails after `maxMs` of clock time). */
async function serveUntil(controller: RolloutController, id: string, phases: string[], maxMs = 120_000): Promise<string> {
  for (let waited = 0; waited < maxMs; waited += 500) {
    const phase = (await store.deployment(id)).status.phase;
    if (phases.includes(phase)) return phase;
    await serve(controller, 500);
  }
  throw new Error(`deployment ${id} not in ${phases.join('/')} within ${maxMs} ms: ${(await store.deployment(id)).status.phase}`);
}

/** Moves the clock without traffic until the deployment is shifting (the candidate started and took its first step). */
async function shifting(id: string): Promise<void> {
  for (let waited = 0; (await store.deployment(id)).status.phase !== 'shifting'; waited += 100) {
    if (waited > 10_000) throw new Error(`deployment ${id} not shifting: ${(await store.deployment(id)).status.phase}`);
    await clock.advance(100);
  }
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'changelens-reconciler-'));
  clock = new ManualClock();
  store = new CountingStore(() => clock.now());
  supervisor = new FakeSupervisor();
  controllers = [];
  candidate = GOOD;
  loads = [];
  mirror = new FakeMirror();
});

afterEach(() => {
  for (const c of controllers) c.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the reconciler', () => {
  it('walks a good canary through its steps and promotes it', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('v2'));
    await shifting(d.id);
    expect(c.routingTable()).toMatchObject({ stable: 'blue', candidate: 'green', candidateWeight: 0.5 });
    expect(await serveUntil(c, d.id, ['promoted', 'rolled_back'])).toBe('promoted');
    expect(c.routingTable()).toMatchObject({ stable: 'green', candidateWeight: 0 });
    expect(await store.pointers()).toEqual({ active: { version: 'v2', color: 'green' }, lastGood: { version: 'v2', color: 'green' } });
    const verdicts = await store.verdicts(d.id);
    expect(verdicts.length).toBeGreaterThanOrEqual(2);
    expect(verdicts.every((v) => v.verdict === 'pass')).toBe(true);
    const events = (await store.auditSince(0)).map((e) => e.eventType).reverse();
    expect(events).toEqual(['deploy', 'ready', 'step', 'promote']);
    expect((await store.deployment(d.id)).result).toMatchObject({ status: 'promoted', traffic_split: { candidate: 1 }, verdicts: { fail: 0 } });
    // The old colour stays warm for keepWarmSeconds, then stops.
    expect(supervisor.calls).not.toContain('stop blue');
    await clock.advance(PLAN.keepWarmSeconds * 1000);
    expect(supervisor.calls).toContain('stop blue');
  });

  it('rolls back after N failing windows, with one status write, and is free for the next deploy at once', async () => {
    const c = boot();
    await c.init();
    candidate = { slower: 4, status: 200 };
    const d = await c.deploy(request('slow'));
    expect(await serveUntil(c, d.id, ['promoted', 'rolled_back'])).toBe('rolled_back');
    const stored = await store.deployment(d.id);
    expect(stored.status.reason).toMatch(/^2 consecutive failing windows: p99 .* > 1\.5×/);
    expect(stored.result).toMatchObject({ status: 'rolled_back', rollback_timing: { candidate_requests_after_swap: 0 } });
    expect(c.routingTable()).toMatchObject({ stable: 'blue', candidateWeight: 0 });
    expect((await store.verdicts(d.id)).map((v) => v.verdict)).toEqual(['fail', 'fail']);
    // The rollback is one status write: shifting → rolled_back.
    expect(store.writes.filter((w) => w.id === d.id).map((w) => w.to)).toEqual(['warming', 'shifting', 'rolled_back']);
    candidate = GOOD;
    const next = await c.deploy(request('good'));
    expect(next.candidateColor).toBe('green');
  });

  it('trips on a run of 5xx without waiting for a window', async () => {
    const c = boot();
    await c.init();
    candidate = { slower: 1, status: 503 };
    const d = await c.deploy(request('broken'));
    await shifting(d.id);
    const before = clock.now();
    expect(await serveUntil(c, d.id, ['rolled_back', 'promoted'])).toBe('rolled_back');
    const [verdict] = await store.verdicts(d.id);
    expect(verdict).toMatchObject({ verdict: 'fail', rules: [{ rule: 'consecutive_5xx', threshold: 5 }] });
    expect(verdict!.explanation).toMatch(/^fast trip, without waiting for a window/);
    expect(verdict!.window.endMs - before).toBeLessThan(PLAN.windowSeconds * 1000);
  });

  it('trips when the candidate crashes (pm2 restarted it)', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('crashy'));
    await shifting(d.id);
    supervisor.colours.green.restarts++;
    expect(await serveUntil(c, d.id, ['rolled_back', 'promoted'], 2_000)).toBe('rolled_back');
    expect((await store.deployment(d.id)).status.reason).toMatch(/api-green crashed: pm2 restarted it \(1 restart since/);
  });

  it('trips when only the candidate fails its readiness; not when both colours do (a shared dependency is down)', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('unready', {}, { stepSeconds: 60 }));
    await shifting(d.id);
    // Redis away: both colours unready for seconds. The candidate is not blamed.
    supervisor.colours.green.ready = false;
    supervisor.colours.blue.ready = false;
    await serve(c, 3_000);
    expect((await store.deployment(d.id)).status.phase).toBe('shifting');
    // Back for the stable colour only: now it is the candidate's own.
    supervisor.colours.blue.ready = true;
    expect(await serveUntil(c, d.id, ['rolled_back', 'promoted'], 3_000)).toBe('rolled_back');
    expect((await store.deployment(d.id)).status.reason).toMatch(/api-green failed its readiness probe/);
  });

  it('fails a candidate that does not become ready, and stops it', async () => {
    const c = boot();
    await c.init();
    supervisor.failStart = 'readiness probe timed out';
    const d = await c.deploy(request('never-ready'));
    expect(await serveUntil(c, d.id, ['failed'])).toBe('failed');
    expect((await store.deployment(d.id)).status.reason).toContain('readiness probe timed out');
    expect(supervisor.calls.at(-1)).toBe('stop green');
  });

  it('a deploy asked for while the supervisor still boots waits for its end, and its candidate starts then', async () => {
    const c = boot();
    await c.init();
    supervisor.booting = true;
    const d = await c.deploy(request('v2'));
    // Refused more than once (every 250 ms): still starting, not failed.
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect((await store.deployment(d.id)).status.phase).toBe('starting');
    expect(supervisor.calls).not.toContain('start green v2');
    supervisor.booting = false;
    await vi.waitFor(() => expect(supervisor.calls).toContain('start green v2'));
    await shifting(d.id);
  });

  it('holds a paused step and moves on once resumed', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('paused'));
    await shifting(d.id);
    await c.pause('operator', 'looking at the logs');
    await serve(c, 60_000);
    expect((await store.deployment(d.id)).status).toMatchObject({ phase: 'paused', stepIndex: 0, reason: 'looking at the logs' });
    expect(c.routingTable().candidateWeight).toBe(0.5);
    await c.resume('operator');
    expect(await serveUntil(c, d.id, ['promoted', 'rolled_back'])).toBe('promoted');
  });

  it('promotes on the operator\'s word mid-canary', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('urgent'));
    await shifting(d.id);
    await c.promote('operator');
    expect((await store.deployment(d.id)).status.phase).toBe('promoted');
    expect(c.routingTable()).toMatchObject({ stable: 'green', candidateWeight: 0 });
    expect((await store.auditSince(0)).find((e) => e.eventType === 'promote')?.actor).toBe('operator');
  });

  it('moves one step on the operator\'s word, from shifting or from a pause; the step is judged afresh; the last step promotes; what the caller saw is checked', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('stepwise', { steps: [10, 40, 100] }));
    await shifting(d.id);
    await c.pause('operator', 'waiting for sign-off');
    const moved = await c.promoteStep('approver', 'signed off');
    expect(moved.status).toMatchObject({ phase: 'shifting', stepIndex: 1, reason: null });
    expect(c.routingTable().candidateWeight).toBe(0.4);
    expect((await store.auditSince(0)).find((e) => e.eventType === 'step' && e.actor === 'approver')?.details).toMatchObject({ stepIndex: 1, weight: 40, by: 'operator', reason: 'signed off' });
    // Its step is judged from the move: a full step period of its own windows before it passes.
    await serve(c, 9_000);
    expect((await store.deployment(d.id)).status).toMatchObject({ phase: 'shifting', stepIndex: 1 });
    // A second click (or a retry) from what was step 1 moves nothing: it moved on already.
    await expect(c.promoteStep('approver', undefined, { deploymentId: d.id, stepIndex: 0, atGate: false })).rejects.toMatchObject({ code: 'CL_ERR_ROLLOUT_BAD_TRANSITION', message: expect.stringContaining('moved on already') });
    expect((await store.deployment(d.id)).status.stepIndex).toBe(1);
    await expect(c.pause('operator', 'waiting for approval from QA')).rejects.toMatchObject({ code: 'CL_ERR_INVALID_REQUEST' });
    const last = await c.promoteStep('approver', undefined, { deploymentId: d.id, stepIndex: 1, atGate: false });
    expect(last.status.phase).toBe('promoted');
    expect(c.routingTable()).toMatchObject({ stable: 'green', candidateWeight: 0 });
    await expect(c.promoteStep('approver')).rejects.toMatchObject({ code: 'CL_ERR_NO_DEPLOYMENT' });
  });

  it('a gate in the steps holds the step before until approved, judged meanwhile; the approval enters the held step', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('gated', { steps: [20, 60, 100] }, { gates: [1] }));
    await shifting(d.id);
    // Step 1 passes on its windows, then waits at 20 % for as long as nobody approves.
    expect(await serveUntil(c, d.id, ['paused'])).toBe('paused');
    await serve(c, 30_000);
    const held = await store.deployment(d.id);
    expect(held.status).toMatchObject({ phase: 'paused', stepIndex: 1, reason: 'waiting for approval before step 2/3 (60 %): changelens promote --step, the dashboard' });
    expect(c.routingTable().candidateWeight).toBe(0.2);
    expect((await store.verdicts(d.id)).length).toBeGreaterThan(4);
    await expect(c.resume('operator')).rejects.toMatchObject({ code: 'CL_ERR_ROLLOUT_BAD_TRANSITION' });
    const approved = await c.promoteStep('approver', 'ticket 7');
    expect(approved.status).toMatchObject({ phase: 'shifting', stepIndex: 1 });
    expect(c.routingTable().candidateWeight).toBe(0.6);
    expect(await serveUntil(c, d.id, ['promoted', 'rolled_back'])).toBe('promoted');
    const audit = await store.auditSince(0);
    expect(audit.find((e) => e.eventType === 'gate')?.details).toEqual({ stepIndex: 1, weight: 60, webhook: false });
    expect(audit.find((e) => e.eventType === 'approve')).toMatchObject({ actor: 'approver', details: { stepIndex: 1, weight: 60, reason: 'ticket 7' } });
  });

  it('a failing candidate held at a gate is still rolled back', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('gated-bad', { steps: [20, 100] }, { gates: [1] }));
    await shifting(d.id);
    expect(await serveUntil(c, d.id, ['paused'])).toBe('paused');
    candidate = { slower: 1, status: 500 };
    expect(await serveUntil(c, d.id, ['promoted', 'rolled_back'])).toBe('rolled_back');
  });

  it('blue/green awaiting approval: ready and held at no traffic; the approval switches, judged against the stable colour just before', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('bg-gated', { strategy: 'bluegreen' }, { gates: [0] }));
    for (let i = 0; (await store.deployment(d.id)).status.phase !== 'paused'; i++) {
      if (i > 100) throw new Error('not held');
      await serve(c, 100);
    }
    await serve(c, 20_000);
    expect((await store.deployment(d.id)).status).toMatchObject({ phase: 'paused', stepIndex: 0, reason: expect.stringMatching(/^waiting for approval before step 1\/1 \(100 %\)/) });
    expect(c.routingTable()).toMatchObject({ stable: 'blue', candidateWeight: 0 });
    await c.promoteStep('operator');
    expect(c.routingTable().candidateWeight).toBe(1);
    expect(await serveUntil(c, d.id, ['promoted', 'rolled_back'])).toBe('promoted');
  });

  it('direct awaiting approval promotes on the approval, and a restart keeps it held', async () => {
    const first = boot();
    await first.init();
    const d = await first.deploy(request('direct-gated', { strategy: 'direct' }, { gates: [0] }));
    for (let i = 0; (await store.deployment(d.id)).status.phase !== 'paused'; i++) {
      if (i > 100) throw new Error('not held');
      await clock.advance(100);
    }
    first.close();
    const second = boot();
    await second.init();
    await clock.advance(5_000);
    expect((await store.deployment(d.id)).status).toMatchObject({ phase: 'paused', stepIndex: 0 });
    expect(second.routingTable().candidateWeight).toBe(0);
    expect((await second.promoteStep('operator')).status.phase).toBe('promoted');
    expect(second.routingTable()).toMatchObject({ stable: 'green', candidateWeight: 0 });
  });

  it('the gate webhook is asked every window while the gate holds: a non-2xx keeps it waiting, the first 2xx approves', async () => {
    const asked: Array<{ stepIndex: number; weight: number }> = [];
    let answer = 503;
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        asked.push(JSON.parse(body));
        res.writeHead(answer).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const c = boot({ gate: { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/approve?token=s3cret`, timeoutMs: 2_000 } });
      await c.init();
      const d = await c.deploy(request('hooked', { steps: [30, 100] }, { gates: [1] }));
      await shifting(d.id);
      expect(await serveUntil(c, d.id, ['paused'])).toBe('paused');
      await vi.waitFor(() => expect(asked.length).toBeGreaterThanOrEqual(1));
      await serve(c, 6_000); // the next window's ask: still 503
      await vi.waitFor(() => expect(asked.length).toBeGreaterThanOrEqual(2));
      expect((await store.deployment(d.id)).status.phase).toBe('paused');
      expect(asked[0]).toMatchObject({ type: 'gate', deploymentId: d.id, stepIndex: 1, weight: 100 });
      answer = 200;
      await serve(c, 6_000);
      await vi.waitFor(async () => expect((await store.deployment(d.id)).status.phase).toBe('promoted'));
      expect((await store.auditSince(0)).find((e) => e.eventType === 'approve')?.actor).toBe('gate webhook');
    } finally {
      server.close();
    }
  });

  it('refuses a step while the candidate starts, naming the phase', async () => {
    const c = boot();
    await c.init();
    let started = (): void => {};
    supervisor.holdStart = new Promise((r) => (started = r));
    const d = await c.deploy(request('early'));
    await expect(c.promoteStep('operator')).rejects.toMatchObject({ code: 'CL_ERR_ROLLOUT_BAD_TRANSITION', message: expect.stringContaining('starting') });
    expect((await store.deployment(d.id)).status).toMatchObject({ phase: 'starting', stepIndex: 0 });
    started();
    await shifting(d.id);
    expect((await store.deployment(d.id)).status.stepIndex).toBe(0);
  });

  it('rolls back a taken-over deployment whose candidate is gone', async () => {
    const first = boot();
    await first.init();
    const d = await first.deploy(request('orphan'));
    await shifting(d.id);
    first.close();
    // The proxy restarts; meanwhile the candidate died with it.
    supervisor.colours.green.running = false;
    const second = boot();
    await second.init();
    await clock.advance(1_000);
    const after = await store.deployment(d.id);
    expect(after.status).toMatchObject({ phase: 'rolled_back', reason: 'the candidate green was not running after a restart' });
    expect(second.routingTable()).toMatchObject({ stable: 'blue', candidateWeight: 0 });
  });

  it('keeps the failure streak across a restart', async () => {
    const first = boot();
    await first.init();
    candidate = { slower: 4, status: 200 };
    const d = await first.deploy(request('streaky', {}, { rules: { ...PLAN.rules, failuresToRollback: 3 } }));
    await shifting(d.id);
    for (let i = 0; (await store.verdicts(d.id)).length < 2; i++) await serve(first, 500);
    expect((await store.verdicts(d.id)).map((v) => v.verdict)).toEqual(['fail', 'fail']);
    first.close();
    const second = boot();
    await second.init();
    expect(await serveUntil(second, d.id, ['rolled_back', 'promoted'])).toBe('rolled_back');
    // One more failing window was enough: the two before the restart counted.
    const verdicts = await store.verdicts(d.id);
    expect(verdicts.map((v) => v.verdict)).toEqual(['fail', 'fail', 'fail']);
    expect(verdicts[2]!.explanation).toMatch(/^failed, 3 in a row \(rolls back at 3\)/);
  });

  it('rolls back at once when the previous proxy had decided but could not persist the rollback', async () => {
    const first = boot();
    await first.init();
    candidate = { slower: 4, status: 200 };
    const d = await first.deploy(request('decided'));
    await shifting(d.id);
    // Postgres goes away just as the second failing window is judged: the verdicts are stored, the rollback is not.
    while ((await store.verdicts(d.id)).length < 1) await serve(first, 100);
    store.failWrites = true;
    while ((await store.verdicts(d.id)).length < 2) await serve(first, 100);
    await serve(first, 1_000);
    expect(first.routingTable().candidateWeight).toBe(0); // traffic stays on the stable colour meanwhile
    first.close();
    store.failWrites = false;
    expect((await store.deployment(d.id)).status.phase).toBe('shifting');
    const second = boot();
    await second.init();
    await clock.advance(1_000);
    expect((await store.deployment(d.id)).status).toMatchObject({ phase: 'rolled_back', reason: '2 consecutive failing windows before the proxy restarted' });
    expect(second.routingTable()).toMatchObject({ stable: 'blue', candidateWeight: 0 });
  });

  it('takes an operator rollback and is ready for the next deploy at once', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('regret'));
    await shifting(d.id);
    const rolledBack = await c.rollback('operator', 'wrong build');
    expect(rolledBack.status).toMatchObject({ phase: 'rolled_back', reason: 'wrong build' });
    expect((await store.deployment(d.id)).result).toMatchObject({ rollback_reason: 'wrong build', rollback_timing: { candidate_requests_after_swap: 0, settled: false } });
    // A request that reaches the candidate after the swap (one it was already routed, an analysis pin) is counted,
    // and the timing is final once the requests in flight had time to finish.
    c.record('green', 3, 200); // started before the swap: in flight at it
    await clock.advance(50);
    c.record('green', 3, 200); // started after it
    await clock.advance(1_000);
    expect((await store.deployment(d.id)).result).toMatchObject({ rollback_timing: { candidate_requests_after_swap: 1, candidate_in_flight_at_swap: 1, settled: true } });
    const fix = await c.deploy(request('fix'));
    expect(fix.status.phase).toBe('starting');
    await expect(c.abort('operator')).resolves.toMatchObject({ id: fix.id, status: { phase: 'aborted' } });
  });

  it('refuses to abort what has ended, without touching the routing', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('done'));
    await shifting(d.id);
    await c.promote('operator');
    const table = c.routingTable();
    await expect(c.abort('operator')).rejects.toMatchObject({ code: 'CL_ERR_NO_DEPLOYMENT' });
    expect(c.routingTable()).toBe(table);
  });

  it('blue/green: pinned preview, then everything at once, judged against the stable colour before the switch', async () => {
    const c = boot();
    await c.init();
    await serve(c, 5_000); // the stable colour's history the candidate is judged against
    const d = await c.deploy(request('bg', { strategy: 'bluegreen' }, { previewSeconds: 20 }));
    await clock.advance(10_000);
    expect((await store.deployment(d.id)).status.phase).toBe('warming');
    expect(c.routingTable().candidateWeight).toBe(0);
    await shifting(d.id);
    expect(c.routingTable()).toMatchObject({ candidate: 'green', candidateWeight: 1 });
    expect(await serveUntil(c, d.id, ['promoted', 'rolled_back'])).toBe('promoted');
    expect((await store.verdicts(d.id)).length).toBeGreaterThanOrEqual(1);
  });

  it('direct: promoted as soon as the candidate is ready, without a verdict', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('direct', { strategy: 'direct' }));
    await clock.advance(100);
    expect((await store.deployment(d.id)).status.phase).toBe('promoted');
    expect(await store.verdicts(d.id)).toEqual([]);
    expect(c.routingTable()).toMatchObject({ stable: 'green', candidateWeight: 0 });
  });

  it('a candidate a few ms slower at the tail is promoted when the excess is under the floor; 10× slower is not', async () => {
    const c = boot();
    await c.init();
    // 2× the stable colour's 5-14 ms: a 1.5× ratio rule alone fails it; +5-14 ms is under a 20 ms floor.
    candidate = { slower: 2, status: 200 };
    const d = await c.deploy(request('tail', {}, { rules: { ...PLAN.rules, p99MinDeltaMs: 20 } }));
    expect(await serveUntil(c, d.id, ['promoted', 'rolled_back'])).toBe('promoted');
    expect((await store.verdicts(d.id))[0]!.explanation).toMatch(/^passed: .*p99 28\.0ms = 2\.00× stable 14\.0ms > 1\.5×, \+14\.0ms ≤ the 20\.0ms floor/);
    candidate = { slower: 10, status: 200 };
    const bad = await c.deploy(request('slow', {}, { rules: { ...PLAN.rules, p99MinDeltaMs: 20 } }));
    expect(await serveUntil(c, bad.id, ['promoted', 'rolled_back'])).toBe('rolled_back');
  });

  it('ends a deployment nobody sends traffic to at its progress deadline, audited', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('idle', {}, { progressDeadlineSeconds: 30 }));
    await shifting(d.id);
    await clock.advance(29_000);
    expect((await store.deployment(d.id)).status.phase).not.toBe('aborted'); // paused (inconclusive) by now, not ended
    await clock.advance(10_000);
    const ended = await store.deployment(d.id);
    expect(ended.status).toMatchObject({ phase: 'aborted', reason: expect.stringMatching(/^progress deadline: no decisive verdict for 30 s/) });
    expect(c.routingTable()).toMatchObject({ stable: 'blue', candidateWeight: 0 });
    expect((await store.auditSince(0)).find((e) => e.eventType === 'deadline')).toMatchObject({ deploymentId: d.id, details: { action: 'abort', seconds: 30 } });
  });

  it('pauses instead when the plan says so, and an operator\'s pause stops the clock', async () => {
    const c = boot();
    await c.init();
    const held = await c.deploy(request('held', {}, { progressDeadlineSeconds: 30, progressDeadlineAction: 'abort' }));
    await shifting(held.id);
    await c.pause('operator', 'hold on');
    await clock.advance(120_000);
    expect((await store.deployment(held.id)).status).toMatchObject({ phase: 'paused', reason: 'hold on' });
    await c.abort('operator');
    const paused = await c.deploy(request('to-pause', {}, { progressDeadlineSeconds: 12, progressDeadlineAction: 'pause', stepSeconds: 60 }));
    await shifting(paused.id);
    await clock.advance(20_000);
    expect((await store.deployment(paused.id)).status).toMatchObject({ phase: 'paused', reason: expect.stringMatching(/^progress deadline/) });
    expect((await store.auditSince(0)).filter((e) => e.eventType === 'deadline')).toHaveLength(1);
  });

  it('a deadline pause resumed gets a new deadline; an operator can take a judge\'s pause over; a restart keeps who paused', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('quiet', {}, { progressDeadlineSeconds: 12, progressDeadlineAction: 'pause', stepSeconds: 60 }));
    await shifting(d.id);
    await clock.advance(20_000);
    expect((await store.deployment(d.id)).status.reason).toMatch(/^progress deadline: no decisive verdict for 12 s \(last window: 0 candidate samples < 50\); send it traffic and resume/);
    await c.resume('operator');
    await clock.advance(20_000);
    expect((await store.auditSince(0)).filter((e) => e.eventType === 'deadline')).toHaveLength(2);
    // The operator holds it now: no deadline, across a restart too.
    await c.pause('operator', 'mine now');
    c.close();
    const second = boot();
    await second.init();
    await clock.advance(120_000);
    expect((await store.deployment(d.id)).status).toMatchObject({ phase: 'paused', reason: 'mine now' });
    expect((await store.auditSince(0)).filter((e) => e.eventType === 'deadline')).toHaveLength(2);
  });

  it('a deployment the judge paused for lack of traffic still meets its deadline after a restart', async () => {
    const first = boot();
    await first.init();
    const d = await first.deploy(request('lonely', {}, { progressDeadlineSeconds: 40, stepSeconds: 10 }));
    await shifting(d.id);
    await clock.advance(15_000);
    expect((await store.deployment(d.id)).status).toMatchObject({ phase: 'paused', reason: expect.stringMatching(/^no window of step 1/) });
    first.close();
    const second = boot();
    await second.init();
    await clock.advance(60_000);
    expect((await store.deployment(d.id)).status).toMatchObject({ phase: 'aborted', reason: expect.stringMatching(/^progress deadline/) });
  });

  it('drives both colours with the plan\'s analysis load from the first step to the end, and only then', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('loaded', {}, { analysisLoad: { rate: 40, paths: ['/api/data'] } }));
    expect(loads).toEqual([]); // not while the candidate starts
    await shifting(d.id);
    expect(loads).toEqual([{ rate: 40, colors: ['blue', 'green'], stopped: false }]);
    await serveUntil(c, d.id, ['promoted', 'rolled_back']);
    expect(loads).toEqual([{ rate: 40, colors: ['blue', 'green'], stopped: true }]);
    const plain = await c.deploy(request('plain'));
    await shifting(plain.id);
    expect(loads).toHaveLength(1);
    await c.abort('operator');
    // A rollback stops it at the swap: its pinned requests would reach the candidate after it.
    candidate = { slower: 1, status: 503 };
    const bad = await c.deploy(request('loaded-bad', {}, { analysisLoad: { rate: 40, paths: ['/'] } }));
    await shifting(bad.id);
    expect(loads[1]).toMatchObject({ stopped: false });
    await serveUntil(c, bad.id, ['rolled_back']);
    expect(loads[1]).toMatchObject({ stopped: true });
    expect((await store.deployment(bad.id)).result).toMatchObject({ rollback_timing: { candidate_requests_after_swap: 0 } });
  });

  it('warms the candidate up before its first step: synthetic GETs on an idle box, until it is warm', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('warm', {}, { warmupSeconds: 30, warmupPaths: ['/api/data', '/api/items'] }));
    await clock.until('warming up', () => c.routingTable().mirror !== undefined, 10_000, 10);
    // Copies of live requests would go to the candidate; no user request does.
    expect(c.routingTable()).toMatchObject({ stable: 'blue', candidateWeight: 0, mirror: { color: 'green', share: 1, purpose: 'warmup', rolloutId: d.id } });
    await shifting(d.id);
    // 100 a second: warm after 3 s of the 30 allowed, the paths taken in turn.
    expect(mirror.totals.green.synthetic).toBeGreaterThanOrEqual(WARM_ENOUGH);
    expect(mirror.totals.green.synthetic).toBeLessThan(WARM_ENOUGH + 20);
    expect(mirror.paths.slice(0, 3)).toEqual(['/api/data', '/api/items', '/api/data']);
    expect(c.routingTable()).toMatchObject({ candidateWeight: 0.5 });
    expect(c.routingTable().mirror).toBeUndefined();
    const ready = (await store.auditSince(0)).find((e) => e.eventType === 'ready')!;
    expect(ready.details).toMatchObject({ warmup: { warm: true, mirrored: 0, failed: 0 } });
    expect((ready.details as { warmup: { ms: number } }).warmup.ms).toBeLessThan(4_000);
  });

  it('warms up on copies of live traffic when there is enough, and on synthetic GETs only with the mirror off', async () => {
    const c = boot();
    await c.init();
    const live = await c.deploy(request('live', {}, { warmupSeconds: 30 }));
    await clock.until('warming up', () => c.routingTable().mirror !== undefined, 10_000, 10);
    // 200 requests a second, every one copied: warm in 1.5 s; synthetic GETs only before the first live ones.
    await serveUntil(c, live.id, ['shifting']);
    expect(mirror.totals.green.mirrored).toBeGreaterThanOrEqual(WARM_ENOUGH - 20);
    expect(mirror.totals.green.synthetic).toBeLessThanOrEqual(20);
    await c.abort('operator');
    const before = mirror.counts('green');
    const synthetic = await c.deploy(request('no-mirror', {}, { warmupSeconds: 2, warmupMirror: false }));
    await serveUntil(c, synthetic.id, ['shifting']);
    // Copies are off: only synthetic GETs (100 a second), and its 2 s were over before it was warm.
    expect(mirror.totals.green.mirrored).toBe(before.mirrored);
    expect(mirror.totals.green.synthetic - before.synthetic).toBeGreaterThanOrEqual(180);
    const ready = (await store.auditSince(0)).find((e) => e.eventType === 'ready' && e.deploymentId === synthetic.id)!;
    expect(ready.details).toMatchObject({ warmup: { warm: false, mirrored: 0 } });
    await c.abort('operator');
    // A candidate answering 404 to every warm-up request is not warm, however many: the time runs out.
    mirror.status = 404;
    const lost = await c.deploy(request('not-found', {}, { warmupSeconds: 4 }));
    await serveUntil(c, lost.id, ['shifting']);
    const notWarm = (await store.auditSince(0)).find((e) => e.eventType === 'ready' && e.deploymentId === lost.id)!;
    expect(notWarm.details).toMatchObject({ warmup: { warm: false, ok: 0 } });
    expect((notWarm.details as { warmup: { answered: number; ms: number } }).warmup.answered).toBeGreaterThan(WARM_ENOUGH);
  });

  it('an abort during the warm-up ends it: no copies, every request on the stable colour', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('aborted-warm', {}, { warmupSeconds: 60, warmupMirror: true }));
    await clock.until('warming up', () => c.routingTable().mirror !== undefined, 10_000, 10);
    await c.abort('operator');
    expect(c.routingTable()).toEqual({ stable: 'blue', candidate: null, candidateWeight: 0, rolloutId: null });
    const sent = mirror.totals.green.synthetic;
    await clock.advance(5_000);
    expect(mirror.totals.green.synthetic).toBe(sent);
    expect((await store.deployment(d.id)).status.phase).toBe('aborted');
  });

  it('--mirror-percent: copies a share of the stable colour\'s requests to the candidate while judged, judged as its own; none after a rollback', async () => {
    const c = boot();
    await c.init();
    candidate = { slower: 1, status: 503 };
    // 5 % of the requests and no fast trip: the copies (50 % of the rest) make the windows decisive.
    const d = await c.deploy(request('copied', { steps: [5, 100] }, { mirrorPercent: 50, tripConsecutive5xx: 0 }));
    await shifting(d.id);
    expect(c.routingTable()).toMatchObject({ candidateWeight: 0.05, mirror: { color: 'green', share: 0.5, purpose: 'analysis' } });
    expect(await serveUntil(c, d.id, ['promoted', 'rolled_back'])).toBe('rolled_back');
    const verdicts = await store.verdicts(d.id);
    // Each window: 1 request in 20 by weight, 9.5 in 20 copied: far past the 50 a 5 s window needs.
    expect(verdicts[0]!.samples.candidate).toBeGreaterThan(400);
    expect(c.routingTable().mirror).toBeUndefined();
  });
});

describe('the candidate\'s worker is judged with its release', () => {
  /** `ms` of requests (serve) plus 10 jobs a second split by weight; `fails(i)` says which of the candidate's fail. */
  async function serveWithJobs(c: RolloutController, id: string, phases: string[], fails: (i: number) => boolean, maxMs = 120_000): Promise<string> {
    let n = 0;
    for (let waited = 0; waited < maxMs; waited += 500) {
      const phase = (await store.deployment(id)).status.phase;
      if (phases.includes(phase)) return phase;
      await serve(c, 500);
      const table = c.routingTable();
      for (let i = 0; i < 5; i++) {
        const toCandidate = table.candidate !== undefined && i < Math.round(table.candidateWeight * 5);
        if (toCandidate) c.recordJob({ color: table.candidate!, outcome: fails(n++) ? 'failed' : 'completed', latencyMs: 30 + (i % 5) });
        else c.recordJob({ color: table.stable, outcome: 'completed', latencyMs: 30 + (i % 5) });
      }
    }
    throw new Error(`deployment ${id} not in ${phases.join('/')} within ${maxMs} ms`);
  }

  it('rolls back a candidate whose worker fails a third of its jobs, its requests fine, and stops its worker at once', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('bad-worker', {}, { rules: { ...PLAN.rules, jobMinSamples: 10 } }));
    await shifting(d.id);
    expect(await serveWithJobs(c, d.id, ['rolled_back', 'promoted'], (i) => i % 3 === 0)).toBe('rolled_back');
    const done = await store.deployment(d.id);
    expect(done.status.reason).toMatch(/job failures 3\d\.\d% \(\d+\/\d+ attempts\) > stable 0\.0% \+ 5\.0%/);
    const verdicts = await store.verdicts(d.id);
    expect(verdicts.flatMap((v) => v.rules.filter((r) => r.verdict === 'fail').map((r) => r.rule))).toEqual(expect.arrayContaining(['job_error_rate']));
    expect(verdicts.flatMap((v) => v.rules.filter((r) => r.verdict === 'fail' && !r.rule.startsWith('job_')))).toEqual([]);
    expect(supervisor.calls).toContain('stop worker-green');
  });

  it('promotes a candidate whose worker completes its jobs; too few job outcomes hold a step instead of passing it', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('good-worker', {}, { rules: { ...PLAN.rules, jobMinSamples: 10 } }));
    await shifting(d.id);
    expect(await serveWithJobs(c, d.id, ['rolled_back', 'promoted'], () => false)).toBe('promoted');
    const verdicts = await store.verdicts(d.id);
    expect(verdicts.some((v) => v.rules.some((r) => r.rule === 'job_error_rate' && r.verdict === 'pass'))).toBe(true);
    expect(supervisor.calls).not.toContain('stop worker-green');
    // With far more outcomes needed than a step brings, no step passes on its requests alone: it
    // waits while a progress deadline bounds the wait, and the deadline ends it.
    const held = await c.deploy(request('few-jobs', {}, { progressDeadlineSeconds: 40, rules: { ...PLAN.rules, jobMinSamples: 100_000 } }));
    await shifting(held.id);
    await serveWithJobs(c, held.id, ['promoted', 'aborted'], () => false, 30_000).catch(() => 'neither');
    expect((await store.deployment(held.id)).status.phase).toBe('shifting');
    expect(await serveWithJobs(c, held.id, ['promoted', 'aborted'], () => false, 30_000)).toBe('aborted');
    const insufficient = (await store.verdicts(held.id)).filter((v) => v.verdict === 'insufficient');
    expect(insufficient.length).toBeGreaterThan(0);
    expect(insufficient[0]!.rules.find((r) => r.rule === 'job_error_rate')?.message).toMatch(/candidate job outcomes < 100000/);
    // Without a deadline, the operator decides: the step pauses, saying what it lacked.
    const paused = await c.deploy(request('few-jobs-2', {}, { rules: { ...PLAN.rules, jobMinSamples: 100_000 } }));
    await shifting(paused.id);
    expect(await serveWithJobs(c, paused.id, ['paused', 'promoted'], () => false, 30_000)).toBe('paused');
    expect((await store.deployment(paused.id)).status.reason).toBe('no window of step 1 had 100000 job outcomes of the candidate\'s worker; resume, promote or roll back');
  });

  it('jobs failing on both workers alike (input the app refuses, which anyone may send) neither trip nor fail a window', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('flooded', {}, { tripConsecutiveJobFailures: 3, sequential: true, rules: { ...PLAN.rules, jobMinSamples: 10 } }));
    await shifting(d.id);
    // Every job fails, on whichever worker runs it.
    let n = 0;
    for (let waited = 0; waited < 60_000 && (await store.deployment(d.id)).status.phase === 'shifting'; waited += 500) {
      await serve(c, 500);
      const table = c.routingTable();
      for (let i = 0; i < 5; i++) c.recordJob({ color: table.candidate && n++ % 2 === 0 ? table.candidate : table.stable, outcome: 'failed', latencyMs: 30 });
    }
    expect((await store.deployment(d.id)).status.phase).toBe('promoted');
  });

  it('a release rolled back (its worker stopped, its API kept for inspection) deployed again is started afresh, not reused without a worker', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('again', {}, { rules: { ...PLAN.rules, jobMinSamples: 10 } }));
    await shifting(d.id);
    expect(await serveWithJobs(c, d.id, ['rolled_back', 'promoted'], (i) => i % 2 === 0)).toBe('rolled_back');
    expect(supervisor.colours.green).toMatchObject({ running: true, worker: { running: false } });
    supervisor.calls.length = 0;
    const second = await c.deploy(request('again'));
    await shifting(second.id);
    expect(supervisor.calls).toEqual(expect.arrayContaining(['stop green', 'start green again']));
    expect(supervisor.colours.green.worker).toEqual({ running: true, restarts: 0 });
  });

  it('trips at once on a run of failed job attempts, and on a crash of the candidate\'s worker', async () => {
    const c = boot();
    await c.init();
    const d = await c.deploy(request('failing-worker', {}, { tripConsecutiveJobFailures: 4, stepSeconds: 60 }));
    await shifting(d.id);
    expect(await serveWithJobs(c, d.id, ['rolled_back', 'promoted'], () => true, 5_000)).toBe('rolled_back');
    expect((await store.deployment(d.id)).status.reason).toMatch(/^fast trip: \d+ job attempts in a row failed on the candidate's worker \(the stable worker's last \d+ completed\)/);

    const crashy = await c.deploy(request('crashy-worker', {}, { stepSeconds: 60 }));
    await shifting(crashy.id);
    await serve(c, 1_000);
    supervisor.colours.green.worker!.restarts++;
    expect(await serveUntil(c, crashy.id, ['rolled_back', 'promoted'], 3_000)).toBe('rolled_back');
    expect((await store.deployment(crashy.id)).status.reason).toMatch(/worker-green crashed: pm2 restarted it \(1 restart since/);
  });
});
