// Monitor rules: `{name, metric, op, threshold, forSeconds, action, cooldownSeconds}` judged on
// samples of the appliance's metrics (supervisor/monitor.ts takes them). A rule fires when its
// condition has held without a break for `forSeconds`, and not again before `cooldownSeconds`
// have passed; a sample that does not breach resets the clock. Pure: the caller passes the time.
// `metric` may end in `*` to apply per matching metric, e.g. `down:*` for every service.
import type { MonitorRule } from '../lib/contracts/monitor-rules.js';

export { DEFAULT_MONITOR_RULES, parseMonitorRules, RULE_ACTIONS, type MonitorRule, type RuleAction } from '../lib/contracts/monitor-rules.js';

export interface Firing {
  rule: MonitorRule;
  /** The concrete metric (down:worker for down:*). */
  metric: string;
  value: number;
  /** Since when the condition has held, ms since the epoch. */
  sinceMs: number;
  atMs: number;
}

interface RuleState {
  sinceMs: number | null;
  lastFiredMs: number | null;
}

export class RuleEngine {
  /** Per rule and concrete metric. */
  private readonly state = new Map<string, RuleState>();

  constructor(readonly rules: readonly MonitorRule[]) {}

  /** Feeds one sample of every metric taken at `nowMs`; returns the rules that fire now. */
  observe(sample: Readonly<Record<string, number>>, nowMs: number): Firing[] {
    const firings: Firing[] = [];
    for (const rule of this.rules) {
      for (const metric of matching(rule.metric, sample)) {
        const value = sample[metric]!;
        const key = `${rule.name}\0${metric}`;
        const s = this.state.get(key) ?? { sinceMs: null, lastFiredMs: null };
        this.state.set(key, s);
        const breached = rule.op === '>' ? value > rule.threshold : value < rule.threshold;
        if (!breached) {
          s.sinceMs = null;
          continue;
        }
        s.sinceMs ??= nowMs;
        const held = nowMs - s.sinceMs >= rule.forSeconds * 1000;
        const cooled = s.lastFiredMs === null || nowMs - s.lastFiredMs >= rule.cooldownSeconds * 1000;
        if (held && cooled) {
          firings.push({ rule, metric, value, sinceMs: s.sinceMs, atMs: nowMs });
          s.lastFiredMs = nowMs;
        }
      }
    }
    return firings;
  }

  /** Rules whose condition holds now (firing or waiting out their duration), for status. */
  breaching(): Array<{ rule: string; metric: string; sinceMs: number }> {
    const out: Array<{ rule: string; metric: string; sinceMs: number }> = [];
    for (const [key, s] of this.state) {
      if (s.sinceMs === null) continue;
      const [rule, metric] = key.split('\0') as [string, string];
      out.push({ rule, metric, sinceMs: s.sinceMs });
    }
    return out;
  }
}

function matching(pattern: string, sample: Readonly<Record<string, number>>): string[] {
  if (!pattern.endsWith('*')) return pattern in sample ? [pattern] : [];
  const prefix = pattern.slice(0, -1);
  return Object.keys(sample).filter((k) => k.startsWith(prefix));
}
