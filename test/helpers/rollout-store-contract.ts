// What every RolloutStore (rollout/ports.ts) must do, as one suite: PgRolloutStore runs it against
// a real Postgres, MemoryRolloutStore in memory (rollout/store.test.ts), so the reconciler's test
// stands on a store that behaves as production's does.
import { beforeEach, describe, expect, it } from 'vitest';
import { CL_ERR_DEPLOYMENT_RUNNING, CL_ERR_NOT_FOUND, CL_ERR_RELEASE_CONFLICT, ChangeLensError } from '../../lib/errors.js';
import type { Deployment, Plan } from '../../rollout/model.js';
import type { RolloutStore } from '../../rollout/ports.js';
import { initialStatus, transition } from '../../rollout/state-machine.js';

const PLAN: Plan = {
  stepSeconds: 10, windowSeconds: 5, rules: { p99Ratio: 1.5, maxErrorRate: 0.05, minSamples: 50, failuresToRollback: 2 },
  keepWarmSeconds: 60, inspectSeconds: 60, previewSeconds: 0, tripConsecutive5xx: 5, sequential: false,
};

let n = 0;
const newDeployment = (version: string): Omit<Deployment, 'startedAt' | 'updatedAt' | 'finishedAt' | 'result'> => ({
  id: `dep-contract-${++n}-${Date.now()}`, version, strategy: 'canary', stableVersion: 'v1', stableColor: 'blue', candidateColor: 'green',
  status: initialStatus([50, 100]), plan: PLAN, actor: 'test',
});

