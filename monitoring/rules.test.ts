import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MONITOR_RULES, parseMonitorRules, RuleEngine, type MonitorRule } from './rules.js';

const rule = (over: Partial<MonitorRule> = {}): MonitorRule => ({ name: 'cpu', metric: 'cpu_percent', op: '>', threshold: 80, forSeconds: 10, action: 'alert', cooldownSeconds: 30, ...over });

/** A reference model: fires when the last `forSeconds` of samples all breached and the cooldown has passed. */
function model(r: MonitorRule, series: Array<{ atMs: number; value: number }>): number[] {
  const fired: number[] = [];
  let since: number | null = null;
  let last: number | null = null;
  for (const { atMs, value } of series) {
    const breached = r.op === '>' ? value > r.threshold : value < r.threshold;
    if (!breached) { since = null; continue; }
    since ??= atMs;
    if (atMs - since >= r.forSeconds * 1000 && (last === null || atMs - last >= r.cooldownSeconds * 1000)) { fired.push(atMs); last = atMs; }
  }
  return fired;
}

const seriesArb = fc.array(fc.tuple(fc.integer({ min: 1, max: 20_000 }), fc.integer({ min: 0, max: 100 })), { minLength: 1, maxLength: 200 })
  .map((steps) => {
    let t = 1_000_000;
    return steps.map(([dt, value]) => ({ atMs: (t += dt), value }));
  });

describe('RuleEngine (controllable clock)', () => {
  it('fires exactly when the condition has held for its duration, never again within the cooldown', () => {
    fc.assert(fc.property(seriesArb, fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 120 }), fc.constantFrom('>', '<'), (series, forSeconds, cooldownSeconds, op) => {
      const r = rule({ forSeconds, cooldownSeconds, op: op as '>' | '<', threshold: 50 });
      const engine = new RuleEngine([r]);
      const fired = series.flatMap(({ atMs, value }) => engine.observe({ cpu_percent: value }, atMs).map((f) => f.atMs));
      expect(fired).toEqual(model(r, series));
      for (let i = 1; i < fired.length; i++) expect(fired[i]! - fired[i - 1]!).toBeGreaterThanOrEqual(cooldownSeconds * 1000);
    }));
  });

  it('a single sample below the threshold resets the clock', () => {
    const engine = new RuleEngine([rule()]);
    expect(engine.observe({ cpu_percent: 90 }, 0)).toEqual([]);
    expect(engine.observe({ cpu_percent: 90 }, 9_000)).toEqual([]);
    expect(engine.observe({ cpu_percent: 10 }, 9_500)).toEqual([]);
    expect(engine.observe({ cpu_percent: 90 }, 10_000)).toEqual([]);
    expect(engine.observe({ cpu_percent: 90 }, 19_999)).toEqual([]);
    expect(engine.observe({ cpu_percent: 90 }, 20_000)).toHaveLength(1);
  });

  it('a wildcard rule applies per matching metric, and names which', () => {
    const engine = new RuleEngine([rule({ name: 'down', metric: 'down:*', op: '>', threshold: 0, forSeconds: 0, action: 'restart_service' })]);
    const fired = engine.observe({ 'down:worker': 1, 'down:redis': 0, cpu_percent: 99 }, 0);
    expect(fired.map((f) => f.metric)).toEqual(['down:worker']);
  });
});

describe('parseMonitorRules', () => {
  it('accepts the defaults as JSON', () => {
    expect(parseMonitorRules(JSON.stringify(DEFAULT_MONITOR_RULES))).toEqual(DEFAULT_MONITOR_RULES);
  });

  it('names the rule and the field of every problem', () => {
    const cases: Array<[unknown, string]> = [
      ['{', 'not valid JSON'],
      ['{}', 'expected a JSON array'],
      [[{ ...rule(), op: '>=' }], 'rule cpu.op'],
      [[{ ...rule(), action: 'reboot' }], 'rule cpu.action'],
      [[{ ...rule(), forSeconds: -1 }], 'rule cpu.forSeconds'],
      [[{ ...rule(), action: 'command' }], 'rule cpu.command'],
      [[{ ...rule(), action: 'restart_service' }], 'rule cpu.metric'],
      [[{ ...rule(), colour: 'x' }], 'rule 0.colour'],
      [[rule(), rule()], 'rule cpu: a second rule'],
    ];
    for (const [input, message] of cases) {
      const parsed = parseMonitorRules(input);
      expect(parsed, JSON.stringify(input)).toHaveProperty('error');
      expect((parsed as { error: string }).error).toContain(message);
    }
  });
});
