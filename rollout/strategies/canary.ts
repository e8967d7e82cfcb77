// Canary: the candidate takes a growing share alongside the stable colour, each step judged
// against the stable colour in the same windows; reaching 100 % is the promotion.
import { stepPeriodOver, type RolloutStrategy } from './strategy.js';

export const canary: RolloutStrategy = {
  steps: (requested) => [...requested],
  previewMs: () => 0,
  baseline: 'alongside',
  judged: true,
  promotesOnEntering: (status) => status.steps[status.stepIndex] === 100,
  stepComplete: stepPeriodOver,
};
