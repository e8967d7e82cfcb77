import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../lib/package-root.js';
import { runningMs } from '../supervisor/index.js';
import { DEFAULT_PRICES, estimateCost, readPrices, readServiceResources } from './cost.js';

const dir = mkdtempSync(join(tmpdir(), 'changelens-cost-'));
const file = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};

describe('changelens cost', () => {
  it('reads the service\'s resources from the repository\'s cloudbaserc.json', () => {
    expect(readServiceResources(join(packageRoot, 'cloudbaserc.json'))).toEqual({ serviceName: 'changelens', cpu: 1, memGiB: 2, minNum: 1, maxNum: 1 });
  });

  it('prices floor and ceiling from minNum and maxNum all month', () => {
    const c = estimateCost({ serviceName: 's', cpu: 2, memGiB: 4, minNum: 1, maxNum: 3 }, { ...DEFAULT_PRICES, cpuPerCoreHour: 0.1, memPerGiBHour: 0.01 }, null);
    expect(c.perInstanceHour).toBeCloseTo(0.24);
    expect(c.floorPerMonth).toBeCloseTo(0.24 * 730, 2);
    expect(c.ceilingPerMonth).toBeCloseTo(3 * 0.24 * 730, 2);
    expect(c.observed).toBeNull();
  });

  it('projects observed instance-hours onto a month', () => {
    const c = estimateCost({ serviceName: 's', cpu: 1, memGiB: 1, minNum: 1, maxNum: 1 }, { ...DEFAULT_PRICES, cpuPerCoreHour: 1, memPerGiBHour: 0 }, { days: 10, ms: 120 * 3_600_000, starts: 2 });
    // Running half of the 240 hours → half a month of one instance.
    expect(c.observed).toEqual({ days: 10, instanceHours: 120, starts: 2, projectedPerMonth: 365 });
  });

  it('refuses a config without the container plugin, or a bad number, naming it; prices can be overridden', () => {
    expect(() => readServiceResources(file('none.json', '{"framework":{"plugins":{}}}'))).toThrow('framework-plugin-container');
    expect(() => readServiceResources(file('bad.json', JSON.stringify({ framework: { plugins: { s: { use: '@cloudbase/framework-plugin-container', inputs: { cpu: 'two' } } } } })))).toThrow('inputs.cpu');
    expect(readPrices(file('p.json', '{"currency":"USD","cpuPerCoreHour":0.02}'))).toMatchObject({ currency: 'USD', cpuPerCoreHour: 0.02, memPerGiBHour: DEFAULT_PRICES.memPerGiBHour });
    expect(() => readPrices(file('p2.json', '{"memPerGiBHour":-1}'))).toThrow('memPerGiBHour');
  });
});

describe('run log', () => {
  const at = (h: number) => new Date(Date.UTC(2026, 0, 1, h)).toISOString();
  const log = (events: [string, number][]) => file(`runs-${Math.random()}.jsonl`, events.map(([event, h]) => JSON.stringify({ event, at: at(h), pid: 1 })).join('\n') + '\n');

  it('sums start→stop intervals inside the window, clipping at its edges', () => {
    const path = log([['start', 0], ['stop', 2], ['start', 5], ['stop', 6]]);
    expect(runningMs(path, new Date(at(1)), new Date(at(10)))).toEqual({ ms: 2 * 3_600_000, starts: 1 });
  });

  it('counts a start without a stop (a crash) until the next start, and a running one until now', () => {
    const path = log([['start', 0], ['start', 3], ['stop', 4], ['start', 8]]);
    expect(runningMs(path, new Date(at(0)), new Date(at(10))).ms).toBe((3 + 1 + 2) * 3_600_000);
  });

  it('ignores damaged lines and a missing file', () => {
    expect(runningMs(file('broken.jsonl', `not json\n${JSON.stringify({ event: 'start', at: at(0), pid: 1 })}\n`), new Date(at(0)), new Date(at(1))).ms).toBe(3_600_000);
    expect(runningMs(join(dir, 'missing.jsonl'), new Date(0))).toEqual({ ms: 0, starts: 0 });
  });
});
