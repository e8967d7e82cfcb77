// The one place that lists a deployment's phases and the transitions between them, as data, with
// a pure `transition` that returns the next status or throws. The reconciler persists
// what this returns; nothing else changes a deployment's phase.
import { CL_ERR_ROLLOUT_BAD_TRANSITION } from '../lib/errors.js';
import { isTerminal, type Phase } from '../lib/contracts/phases.js';

export { isTerminal, type Phase };

/** How a gate's pause reason begins; what tells a gate from any other pause, also after a restart. */
export const GATE = 'waiting for approval';
export const atGate = (status: DeploymentStatus): boolean => status.phase === 'paused' && (status.reason ?? '').startsWith(GATE);

export type DeploymentEvent =
  | { type: 'started' }
  | { type: 'ready' }
  | { type: 'not_ready'; reason: string }
  | { type: 'step_passed' }
  /** An operator moves the deployment to its next step (not the last: that is a promotion). */
  | { type: 'advance' }
  /**
   * A gate: the next step (the first, from warming) waits for approval. It holds paused at that
   * step's index with a reason starting GATE, at the weight of the step before (0 before the first).
   */
  | { type: 'gate'; reason: string }
  /** The gate's approval: the step it held is entered. */
  | { type: 'approve' }
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
  warming: { ready: 'shifting', gate: 'paused', not_ready: 'failed', abort: 'aborted' },
  shifting: { step_passed: 'shifting', advance: 'shifting', gate: 'paused', inconclusive: 'paused', verdict_failed: 'rolling_back', pause: 'paused', promote: 'promoted', rollback: 'rolling_back', abort: 'aborted' },
  // pause again: an operator takes over a pause the judge or the progress deadline made (its reason now theirs).
  paused: { resume: 'shifting', advance: 'shifting', approve: 'shifting', pause: 'paused', promote: 'promoted', rollback: 'rolling_back', abort: 'aborted', verdict_failed: 'rolling_back' },
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
  // A gate is left only by its approval (or a promotion, a rollback, an abort, a failed verdict):
  // pausing or resuming it, or moving past it, would send the held step its traffic unapproved.
  if (atGate(status) && (event.type === 'pause' || event.type === 'resume' || event.type === 'advance' || event.type === 'gate')) {
    throw new CL_ERR_ROLLOUT_BAD_TRANSITION(`${status.phase} at a gate`, event.type, 'approve (changelens promote --step), promote, rollback, abort');
  }
  if (event.type === 'approve' && !atGate(status)) throw new CL_ERR_ROLLOUT_BAD_TRANSITION(status.phase, event.type, Object.keys(TRANSITIONS[status.phase]).filter((e) => e !== 'approve').join(', '));
  let stepIndex = status.stepIndex;
  if (event.type === 'step_passed') {
    // The last step passing promotes; any other moves to the next weight.
    if (stepIndex >= status.steps.length - 1) next = 'promoted';
    else stepIndex++;
  }
  if (event.type === 'gate' && status.phase === 'shifting') {
    if (stepIndex >= status.steps.length - 1) throw new CL_ERR_ROLLOUT_BAD_TRANSITION(status.phase, event.type, 'nothing: it is at its last step');
    stepIndex++;
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
      return status.steps[status.stepIndex]! / 100;
    case 'paused':
      // Held at a gate: the step before's weight until it is approved.
      if (atGate(status)) return status.stepIndex > 0 ? status.steps[status.stepIndex - 1]! / 100 : 0;
      return status.steps[status.stepIndex]! / 100;
    case 'promoted':
      return 1;
    default:
      return 0;
  }
}
