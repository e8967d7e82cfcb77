// The rollout strategies by name: what a deployment's `strategy` column selects.
import type { Strategy } from '../model.js';
import { bluegreen } from './bluegreen.js';
import { canary } from './canary.js';
import { direct } from './direct.js';
import type { RolloutStrategy } from './strategy.js';

export type { RolloutStrategy };

const STRATEGIES: Record<Strategy, RolloutStrategy> = { canary, bluegreen, direct };

export function strategyOf(name: Strategy): RolloutStrategy {
  return STRATEGIES[name];
}
