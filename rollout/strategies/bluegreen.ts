// Blue/green: after an optional preview (pinned requests only) the candidate takes everything at
// once; it is judged against the stable colour's latency before the switch, through one step,
// and the old colour stays warm so switching back is instant.
import { stepPeriodOver, type RolloutStrategy } from './strategy.js';

export const bluegreen: RolloutStrategy = {
  steps: () => [100],
  previewMs: (plan) => plan.previewSeconds * 1000,
  baseline: 'before-switch',
  judged: true,
  promotesOnEntering: () => false,
  stepComplete: stepPeriodOver,
};
