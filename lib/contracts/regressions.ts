// Regressions a colour can carry: set at run time by the operator (the admin API's
// /api/colors/<colour>/regressions/<type>, `changelens regression set`), or from
// birth through the release's env (CHANGELENS_REGRESSION=cpu:50,errors:0.1). One definition of
// the types, their intensity ranges and the spec format, shared by config, API and tests.

export type RegressionType = 'cpu' | 'db' | 'dependency' | 'errors';

export interface Regression {
  type: RegressionType;
  /** cpu: work units (~0.1 ms of CPU each, under a shared lock); db: extra cost units (1,000 rows
   *  of work each, index scans off); dependency: added ms per downstream call; errors: share of
   *  requests failing with 5xx (0-1]. */
  intensity: number;
  /** dependency only: share of downstream calls that time out (seed default 5 %). */
  timeoutRate?: number;
}

export const REGRESSION_LIMITS: Record<RegressionType, { min: number; max: number; integer: boolean; unit: string }> = {
  cpu: { min: 1, max: 10_000, integer: true, unit: 'work units' },
  db: { min: 1, max: 10_000, integer: true, unit: 'cost units' },
  dependency: { min: 1, max: 60_000, integer: true, unit: 'ms' },
  errors: { min: 0.0001, max: 1, integer: false, unit: 'share of requests' },
};
export const REGRESSION_TYPES = Object.keys(REGRESSION_LIMITS) as RegressionType[];
export const DEFAULT_TIMEOUT_RATE = 0.05;

export function isRegressionType(value: string): value is RegressionType {
  return Object.hasOwn(REGRESSION_LIMITS, value);
}

/** The problem with a regression's values, or undefined when it is valid. */
export function regressionProblem(type: RegressionType, intensity: unknown, timeoutRate?: unknown): string | undefined {
  const limits = REGRESSION_LIMITS[type];
  if (typeof intensity !== 'number' || !Number.isFinite(intensity) || intensity < limits.min || intensity > limits.max || (limits.integer && !Number.isInteger(intensity))) {
    return `${type} intensity: expected ${limits.integer ? 'an integer' : 'a number'} ${limits.min}-${limits.max} (${limits.unit}), got ${JSON.stringify(intensity)}`;
  }
  if (timeoutRate !== undefined) {
    if (type !== 'dependency') return `timeoutRate: only the dependency regression has one`;
    if (typeof timeoutRate !== 'number' || !(timeoutRate >= 0 && timeoutRate <= 1)) return `timeoutRate: expected a share 0-1, got ${JSON.stringify(timeoutRate)}`;
  }
  return undefined;
}

/**
 * Parses "cpu:50,errors:0.1,dependency:200/0.1" (type:intensity[/timeoutRate], comma-separated,
 * each type once). Returns the regressions, or the problems found.
 */
export function parseRegressionSpec(spec: string): { regressions: Regression[] } | { problems: string[] } {
  const parsed = parseTypedSpec(spec, REGRESSION_TYPES, (type, intensity, timeoutRate) => regressionProblem(type, intensity, timeoutRate), 'cpu:50 or dependency:200/0.05');
  if ('problems' in parsed) return parsed;
  return { regressions: parsed.items.map(({ type, intensity, rate }) => withDefaults({ type, intensity, ...(rate === undefined ? {} : { timeoutRate: rate }) })) };
}

/**
 * The spec format shared by the API's and the worker's regressions (lib/contracts/worker-regressions.ts):
 * "type:intensity[/rate]", comma-separated, each type once; `problem` checks one item's values.
 */
export function parseTypedSpec<T extends string>(
  spec: string, types: readonly T[], problem: (type: T, intensity: number, rate: number | undefined) => string | undefined, example: string,
): { items: Array<{ type: T; intensity: number; rate: number | undefined }> } | { problems: string[] } {
  const items: Array<{ type: T; intensity: number; rate: number | undefined }> = [];
  const problems: string[] = [];
  const seen = new Set<T>();
  for (const part of spec.split(',').map((p) => p.trim()).filter(Boolean)) {
    const match = /^([a-z]+):([0-9.][0-9.e+-]*)(?:\/([0-9.][0-9.e+-]*))?$/.exec(part);
    if (!match) {
      problems.push(`"${part}": expected type:intensity${example.includes('/') ? '[/rate]' : ''}, e.g. ${example}`);
      continue;
    }
    const [, typeText, intensityText, rateText] = match as unknown as [string, string, string, string | undefined];
    const type = types.find((t) => t === typeText);
    if (type === undefined) {
      problems.push(`"${part}": unknown regression type "${typeText}" (expected one of ${types.join(', ')})`);
      continue;
    }
    if (seen.has(type)) {
      problems.push(`"${part}": ${type} is given twice`);
      continue;
    }
    seen.add(type);
    const intensity = Number(intensityText);
    const rate = rateText === undefined ? undefined : Number(rateText);
    const found = problem(type, intensity, rate);
    if (found) problems.push(`"${part}": ${found}`);
    else items.push({ type, intensity, rate });
  }
  return problems.length > 0 ? { problems } : { items };
}

export function withDefaults(r: Regression): Regression {
  return r.type === 'dependency' ? { ...r, timeoutRate: r.timeoutRate ?? DEFAULT_TIMEOUT_RATE } : r;
}

export function formatRegressionSpec(regressions: readonly Regression[]): string {
  return regressions.map((r) => `${r.type}:${r.intensity}${r.timeoutRate !== undefined ? `/${r.timeoutRate}` : ''}`).join(',');
}
