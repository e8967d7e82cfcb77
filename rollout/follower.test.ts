// A fleet instance that follows: the deployment's row in the in-memory store held to the Postgres
// store's contract, the colours' processes faked (test/helpers/fake-supervisor.ts, the only mock),
// the real Colours and Traffic. What it routes, starts and says, row state by row state.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../lib/logger.js';
import { FakeSupervisor } from '../test/helpers/fake-supervisor.js';
import { MemoryRolloutStore } from '../test/helpers/memory-rollout-store.js';
import { Colours } from './colours.js';
import { Follower, type FollowerTrip } from './follower.js';
import type { Deployment, Plan } from './model.js';
import { systemClock } from './ports.js';
import { initialStatus, transition, type DeploymentEvent } from './state-machine.js';
import { Traffic } from './traffic.js';

const PLAN: Plan = {
  stepSeconds: 10, windowSeconds: 5, rules: { p99Ratio: 1.5, maxErrorRate: 0.05, minSamples: 50, failuresToRollback: 2 },
  keepWarmSeconds: 60, inspectSeconds: 120, previewSeconds: 0, tripConsecutive5xx: 3, sequential: false,
};
const log = createLogger('test', { level: 'silent' });

/** Postgres that stops answering on demand. */
class FlakyStore extends MemoryRolloutStore {
  down = false;
  override async runningDeployment(): Promise<Deployment | null> {
    if (this.down) throw new Error('connection terminated unexpectedly');
    return super.runningDeployment();
  }
}

let dir: string;
let store: FlakyStore;
let supervisor: FakeSupervisor;
let traffic: Traffic;
let follower: Follower;
let unjudged: string | null;
let trips: FollowerTrip[];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'changelens-follower-'));
  store = new FlakyStore();
  supervisor = new FakeSupervisor();
  await store.ensureInitialRelease({ version: 'v1', artifact: 'builtin', env: {}, createdBy: 'test' }, 'blue');
  unjudged = null;
  trips = [];
  follower = boot({ version: 'v1', color: 'blue' });
});

afterEach(async () => {
  await follower.stop();
  rmSync(dir, { recursive: true, force: true });
});

function boot(serving: { version: string; color: 'blue' | 'green' }): Follower {
  traffic = new Traffic(join(dir, 'routing.json'), serving.color);
  const colours = new Colours({ supervisor, store, clock: systemClock, log, gauges: undefined, releasesDir: dir, releasesKeep: 3, inUse: () => true, running: () => undefined });
  colours.serve(serving.color, serving.version);
  const f = new Follower({ store, supervisor, colours, traffic, log, active: serving, changed: () => {}, trip: (t) => trips.push(t), unjudged: () => unjudged });
  f.start();
  return f;
}

/** A deployment of `version` (a new release), moved through `events` as a controller would. */
async function deployment(version: string, events: DeploymentEvent['type'][], promote = false): Promise<Deployment> {
  await store.putRelease({ version, artifact: 'builtin', env: {}, createdBy: 'test' });
  const { active } = await store.pointers();
  const d = await store.createDeployment({
    id: `dep-${version}`, version, strategy: 'canary', stableVersion: active!.version, stableColor: active!.color,
    candidateColor: active!.color === 'blue' ? 'green' : 'blue', status: initialStatus([50, 100]), plan: PLAN, actor: 'test',
  });
  return advance(d, events, promote);
}

async function advance(d: Deployment, events: DeploymentEvent['type'][], promote = false): Promise<Deployment> {
  for (const type of events) {
    const next = transition(d.status, { type } as DeploymentEvent);
    const last = type === events.at(-1);
    await store.saveStatus(d.id, d.status, next, promote && last ? { promoteTo: { version: d.version, color: d.candidateColor } } : {});
    d = { ...d, status: next };
  }
  return d;
}

const weight = (): number => traffic.current().candidateWeight;

