// The one place that lists a deployment's phases and the transitions between them, as data, with
// a pure `transition` that returns the next status or throws. The reconciler persists
// what this returns; nothing else changes a deployment's phase.
import { CL_ERR_ROLLOUT_BAD_TRANSITION } from '../lib/errors.js';
import { isTerminal, type Phase } from '../lib/contracts/phases.js';

export { isTerminal, type Phase };

export type DeploymentEvent =
  | { type: 'started' }
  | { type: 'ready' }
  | { type: 'not_ready'; reason: string }
  | { type: 'step_passed' }
  /** An operator moves the deployment to its next step (not the last: that is a promotion). */
  | { type: 'advance' }
  | { type: 'inconclusive'; reason: string }
  | { type: 'verdict_failed'; reason: string }
  | { type: 'pause'; reason: string }
  | { type: 'resume' }
  | { type: 'promote' }
  | { type: 'rollback'; reason: string }
  | { type: 'rolled_back' }
  | { type: 'abort'; reason: string };

export interface DeploymentStatus {
  phase: Phase;
  /** Index into the strategy's steps (weights), while shifting or paused. */
  stepIndex: number;
  steps: readonly number[];
  /** Why it paused, rolled back, aborted or failed. */
  reason: string | null;
  /** Incremented on every transition: the compare-and-swap version of the persisted row. */
  revision: number;
}

/** Allowed transitions: phase → event type → next phase (or a function of the status). */
const TRANSITIONS: Record<Phase, Partial<Record<DeploymentEvent['type'], Phase>>> = {
  starting: { started: 'warming', not_ready: 'failed', abort: 'aborted' },
  warming: { ready: 'shifting', not_ready: 'failed', abort: 'aborted' },
  shifting: { step_passed: 'shifting', advance: 'shifting', inconclusive: 'paused', verdict_failed: 'rolling_back', pause: 'paused', promote: 'promoted', rollback: 'rolling_back', abort: 'aborted' },
  // pause again: an operator takes over a pause the judge or the progress deadline made (its reason now theirs).
  paused: { resume: 'shifting', advance: 'shifting', pause: 'paused', promote: 'promoted', rollback: 'rolling_back', abort: 'aborted', verdict_failed: 'rolling_back' },
  rolling_back: { rolled_back: 'rolled_back' },
  promoted: {},
  rolled_back: {},
  aborted: {},
  failed: {},
};

export function initialStatus(steps: readonly number[]): DeploymentStatus {
  if (steps.length === 0 || steps.some((w, i) => !(w > 0 && w <= 100) || (i > 0 && w <= steps[i - 1]!)) || steps.at(-1) !== 100) {
    throw new Error(`steps: expected increasing percentages in (0, 100] ending at 100, got ${JSON.stringify(steps)}`);
  }
  return { phase: 'starting', stepIndex: 0, steps, reason: null, revision: 0 };
}

export function transition(status: DeploymentStatus, event: DeploymentEvent): DeploymentStatus {
  let next = TRANSITIONS[status.phase][event.type];
  if (next === undefined) throw new CL_ERR_ROLLOUT_BAD_TRANSITION(status.phase, event.type, Object.keys(TRANSITIONS[status.phase]).join(', ') || 'nothing: it is finished');
  let stepIndex = status.stepIndex;
  if (event.type === 'step_passed') {
    // The last step passing promotes; any other moves to the next weight.
    if (stepIndex >= status.steps.length - 1) next = 'promoted';
    else stepIndex++;
  }
  if (event.type === 'advance') {
    if (stepIndex >= status.steps.length - 1) throw new CL_ERR_ROLLOUT_BAD_TRANSITION(status.phase, event.type, 'promote: it is at its last step');
    stepIndex++;
  }
  const reason = 'reason' in event ? event.reason : next === 'shifting' ? null : status.reason;
  return { ...status, phase: next, stepIndex, reason, revision: status.revision + 1 };
}

/** The candidate's traffic share (0-1) a status implies: derived, never stored. */
export function candidateWeight(status: DeploymentStatus): number {
  switch (status.phase) {
    case 'shifting':
    case 'paused':
      return status.steps[status.stepIndex]! / 100;
    case 'promoted':
      return 1;
    default:
      return 0;
  }
}
