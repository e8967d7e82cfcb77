// The supervisor's monitor: samples the appliance (system-metrics.ts) every interval, judges the
// monitor rules (monitoring/rules.ts) and carries out what fires: scale the active API colour up or
// down within its bounds, restart a service that stopped answering, POST a webhook (with retries),
// run an operator's command, or raise an alert. Every action is logged and audited.
// Scaling waits while a deployment runs: the judge compares the candidate with the stable colour,
// and changing the stable colour's capacity mid-rollout would change what it is compared with.
import type { Color, Config } from '../lib/config.js';
import { DEFAULT_MONITOR_RULES, parseMonitorRules } from '../lib/contracts/monitor-rules.js';
import { TERMINAL_PHASES_SQL } from '../lib/contracts/phases.js';
import { createPgPool, type Pool } from '../lib/db.js';
import type { Logger } from '../lib/logger.js';
import { RuleEngine, type Firing, type MonitorRule } from '../monitoring/rules.js';
import { recordAudit } from '../lib/audit.js';
import { postJson, runCommand } from '../lib/notify.js';
import type { GraphNode } from './process-graph.js';
import type { ProcessManager } from './process-manager.js';
import { SystemSampler, type Sample } from './system-metrics.js';

export interface MonitorOptions {
  rules: readonly MonitorRule[];
  intervalSeconds: number;
  sampler: SystemSampler;
  pm: ProcessManager;
  log: Logger;
  pool: Pool;
  activeColor: () => Color;
  /** API instances per colour: the floor and the ceiling of scaling. */
  minInstances: number;
  maxInstances: number;
  hookUrls: readonly string[];
  hookTimeoutMs: number;
}

export interface MonitorAction {
  rule: string;
  metric: string;
  value: number;
  action: string;
  at: string;
  ok: boolean;
  outcome: string;
}

export interface MonitorStatus {
  intervalSeconds: number;
  rules: number;
  /** Rules whose condition holds now, since when. */
  breaching: Array<{ rule: string; metric: string; since: string }>;
  /** The latest actions, newest first. */
  recent: MonitorAction[];
  /** Every rule's name, and how often each fired since the supervisor started. */
  ruleNames: string[];
  firings: Record<string, number>;
  lastSample: Sample | null;
}

const WEBHOOK_ATTEMPTS = 3;

export class Monitor {
  private readonly engine: RuleEngine;
  private timer: NodeJS.Timeout | null = null;
  private readonly recent: MonitorAction[] = [];
  private lastSample: Sample | null = null;
  private busy = false;
  private readonly firings = new Map<string, number>();

  constructor(private readonly o: MonitorOptions) {
    this.engine = new RuleEngine(o.rules);
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.o.intervalSeconds * 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.o.sampler.stop();
  }

  status(): MonitorStatus {
    return {
      intervalSeconds: this.o.intervalSeconds,
      rules: this.o.rules.length,
      breaching: this.engine.breaching().map((b) => ({ rule: b.rule, metric: b.metric, since: new Date(b.sinceMs).toISOString() })),
      recent: [...this.recent].reverse(),
      ruleNames: this.o.rules.map((r) => r.name),
      firings: Object.fromEntries(this.firings),
      lastSample: this.lastSample,
    };
  }