/** `fresh` gives an empty store for each test. */
export function rolloutStoreContract(name: string, fresh: () => Promise<RolloutStore>): void {
  describe(`RolloutStore contract: ${name}`, () => {
    let store: RolloutStore;
    beforeEach(async () => {
      store = await fresh();
    });

    it('keeps a release immutable: the same one again is returned, a different artifact or env conflicts', async () => {
      const first = await store.putRelease({ version: 'v2', artifact: 'builtin', env: { A: '1', B: '2' }, createdBy: 'ci' });
      expect(first).toMatchObject({ version: 'v2', artifact: 'builtin', env: { A: '1', B: '2' }, createdBy: 'ci' });
      expect(Date.parse(first.createdAt)).not.toBeNaN();
      expect(await store.putRelease({ version: 'v2', artifact: 'builtin', env: { B: '2', A: '1' }, createdBy: 'someone else' })).toEqual(first);
      await expect(store.putRelease({ version: 'v2', artifact: '/data/releases/v2', env: { A: '1', B: '2' }, createdBy: 'ci' })).rejects.toBeInstanceOf(CL_ERR_RELEASE_CONFLICT);
      await expect(store.putRelease({ version: 'v2', artifact: 'builtin', env: { A: '1' }, createdBy: 'ci' })).rejects.toBeInstanceOf(CL_ERR_RELEASE_CONFLICT);
      expect(await store.release('v2')).toEqual(first);
      expect(await store.release('v3')).toBeNull();
    });

    it('sets the pointers on first boot only, and lists releases newest first with them', async () => {
      expect(await store.pointers()).toEqual({ active: null, lastGood: null });
      await store.ensureInitialRelease({ version: 'v1', artifact: 'builtin', env: {}, createdBy: 'appliance' }, 'blue');
      await store.ensureInitialRelease({ version: 'other', artifact: 'builtin', env: {}, createdBy: 'appliance' }, 'green');
      expect(await store.pointers()).toEqual({ active: { version: 'v1', color: 'blue' }, lastGood: { version: 'v1', color: 'blue' } });
      expect(await store.release('other')).toBeNull();
      await store.putRelease({ version: 'v2', artifact: 'builtin', env: {}, createdBy: 'ci' });
      expect((await store.releases()).map((r) => [r.version, r.active, r.lastGood])).toEqual([['v2', false, false], ['v1', true, true]]);
    });

    it('runs one deployment at a time and moves it only by compare-and-swap', async () => {
      await store.ensureInitialRelease({ version: 'v1', artifact: 'builtin', env: {}, createdBy: 'appliance' }, 'blue');
      await store.putRelease({ version: 'v2', artifact: 'builtin', env: {}, createdBy: 'ci' });
      const planned = { ...newDeployment('v2'), plan: { ...PLAN, rules: { ...PLAN.rules, maxP99Ms: 250.5, metrics: [{ name: 'recall', op: '>=' as const, threshold: 0.3 }] } } };
      const d = await store.createDeployment(planned);
      expect(d).toMatchObject({ version: 'v2', finishedAt: null, result: null, status: { phase: 'starting', revision: 0 } });
      // What a restarted proxy reads back to take a deployment over: every field as it was given.
      const running = await store.runningDeployment();
      expect(running).toEqual({ ...planned, startedAt: d.startedAt, updatedAt: d.updatedAt, finishedAt: null, result: null });
      expect(Date.parse(d.startedAt)).not.toBeNaN();
      await expect(store.createDeployment(newDeployment('v2'))).rejects.toBeInstanceOf(CL_ERR_DEPLOYMENT_RUNNING);

      const warming = transition(d.status, { type: 'started' });
      await store.saveStatus(d.id, d.status, warming);
      // A second writer still holding revision 0 is refused, and changes nothing.
      const stale = store.saveStatus(d.id, d.status, transition(d.status, { type: 'abort', reason: 'late' }));
      await expect(stale).rejects.toBeInstanceOf(ChangeLensError);
      await expect(stale).rejects.toMatchObject({ code: 'CL_ERR_ROLLOUT_BAD_TRANSITION' });
      expect((await store.deployment(d.id)).status).toEqual(warming);

      const shifting = transition(warming, { type: 'ready' });
      await store.saveStatus(d.id, warming, shifting, { result: { note: 'kept' } });
      const paused = transition(shifting, { type: 'pause', reason: 'look' });
      await store.saveStatus(d.id, shifting, paused);
      expect((await store.deployment(d.id)).result).toEqual({ note: 'kept' }); // a save without a result keeps it
      await store.saveStatus(d.id, paused, transition(paused, { type: 'resume' }));
      const promoted = transition(transition(paused, { type: 'resume' }), { type: 'promote' });
      await store.saveStatus(d.id, transition(paused, { type: 'resume' }), promoted, { promoteTo: { version: 'v2', color: 'green' }, result: { status: 'promoted' } });
      const done = await store.deployment(d.id);
      expect(done).toMatchObject({ status: promoted, result: { status: 'promoted' } });
      expect(done.finishedAt).not.toBeNull();
      expect(await store.pointers()).toEqual({ active: { version: 'v2', color: 'green' }, lastGood: { version: 'v2', color: 'green' } });
      expect(await store.runningDeployment()).toBeNull();

      const next = await store.createDeployment(newDeployment('v2'));
      // Rolled back in one write (through rolling_back), then its result replaced once its timing settled.
      const rolledBack = transition(transition(next.status, { type: 'started' }), { type: 'ready' });
      await store.saveStatus(next.id, next.status, rolledBack);
      const end = transition(transition(rolledBack, { type: 'rollback', reason: 'p99' }), { type: 'rolled_back' });
      await store.saveStatus(next.id, rolledBack, end, { result: { settled: false } });
      await store.saveResult(next.id, { settled: true });
      const ended = await store.deployment(next.id);
      expect(ended).toMatchObject({ status: { phase: 'rolled_back', reason: 'p99', revision: 4 }, result: { settled: true } });
      expect(ended.finishedAt).not.toBeNull();
      expect(await store.runningDeployment()).toBeNull();
      expect((await store.deployments(10)).map((x) => x.id)).toEqual([next.id, d.id]);
      expect((await store.deployments(1)).map((x) => x.id)).toEqual([next.id]);
      await expect(store.deployment('dep-missing')).rejects.toBeInstanceOf(CL_ERR_NOT_FOUND);
    });

    it('keeps verdicts in seq order and buckets once per colour and start', async () => {
      await store.ensureInitialRelease({ version: 'v1', artifact: 'builtin', env: {}, createdBy: 'appliance' }, 'blue');
      await store.putRelease({ version: 'v2', artifact: 'builtin', env: {}, createdBy: 'ci' });
      const d = await store.createDeployment(newDeployment('v2'));
      const verdict = (seq: number, verdict: 'pass' | 'fail') => ({
        seq, stepIndex: 0, weight: 0.5, verdict, explanation: `window ${seq}`,
        window: { startMs: 1_700_000_000_000 + seq * 5000, endMs: 1_700_000_005_000 + seq * 5000 },
        samples: { candidate: 120, stable: 118 }, rules: [{ rule: 'p99_ratio' as const, verdict, observed: 1.2, threshold: 1.5, message: 'p99 ok' }],
      });
      await store.addVerdict(d.id, verdict(2, 'fail'));
      await store.addVerdict(d.id, verdict(1, 'pass'));
      await expect(store.addVerdict(d.id, verdict(1, 'fail'))).rejects.toThrow();
      const stored = await store.verdicts(d.id);
      expect(stored.map((v) => [v.seq, v.verdict])).toEqual([[1, 'pass'], [2, 'fail']]);
      expect(stored[0]).toMatchObject(verdict(1, 'pass'));
      expect(Date.parse(stored[0]!.at)).not.toBeNaN();

      const bucket = (color: 'blue' | 'green', startMs: number, count: number) => ({ color, startMs, durationSec: 5, count, errors: 1, p50Ms: 4, p95Ms: 9, p99Ms: 12.5, violations: 0 });
      await store.addBuckets(d.id, [bucket('green', 1_700_000_005_000, 10), bucket('blue', 1_700_000_005_000, 20), bucket('green', 1_700_000_000_000, 30)]);
      await store.addBuckets(d.id, [bucket('green', 1_700_000_005_000, 99)]);
      await store.addBuckets(d.id, []);
      expect((await store.buckets(d.id)).map((b) => [b.color, b.startMs, b.count])).toEqual([
        ['green', 1_700_000_000_000, 30], ['blue', 1_700_000_005_000, 20], ['green', 1_700_000_005_000, 10],
      ]);
      expect((await store.buckets(d.id))[0]).toEqual(bucket('green', 1_700_000_000_000, 30));
      expect(await store.verdicts('dep-none')).toEqual([]);
    });

    it('writes the audit log and reads it back newest first', async () => {
      const since = Date.now() - 60_000;
      const a = await store.audit({ eventType: 'deploy', deploymentId: null, actor: 'ci', version: 'v2', details: { steps: [50, 100] }, success: true, error: null });
      await store.audit({ eventType: 'rollback', deploymentId: null, actor: 'controller', version: 'v2', details: {}, success: false, error: 'boom' });
      expect(a).toMatchObject({ eventType: 'deploy', actor: 'ci', details: { steps: [50, 100] } });
      expect(a.eventId).toMatch(/^audit-/);
      const events = await store.auditSince(since);
      expect(events.map((e) => e.eventType)).toEqual(['rollback', 'deploy']);
      expect(await store.auditSince(since, 1)).toHaveLength(1);
    });
  });
}
