// `changelens cost`: what the CloudBase Run service of cloudbaserc.json costs a month, from its
// resources and the instance-hours this appliance was observed running. Prices change and differ
// by account: the defaults are illustrative, and --prices FILE overrides them.
import { readFileSync } from 'node:fs';

export interface PriceTable {
  currency: string;
  /** Per vCPU-hour of an instance that is running. */
  cpuPerCoreHour: number;
  /** Per GiB-hour of memory of an instance that is running. */
  memPerGiBHour: number;
  source: string;
}

export const DEFAULT_PRICES: PriceTable = {
  currency: 'CNY',
  cpuPerCoreHour: 0.055,
  memPerGiBHour: 0.032,
  source: 'WeChat CloudRun pay-as-you-go list prices (CPU 0.055/core-hour, memory 0.032/GiB-hour); check your own price page and override with --prices',
};

const HOURS_PER_MONTH = 730;

export interface ServiceResources {
  serviceName: string;
  cpu: number;
  memGiB: number;
  minNum: number;
  maxNum: number;
}

export interface CostEstimate {
  resources: ServiceResources;
  prices: PriceTable;
  perInstanceHour: number;
  /** minNum instances all month: what the service costs at the least. */
  floorPerMonth: number;
  /** maxNum instances all month. */
  ceilingPerMonth: number;
  observed: { days: number; instanceHours: number; starts: number; projectedPerMonth: number } | null;
}

export function readServiceResources(rcPath: string): ServiceResources {
  const rc = JSON.parse(readFileSync(rcPath, 'utf8')) as { framework?: { plugins?: Record<string, { use?: string; inputs?: Record<string, unknown> }> } };
  const plugin = Object.values(rc.framework?.plugins ?? {}).find((p) => p.use === '@cloudbase/framework-plugin-container');
  if (!plugin?.inputs) throw new Error(`${rcPath}: no @cloudbase/framework-plugin-container plugin with inputs`);
  const num = (key: string, fallback: number): number => {
    const v = plugin.inputs![key] ?? fallback;
    if (typeof v !== 'number' || !(v >= 0)) throw new Error(`${rcPath}: inputs.${key}: expected a number ≥ 0, got ${JSON.stringify(v)}`);
    return v;
  };
  // Defaults as in the container plugin's source.
  return { serviceName: String(plugin.inputs.serviceName ?? 'service'), cpu: num('cpu', 1), memGiB: num('mem', 1), minNum: num('minNum', 1), maxNum: num('maxNum', 10) };
}

export function readPrices(path: string | undefined): PriceTable {
  if (path === undefined) return DEFAULT_PRICES;
  const given = JSON.parse(readFileSync(path, 'utf8')) as Partial<PriceTable>;
  for (const key of ['cpuPerCoreHour', 'memPerGiBHour'] as const) {
    if (given[key] !== undefined && !(typeof given[key] === 'number' && given[key]! >= 0)) throw new Error(`${path}: ${key}: expected a number ≥ 0`);
  }
  return { ...DEFAULT_PRICES, ...given, source: given.source ?? path };
}

export function estimateCost(resources: ServiceResources, prices: PriceTable, observed: { days: number; ms: number; starts: number } | null): CostEstimate {
  const perInstanceHour = resources.cpu * prices.cpuPerCoreHour + resources.memGiB * prices.memPerGiBHour;
  const round2 = (x: number) => Math.round(x * 100) / 100;
  const instanceHours = observed ? observed.ms / 3_600_000 : 0;
  return {
    resources,
    prices,
    perInstanceHour: Math.round(perInstanceHour * 10_000) / 10_000,
    floorPerMonth: round2(resources.minNum * HOURS_PER_MONTH * perInstanceHour),
    ceilingPerMonth: round2(resources.maxNum * HOURS_PER_MONTH * perInstanceHour),
    observed: observed && observed.ms > 0
      ? { days: observed.days, instanceHours: Math.round(instanceHours * 10) / 10, starts: observed.starts, projectedPerMonth: round2((instanceHours / (observed.days * 24)) * HOURS_PER_MONTH * perInstanceHour) }
      : null,
  };
}

export function formatCost(c: CostEstimate): string {
  const m = (x: number) => `${x.toFixed(2)} ${c.prices.currency}`;
  const r = c.resources;
  return [
    `${r.serviceName}: ${r.cpu} vCPU, ${r.memGiB} GiB, ${r.minNum}-${r.maxNum} instance(s); ${c.perInstanceHour} ${c.prices.currency} per instance-hour`,
    `  at least (minNum all month)   ${m(c.floorPerMonth)} / month`,
    `  at most (maxNum all month)    ${m(c.ceilingPerMonth)} / month`,
    c.observed
      ? `  observed here                 ${c.observed.instanceHours} instance-hours in ${c.observed.days} days (${c.observed.starts} start(s)) → ${m(c.observed.projectedPerMonth)} / month`
      : '  observed here                 no runs recorded in this data dir yet',
    `  prices: ${c.prices.source}`,
    '',
  ].join('\n');
}
