// The monitor rules' form (config: CHANGELENS_MONITOR_RULES) and their defaults from the deployment
// design; monitoring/rules.ts judges them, supervisor/monitor.ts carries out their actions.

export type RuleAction = 'scale_up' | 'scale_down' | 'webhook' | 'command' | 'restart_service' | 'alert';
export const RULE_ACTIONS: readonly RuleAction[] = ['scale_up', 'scale_down', 'webhook', 'command', 'restart_service', 'alert'];

export interface MonitorRule {
  name: string;
  metric: string;
  op: '>' | '<';
  threshold: number;
  forSeconds: number;
  action: RuleAction;
  cooldownSeconds: number;
  /** webhook: where to POST (default: CHANGELENS_HOOK_URLS). */
  url?: string;
  /** command: the shell command to run. */
  command?: string;
}

/** The deployment design's defaults. */
export const DEFAULT_MONITOR_RULES: readonly MonitorRule[] = [
  { name: 'cpu-high', metric: 'cpu_percent', op: '>', threshold: 80, forSeconds: 300, action: 'scale_up', cooldownSeconds: 300 },
  { name: 'memory-high', metric: 'memory_percent', op: '>', threshold: 85, forSeconds: 180, action: 'scale_up', cooldownSeconds: 300 },
  { name: 'cpu-low', metric: 'cpu_percent', op: '<', threshold: 20, forSeconds: 900, action: 'scale_down', cooldownSeconds: 900 },
  { name: 'pg-connections', metric: 'pg_connections', op: '>', threshold: 90, forSeconds: 60, action: 'alert', cooldownSeconds: 600 },
  { name: 'disk-full', metric: 'disk_percent', op: '>', threshold: 90, forSeconds: 60, action: 'alert', cooldownSeconds: 3600 },
  { name: 'service-down', metric: 'down:*', op: '>', threshold: 0, forSeconds: 30, action: 'restart_service', cooldownSeconds: 60 },
];


/** Validates rules from config (JSON); every problem names the rule and field. */
export function parseMonitorRules(value: unknown): MonitorRule[] | { error: string } {
  let list = value;
  if (typeof value === 'string') {
    try {
      list = JSON.parse(value);
    } catch (err) {
      return { error: `not valid JSON (${(err as Error).message})` };
    }
  }
  if (!Array.isArray(list)) return { error: 'expected a JSON array of rules' };
  const rules: MonitorRule[] = [];
  for (const [i, raw] of list.entries()) {
    const at = `rule ${i}`;
    if (typeof raw !== 'object' || raw === null) return { error: `${at}: expected an object` };
    const r = raw as Record<string, unknown>;
    const known = ['name', 'metric', 'op', 'threshold', 'forSeconds', 'action', 'cooldownSeconds', 'url', 'command'];
    const unknown = Object.keys(r).find((k) => !known.includes(k));
    if (unknown) return { error: `${at}.${unknown}: unknown field (known: ${known.join(', ')})` };
    if (typeof r.name !== 'string' || !/^[a-z0-9][a-z0-9_-]{0,40}$/.test(r.name)) return { error: `${at}.name: expected a name of a-z, 0-9, _ and -` };
    const id = `rule ${r.name}`;
    if (rules.some((x) => x.name === r.name)) return { error: `${id}: a second rule of that name` };
    if (typeof r.metric !== 'string' || !/^[a-z0-9_:-]+\*?$/.test(r.metric)) return { error: `${id}.metric: expected a metric name such as cpu_percent or down:*` };
    if (r.op !== '>' && r.op !== '<') return { error: `${id}.op: expected ">" or "<"` };
    if (typeof r.threshold !== 'number' || !Number.isFinite(r.threshold)) return { error: `${id}.threshold: expected a number` };
    for (const k of ['forSeconds', 'cooldownSeconds'] as const) {
      if (typeof r[k] !== 'number' || !Number.isInteger(r[k]) || (r[k] as number) < 0 || (r[k] as number) > 86_400) return { error: `${id}.${k}: expected whole seconds 0-86400` };
    }
    if (!RULE_ACTIONS.includes(r.action as RuleAction)) return { error: `${id}.action: expected one of ${RULE_ACTIONS.join(', ')}` };
    if (r.action === 'command' && (typeof r.command !== 'string' || r.command === '')) return { error: `${id}.command: a command rule needs the shell command to run` };
    if (r.url !== undefined && (typeof r.url !== 'string' || !/^https?:\/\/\S+$/.test(r.url))) return { error: `${id}.url: expected an http(s) URL` };
    if (r.action === 'restart_service' && !r.metric.startsWith('down:')) return { error: `${id}.metric: restart_service acts on a down:<service> metric` };
    rules.push(r as unknown as MonitorRule);
  }
  return rules;
}
