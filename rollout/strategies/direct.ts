// Direct: no analysis; the candidate is promoted as soon as it passes its readiness probe. For
// changes the operator has already verified elsewhere.
import type { RolloutStrategy } from './strategy.js';

export const direct: RolloutStrategy = {
  steps: () => [100],
  previewMs: () => 0,
  baseline: 'alongside',
  judged: false,
  promotesOnEntering: () => true,
  stepComplete: () => false,
};