  private async tick(): Promise<void> {
    // A slow sample (a hung probe) must not pile up ticks.
    if (this.busy) return;
    this.busy = true;
    try {
      const sample = await this.o.sampler.sample();
      this.lastSample = sample;
      for (const firing of this.engine.observe(sample, Date.now())) await this.act(firing);
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'monitor sample failed');
    } finally {
      this.busy = false;
    }
  }

  private async act(f: Firing): Promise<void> {
    let ok = true;
    let outcome: string;
    try {
      outcome = await this.carryOut(f);
    } catch (err) {
      ok = false;
      outcome = (err as Error).message;
    }
    this.firings.set(f.rule.name, (this.firings.get(f.rule.name) ?? 0) + 1);
    const action: MonitorAction = { rule: f.rule.name, metric: f.metric, value: round(f.value), action: f.rule.action, at: new Date(f.atMs).toISOString(), ok, outcome };
    this.recent.push(action);
    if (this.recent.length > 20) this.recent.shift();
    this.o.log[ok && f.rule.action !== 'alert' ? 'info' : 'warn']({ monitor: action }, `monitor rule ${f.rule.name}: ${outcome}`);
    await recordAudit(this.o.pool, {
      eventType: f.rule.action === 'alert' ? 'alert' : 'monitor', deploymentId: null, actor: 'monitor', version: null,
      details: { rule: f.rule.name, metric: f.metric, value: action.value, threshold: f.rule.threshold, op: f.rule.op, forSeconds: f.rule.forSeconds, action: f.rule.action, outcome },
      success: ok, error: ok ? null : outcome,
    }).catch((err: Error) => this.o.log.warn({ err: err.message }, 'could not audit a monitor action'));
  }

  private async carryOut(f: Firing): Promise<string> {
    const what = `${f.metric} ${round(f.value)} ${f.rule.op} ${f.rule.threshold} for ${f.rule.forSeconds} s`;
    switch (f.rule.action) {
      case 'alert':
        return `alert: ${what}`;
      case 'scale_up':
      case 'scale_down':
        return this.scale(f.rule.action === 'scale_up' ? 1 : -1, what);
      case 'restart_service': {
        const name = f.metric.slice('down:'.length);
        await this.o.pm.restart(name);
        return `restarted ${name}: ${what}`;
      }
      case 'webhook': {
        const urls = f.rule.url ? [f.rule.url] : this.o.hookUrls;
        if (urls.length === 0) throw new Error('no webhook URL: set the rule\'s url or CHANGELENS_HOOK_URLS');
        const body = JSON.stringify({ type: 'monitor', rule: f.rule.name, metric: f.metric, value: f.value, threshold: f.rule.threshold, op: f.rule.op, forSeconds: f.rule.forSeconds, since: new Date(f.sinceMs).toISOString(), at: new Date(f.atMs).toISOString() });
        await Promise.all(urls.map((url) => withRetries(() => postJson(url, body, this.o.hookTimeoutMs))));
        return `posted to ${urls.length} webhook${urls.length === 1 ? '' : 's'}: ${what}`;
      }
      case 'command': {
        const body = JSON.stringify({ type: 'monitor', rule: f.rule.name, metric: f.metric, value: f.value });
        await runCommand(f.rule.command!, body, 'monitor', this.o.hookTimeoutMs);
        return `ran the command: ${what}`;
      }
    }
  }

  private async scale(delta: 1 | -1, what: string): Promise<string> {
    const { rows } = await this.o.pool.query(`SELECT id FROM deployments WHERE phase NOT IN ${TERMINAL_PHASES_SQL} LIMIT 1`);
    if (rows.length > 0) throw new Error(`not scaled: deployment ${rows[0].id} is running (the judge compares like with like); ${what}`);
    const name = `api-${this.o.activeColor()}`;
    const current = (await this.o.pm.describe(name)).length;
    const target = Math.min(this.o.maxInstances, Math.max(this.o.minInstances, current + delta));
    if (target === current) return `${name} stays at ${current} instance${current === 1 ? '' : 's'} (bounds ${this.o.minInstances}-${this.o.maxInstances}): ${what}`;
    await this.o.pm.scale(name, target);
    return `scaled ${name} from ${current} to ${target} instances: ${what}`;
  }
}

async function withRetries(fn: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= WEBHOOK_ATTEMPTS) throw new Error(`${(err as Error).message} (after ${attempt} attempts)`);
      await new Promise((r) => setTimeout(r, 500 * 2 ** (attempt - 1)));
    }
  }
}

const round = (x: number): number => Math.round(x * 100) / 100;

/** Builds and starts the monitor from the config (none when the rules are `[]`). */
export function startMonitor(config: Config, deps: { pm: ProcessManager; log: Logger; urls: { database: string; redis: string }; dataDir: string; graph: readonly GraphNode[]; isRunning: (name: string) => boolean; activeColor: () => Color }): { monitor: Monitor; close: () => Promise<void> } | null {
  const parsed = config.monitorRules === undefined ? DEFAULT_MONITOR_RULES : parseMonitorRules(config.monitorRules);
  if ('error' in parsed) throw new Error(`CHANGELENS_MONITOR_RULES: ${parsed.error}`); // validated at load; cannot happen
  const rules: readonly MonitorRule[] = parsed;
  if (rules.length === 0) return null;
  const pool = createPgPool(deps.urls.database, { max: 2, applicationName: 'changelens-monitor' });
  const sampler = new SystemSampler({
    pm: deps.pm, dataDir: deps.dataDir, urls: deps.urls,
    // Only what this appliance runs: an external database is not ours to restart.
    running: () => deps.graph.filter((n) => n.probe.kind !== 'task' && !n.external && deps.isRunning(n.name)),
  });
  const monitor = new Monitor({
    rules, intervalSeconds: config.monitorIntervalSeconds, sampler, pm: deps.pm, log: deps.log.child({ component: 'monitor' }),
    pool, activeColor: deps.activeColor,
    minInstances: config.apiInstances, maxInstances: config.apiMaxInstances ?? Math.max(4, config.apiInstances),
    hookUrls: config.hookUrls?.split(',').map((u) => u.trim()) ?? [], hookTimeoutMs: config.hookTimeoutMs,
  });
  monitor.start();
  return { monitor, close: async () => { monitor.stop(); await pool.end().catch(() => {}); } };
}
