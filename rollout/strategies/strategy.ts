// What differs between canary, blue/green and direct, behind one small interface; everything else
// (starting the colour, windows, fast trips, endings) is the reconciler's and the same for all.
import type { Plan } from '../model.js';
import type { Run } from '../run.js';
import type { DeploymentStatus } from '../state-machine.js';

export interface RolloutStrategy {
  /** The candidate's traffic shares (percent, ending at 100) it walks through. */
  steps(requested: readonly number[]): number[];
  /** How long the started candidate is reachable by pin only (x-changelens-color) before it takes traffic. */
  previewMs(plan: Plan): number;
  /**
   * What the candidate is compared with: the stable colour in the same window ('alongside'), or
   * the stable colour's last 30 s before the switch ('before-switch': the candidate then takes all).
   */
  baseline: 'alongside' | 'before-switch';
  /** Once ready: judged step by step, or promoted at once. */
  judged: boolean;
  /** Entering this step is itself the promotion (nothing is left to compare with). */
  promotesOnEntering(status: DeploymentStatus): boolean;
  /** The step has had its whole analysis period: its last decisive window decides. */
  stepComplete(run: Run, nowMs: number): boolean;
}

/** A shifting step is complete once its step seconds have passed since it began (or resumed). */
export function stepPeriodOver(run: Run, nowMs: number): boolean {
  return run.d.status.phase === 'shifting' && nowMs - run.stepStartedMs >= run.d.plan.stepSeconds * 1000;
}
