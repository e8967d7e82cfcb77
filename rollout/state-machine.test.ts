import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChangeLensError } from '../lib/errors.js';
import { atGate, candidateWeight, GATE, initialStatus, isTerminal, transition, type DeploymentEvent, type DeploymentStatus } from './state-machine.js';

const eventArb: fc.Arbitrary<DeploymentEvent> = fc.oneof(
  fc.constant({ type: 'started' } as const), fc.constant({ type: 'ready' } as const), fc.constant({ type: 'step_passed' } as const),
  fc.constant({ type: 'resume' } as const), fc.constant({ type: 'promote' } as const), fc.constant({ type: 'rolled_back' } as const),
  fc.constant({ type: 'not_ready', reason: 'readyz 503' } as const), fc.constant({ type: 'inconclusive', reason: 'few samples' } as const),
  fc.constant({ type: 'verdict_failed', reason: 'p99 3.1× stable' } as const), fc.constant({ type: 'pause', reason: 'operator' } as const),
  fc.constant({ type: 'rollback', reason: 'operator' } as const), fc.constant({ type: 'abort', reason: 'operator' } as const),
  fc.constant({ type: 'advance' } as const), fc.constant({ type: 'gate', reason: `${GATE} before the next step` } as const), fc.constant({ type: 'approve' } as const),
);
const stepsArb = fc.uniqueArray(fc.integer({ min: 1, max: 99 }), { maxLength: 5 }).map((s) => [...s.sort((a, b) => a - b), 100]);

describe('deployment state machine', () => {
  it('every event is either a legal transition (revision +1) or refused with a coded error, leaving the status as it was', () => {
    fc.assert(fc.property(stepsArb, fc.array(eventArb, { maxLength: 40 }), (steps, events) => {
      let status: DeploymentStatus = initialStatus(steps);
      for (const event of events) {
        const before = status;
        try {
          status = transition(status, event);
          expect(status.revision).toBe(before.revision + 1);
          expect(isTerminal(before.phase)).toBe(false);
        } catch (err) {
          expect(err).toBeInstanceOf(ChangeLensError);
          expect((err as ChangeLensError).code).toBe('CL_ERR_ROLLOUT_BAD_TRANSITION');
          expect(status).toBe(before);
        }
        const w = candidateWeight(status);
        expect(w).toBeGreaterThanOrEqual(0);
        expect(w).toBeLessThanOrEqual(1);
        // A candidate that failed its verdict, was rolled back or aborted gets no traffic.
        if (['rolling_back', 'rolled_back', 'aborted', 'failed'].includes(status.phase)) expect(w).toBe(0);
        // Held at a gate: never the held step's weight, and never more than before the gate.
        if (atGate(status)) expect(w).toBeLessThan(status.steps[status.stepIndex]! / 100);
        if (atGate(before) && !atGate(status) && status.phase === 'shifting') expect(status.stepIndex).toBe(before.stepIndex);
      }
    }));
  });

  it('walking the steps moves the weight up step by step and promotes after the last', () => {
    let s = transition(transition(initialStatus([5, 25, 50, 100]), { type: 'started' }), { type: 'ready' });
    const weights = [candidateWeight(s)];
    while (s.phase === 'shifting') {
      s = transition(s, { type: 'step_passed' });
      weights.push(candidateWeight(s));
    }
    expect(weights).toEqual([0.05, 0.25, 0.5, 1, 1]);
    expect(s.phase).toBe('promoted');
  });

  it('a failed verdict rolls back and keeps its reason; a paused one resumes at its step', () => {
    const shifting = transition(transition(transition(initialStatus([10, 100]), { type: 'started' }), { type: 'ready' }), { type: 'step_passed' });
    const failed = transition(shifting, { type: 'verdict_failed', reason: 'error rate 9% > 5%' });
    expect(failed).toMatchObject({ phase: 'rolling_back', reason: 'error rate 9% > 5%' });
    expect(transition(failed, { type: 'rolled_back' })).toMatchObject({ phase: 'rolled_back', reason: 'error rate 9% > 5%' });
    const paused = transition(shifting, { type: 'inconclusive', reason: 'few samples' });
    expect(transition(paused, { type: 'resume' })).toMatchObject({ phase: 'shifting', stepIndex: 1, reason: null });
    expect(() => transition(transition(paused, { type: 'promote' }), { type: 'resume' })).toThrow('cannot take "resume"');
  });

  it('a gate holds at the step before\'s weight (none before the first), refuses pause, resume and advance, and its approval enters the held step', () => {
    const warming = transition(initialStatus([10, 50, 100]), { type: 'started' });
    const first = transition(warming, { type: 'gate', reason: `${GATE} before step 1` });
    expect([first.phase, first.stepIndex, candidateWeight(first)]).toEqual(['paused', 0, 0]);
    for (const type of ['pause', 'resume', 'advance'] as const) {
      expect(() => transition(first, type === 'pause' ? { type, reason: 'mine' } : { type })).toThrow(/at a gate/);
    }
    const shifting = transition(first, { type: 'approve' });
    expect([shifting.phase, shifting.stepIndex, shifting.reason, candidateWeight(shifting)]).toEqual(['shifting', 0, null, 0.1]);
    expect(() => transition(shifting, { type: 'approve' })).toThrow(ChangeLensError);
    const second = transition(shifting, { type: 'gate', reason: `${GATE} before step 2` });
    expect([second.phase, second.stepIndex, candidateWeight(second)]).toEqual(['paused', 1, 0.1]);
    // A failing verdict still rolls a held deployment back; a promotion still ends it.
    expect(transition(second, { type: 'verdict_failed', reason: 'errors' }).phase).toBe('rolling_back');
    expect(transition(second, { type: 'promote' }).phase).toBe('promoted');
    // An operator's pause is not a gate: approve is refused there.
    expect(() => transition(transition(shifting, { type: 'pause', reason: 'hold on' }), { type: 'approve' })).toThrow(ChangeLensError);
  });

  it('refuses steps that do not rise to 100', () => {
    for (const steps of [[], [5, 25], [50, 25, 100], [0, 100], [5, 5, 100], [5, 101]]) expect(() => initialStatus(steps), JSON.stringify(steps)).toThrow('steps');
  });
});