describe('a following instance', () => {
  it('starts the candidate, says when it is ready, and gives it the step\'s weight only once the row is at that step', async () => {
    const d = await deployment('v2', ['started']);
    await vi.waitFor(() => expect(follower.following()).toMatchObject({ id: d.id, ready: true, failed: null }));
    expect(supervisor.calls).toEqual(['stop green', 'start green v2']);
    await follower.sync();
    expect(traffic.current()).toMatchObject({ stable: 'blue', candidateWeight: 0 });
    const shifting = await advance(d, ['ready']);
    await follower.sync();
    expect(traffic.current()).toMatchObject({ stable: 'blue', candidate: 'green', candidateWeight: 0.5, rolloutId: d.id });
    expect(follower.following()!.revision).toBe(shifting.status.revision);
  });

  it('joining while its own appliance still boots: the supervisor\'s refusal is waited out, not reported as a candidate that could not start', async () => {
    supervisor.booting = true;
    const d = await deployment('v2', ['started', 'ready']);
    await follower.sync();
    // Refused more than once (every 250 ms) and still not failed: the controller would roll the fleet back on a failure.
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(follower.following()).toMatchObject({ id: d.id, ready: false, failed: null });
    expect(weight()).toBe(0);
    supervisor.booting = false;
    await vi.waitFor(() => expect(follower.following()).toMatchObject({ id: d.id, ready: true, failed: null }));
    expect(supervisor.calls).toEqual(['stop green', 'start green v2']);
    await vi.waitFor(async () => { await follower.sync(); expect(weight()).toBe(0.5); });
  });

  it('a start the supervisor refuses for another reason is reported as failed, once', async () => {
    supervisor.failStart = 'api-green did not become ready within 60000 ms';
    const d = await deployment('v2', ['started', 'ready']);
    await vi.waitFor(() => expect(follower.following()).toMatchObject({ id: d.id, ready: false, failed: 'api-green did not become ready within 60000 ms' }));
    expect(supervisor.calls.filter((c) => c.startsWith('start'))).toEqual(['start green v2']);
    expect(weight()).toBe(0);
  });

  it('routes to the stable colour only while nobody would judge its candidate traffic, and says why', async () => {
    const d = await deployment('v2', ['started', 'ready']);
    await vi.waitFor(async () => { await follower.sync(); expect(weight()).toBe(0.5); });
    unjudged = 'no controller renews the lease';
    await follower.sync();
    expect(weight()).toBe(0);
    expect(follower.why()).toBe('no controller renews the lease');
    unjudged = null;
    await follower.sync();
    expect(weight()).toBe(0.5);
    expect(supervisor.calls).not.toContain('stop worker-green'); // not for good: its worker runs on
    expect(d.status.phase).toBe('shifting');
  });

  it('routes to the stable colour only while Postgres does not answer, and follows again when it does', async () => {
    await deployment('v2', ['started', 'ready']);
    await vi.waitFor(async () => { await follower.sync(); expect(weight()).toBe(0.5); });
    store.down = true;
    await follower.sync();
    expect(traffic.current()).toMatchObject({ stable: 'blue', candidateWeight: 0 });
    expect(follower.why()).toMatch(/^Postgres unreachable/);
    store.down = false;
    await follower.sync();
    expect(weight()).toBe(0.5);
    expect(follower.why()).toBeNull();
  });

  it('a run of 5xx from its candidate: stable here for good, its worker stopped, the controller told once', async () => {
    const d = await deployment('v2', ['started', 'ready']);
    await vi.waitFor(async () => { await follower.sync(); expect(weight()).toBe(0.5); });
    for (let i = 0; i < 5; i++) follower.observe('green', 503);
    expect(trips).toEqual([{ deploymentId: d.id, rule: 'consecutive_5xx', observed: 3, threshold: 3, message: '3 5xx in a row from the candidate' }]);
    expect(weight()).toBe(0);
    await follower.sync();
    expect(weight()).toBe(0);
    await vi.waitFor(() => expect(supervisor.calls).toContain('stop worker-green'));
  });

  it('the controller\'s word takes the candidate out of its traffic before the row says so', async () => {
    const d = await deployment('v2', ['started', 'ready']);
    await vi.waitFor(async () => { await follower.sync(); expect(weight()).toBe(0.5); });
    follower.stableNow('dep-other');
    expect(weight()).toBe(0.5);
    follower.stableNow(d.id, Date.now());
    expect(weight()).toBe(0);
    await follower.sync();
    expect(weight()).toBe(0);
  });

  it('follows a promotion: the candidate\'s colour serves everything, and the routing snapshot says so', async () => {
    const d = await deployment('v2', ['started', 'ready']);
    await vi.waitFor(async () => { await follower.sync(); expect(weight()).toBe(0.5); });
    await advance(d, ['promote'], true);
    await vi.waitFor(async () => {
      await follower.sync();
      expect(follower.serving()).toEqual({ version: 'v2', color: 'green' });
    });
    expect(traffic.current()).toMatchObject({ stable: 'green', candidateWeight: 0 });
    expect(JSON.parse(readFileSync(join(dir, 'routing.json'), 'utf8'))).toMatchObject({ activeColor: 'green', release: { version: 'v2' } });
    // The colour already ran it: no restart.
    expect(supervisor.calls.filter((c) => c.startsWith('start'))).toEqual(['start green v2']);
  });

  it('an instance that missed a promotion starts the fleet\'s active release first, and routes to what it runs until then', async () => {
    const d = await deployment('v2', ['started', 'ready']);
    await advance(d, ['promote'], true);
    await follower.stop();
    // Booted from its own snapshot (blue v1), while the fleet runs v2 on green.
    supervisor.colours.green = { running: false, online: false, restarts: 0, ready: false, release: null, worker: { running: false, restarts: 0 } };
    supervisor.calls.length = 0;
    rmSync(join(dir, 'routing.json'), { force: true });
    follower = boot({ version: 'v1', color: 'blue' });
    expect(traffic.current().stable).toBe('blue');
    await vi.waitFor(() => expect(follower.serving()).toEqual({ version: 'v2', color: 'green' }));
    expect(supervisor.calls).toEqual(['stop green', 'start green v2']);
    expect(traffic.current()).toMatchObject({ stable: 'green', candidateWeight: 0 });
    expect(existsSync(join(dir, 'routing.json'))).toBe(true);
  });

  it('acts on no deployment it does not follow: before it runs the fleet\'s stable release, a 5xx run or a rollback word is not its to act on', async () => {
    const d = await deployment('v2', ['started', 'ready']);
    await advance(d, ['promote'], true);
    const d3 = await deployment('v3', ['started', 'ready']); // on blue, v2 on green stable
    await follower.stop();
    // Booted from an old snapshot and cannot start green yet (its start fails): it serves blue, follows nothing.
    supervisor.colours.green = { running: false, online: false, restarts: 0, ready: false, release: null, worker: { running: false, restarts: 0 } };
    supervisor.failStart = 'no room';
    supervisor.calls.length = 0;
    follower = boot({ version: 'v1', color: 'blue' });
    await follower.sync();
    for (let i = 0; i < 5; i++) follower.observe('blue', 503);
    follower.stableNow(d3.id, Date.now());
    expect(trips).toEqual([]);
    expect(follower.following()).toBeNull();
    expect(traffic.current()).toMatchObject({ stable: 'blue', candidateWeight: 0 });
    expect(supervisor.calls).not.toContain('stop worker-blue');
  });

  it('after this instance drove, it follows afresh: what it ended then is not ended again here', async () => {
    const d = await deployment('v2', ['started', 'ready']);
    await vi.waitFor(async () => { await follower.sync(); expect(weight()).toBe(0.5); });
    await follower.stop();
    // It drove meanwhile: rolled v2 back, then a new deployment started on the same candidate colour.
    await advance(d, ['rollback', 'rolled_back']);
    const d3 = await deployment('v3', ['started', 'ready']);
    supervisor.calls.length = 0;
    follower.reset({ version: 'v1', color: 'blue' });
    follower.start();
    await vi.waitFor(async () => { await follower.sync(); expect(traffic.current()).toMatchObject({ rolloutId: d3.id, candidateWeight: 0.5 }); });
    expect(supervisor.calls).not.toContain('stop worker-green');
  });
});
