// Regressions a colour's worker can carry, like the API's (lib/contracts/regressions.ts): from birth
// through the release's env (CHANGELENS_WORKER_REGRESSION=errors:0.2) or set at run time through
// the admin API. They act on jobs, not requests: `slow` adds ms to every job, `errors` fails that
// share of attempts, `crash` kills the worker process in that share of jobs (pm2 restarts it).
import { parseTypedSpec } from './regressions.js';

export type WorkerRegressionType = 'slow' | 'errors' | 'crash';

export interface WorkerRegression {
  type: WorkerRegressionType;
  intensity: number;
}

export const WORKER_REGRESSION_LIMITS: Record<WorkerRegressionType, { min: number; max: number; integer: boolean; unit: string }> = {
  slow: { min: 1, max: 60_000, integer: true, unit: 'ms added to every job' },
  errors: { min: 0.0001, max: 1, integer: false, unit: 'share of attempts failing' },
  crash: { min: 0.0001, max: 1, integer: false, unit: 'share of jobs that kill the worker' },
};
export const WORKER_REGRESSION_TYPES = Object.keys(WORKER_REGRESSION_LIMITS) as WorkerRegressionType[];

export function isWorkerRegressionType(value: string): value is WorkerRegressionType {
  return Object.hasOwn(WORKER_REGRESSION_LIMITS, value);
}

/** The problem with a worker regression's intensity, or undefined when it is valid. */
export function workerRegressionProblem(type: WorkerRegressionType, intensity: unknown): string | undefined {
  const limits = WORKER_REGRESSION_LIMITS[type];
  if (typeof intensity !== 'number' || !Number.isFinite(intensity) || intensity < limits.min || intensity > limits.max || (limits.integer && !Number.isInteger(intensity))) {
    return `${type} intensity: expected ${limits.integer ? 'an integer' : 'a number'} ${limits.min}-${limits.max} (${limits.unit}), got ${JSON.stringify(intensity)}`;
  }
  return undefined;
}

/** Parses "errors:0.2,slow:50" (type:intensity, comma-separated, each type once). */
export function parseWorkerRegressionSpec(spec: string): { regressions: WorkerRegression[] } | { problems: string[] } {
  const parsed = parseTypedSpec(spec, WORKER_REGRESSION_TYPES, (type, intensity, rate) =>
    rate !== undefined ? 'a worker regression has no /rate' : workerRegressionProblem(type, intensity), 'errors:0.2 or slow:50');
  if ('problems' in parsed) return parsed;
  return { regressions: parsed.items.map(({ type, intensity }) => ({ type, intensity })) };
}

export function formatWorkerRegressionSpec(regressions: readonly WorkerRegression[]): string {
  return regressions.map((r) => `${r.type}:${r.intensity}`).join(',');
}
