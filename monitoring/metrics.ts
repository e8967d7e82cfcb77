// The proxy's Prometheus exposition: what an operator's Prometheus scrapes to watch releases from
// outside — request latency by colour, release and status class (fine buckets: the APIs answer in
// milliseconds), where a rollout stands (phase, candidate weight, active colour), and how many
// verdicts and rollbacks there were. Its own registry, so nothing else in the process leaks into it;
// the judge does not read it (it has its own HdrHistograms, see sliced-window.ts).
import type { BackupSummary } from '../lib/contracts/status.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { PHASES } from '../lib/contracts/phases.js';

type Color = 'blue' | 'green';

/** Latency buckets in seconds: 0.5 ms to 10 s, fine enough for millisecond APIs. */
export const REQUEST_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
  0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10,
]);

/** Every value `changelens_rollout_phase{phase}` takes; `none`: no deployment in progress or remembered. */
export const ROLLOUT_PHASES: readonly string[] = Object.freeze([...PHASES, 'none']);

export interface RolloutMetricsState {
  deploymentId: string | null;
  phase: string | null;
  candidateColor: Color | null;
  /** The candidate's share of traffic, 0-1. */
  candidateWeight: number;
  activeColor: Color;
}

export interface ProxyMetricsOptions {
  /** Distinct release labels kept at once; observing one more drops the least recently observed (default 8). */
  maxReleases?: number;
  /** Node process metrics (CPU, memory, event loop lag, GC) prefixed `changelens_proxy_` (default true). */
  processMetrics?: boolean;
}

export interface ProxyMetrics {
  /** Per request, on the hot path: never throws, allocates nothing once the (colour, release, class) series exists. */
  observeRequest(color: Color, release: string, latencyMs: number, statusCode: number): void;
  /** Removes every series of a release that is no longer served (its latency histogram children). */
  forgetRelease(release: string): void;
  setRollout(s: RolloutMetricsState): void;
  countVerdict(verdict: 'pass' | 'fail' | 'insufficient'): void;
  countRollback(trigger: string): void;
  /** A request the candidate could not take, answered by the stable colour instead. */
  countRetryOnStable(from: Color): void;
  /** An idempotent request whose colour was down (a crash), held and re-sent to it. */
  countHeld(color: Color): void;
  /** A pinned preview's answer: served, never judged. */
  countPreview(color: Color, statusCode: number): void;
  /** One job attempt's end, reported by a colour's worker: its enqueue-to-outcome latency, by outcome. */
  observeJob(color: Color, outcome: 'completed' | 'failed' | 'dead', latencyMs: number): void;
  /** An answer to a mirrored or synthetic request (proxy/mirror.ts; status 0: none), counted apart from clients' requests. */
  countMirrored(color: Color, purpose: 'warmup' | 'analysis', statusCode: number): void;
  /** A copy the mirror skipped at one of its bounds. */
  countMirrorSkipped(color: Color, reason: 'rate' | 'in_flight'): void;
  /** The supervisor's processes: 1 online, 0 down, for those that should run (an idle colour is absent). */
  setProcesses(list: ReadonlyArray<{ name: string; expected: boolean; online: boolean }>): void;
  /** The supervisor's monitor: cumulative firings per rule, every rule's name, and which hold now. */
  setMonitor(m: { firings: Record<string, number>; rules: readonly string[]; holding: readonly string[] }): void;
  /** The supervisor's backups: age, size and duration of the newest of each kind, overdue flags. */
  setBackups(b: BackupSummary): void;
  /** The text exposition of this registry only. */
  render(): Promise<{ contentType: string; body: string }>;
}

const COLORS: readonly Color[] = ['blue', 'green'];
const CODE_CLASSES = ['2xx', '3xx', '4xx', '5xx'] as const;

/**
 * Status code → index into CODE_CLASSES. 1xx (a 101 upgrade) counts as success; anything that is
 * not a valid status (0 for an aborted exchange, > 599) counts as a server-side failure.
 */
function classIndex(statusCode: number): number {
  if (statusCode < 300) return statusCode >= 100 ? 0 : 3;
  if (statusCode < 400) return 1;
  if (statusCode < 500) return 2;
  return 3;
}

const SERIES = COLORS.length * CODE_CLASSES.length;
const SLOTS = REQUEST_DURATION_BUCKETS.length + 1;

/**
 * One release's request latencies: per (colour, class) series, a count per bucket (not cumulative:
 * the last is +Inf), the sum and the count. The request path writes three numbers here and nothing
 * else; prom-client sees the table only at scrape time (requestDurationMetric). prom-client's own
 * observe() hashed the label set on every request: the proxy's costliest line of this file.
 */
interface ReleaseSeries {
  /** [series * SLOTS + bucket], series = colour * 4 + class. */
  readonly buckets: Float64Array;
  readonly sums: Float64Array;
  readonly counts: Float64Array;
  lastUsed: number;
}

/**
 * changelens_request_duration_seconds as prom-client renders a histogram (cumulative `_bucket`
 * with `le`, `_sum`, `_count`), read from the release tables at scrape time. Series that never
 * saw a request are left out, as prom-client leaves out children never observed.
 */
function requestDurationMetric(releases: ReadonlyMap<string, ReleaseSeries>) {
  const name = 'changelens_request_duration_seconds';
  const help = 'Latency of requests through the proxy, by API colour, release served and status class.';
  const read = () => {
    const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
    for (const [release, series] of releases) {
      for (let i = 0; i < SERIES; i++) {
        const count = series.counts[i]!;
        if (count === 0) continue;
        const labels = { color: COLORS[i >> 2]!, release, code_class: CODE_CLASSES[i & 3]! };
        let cumulative = 0;
        for (let b = 0; b < SLOTS; b++) {
          cumulative += series.buckets[i * SLOTS + b]!;
          values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: b < SLOTS - 1 ? REQUEST_DURATION_BUCKETS[b]! : '+Inf' }, value: cumulative });
        }
        values.push({ metricName: `${name}_sum`, labels, value: series.sums[i]! });
        values.push({ metricName: `${name}_count`, labels, value: count });
      }
    }
    return { name, help, type: 'histogram', aggregator: 'sum', values };
  };
  return { name, help, type: 'histogram', aggregator: 'sum', get: async () => read(), reset: () => {} };
}

export function createProxyMetrics(options: ProxyMetricsOptions = {}): ProxyMetrics {
  const maxReleases = Math.max(1, Math.floor(options.maxReleases ?? 8));
  const registry = new Registry();
  if (options.processMetrics ?? true) {
    const prefix = 'changelens_proxy_';
    collectDefaultMetrics({ register: registry, prefix });
    // prom-client exports these three as gauges named *_total, which promtool's lint rejects
    // (non-counter metrics should not have "_total" suffix); each is the sum of the labelled
    // gauge of the same name without the suffix, so nothing is lost.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(prefix + name);
  }

  const releases = new Map<string, ReleaseSeries>();
  registry.registerMetric(requestDurationMetric(releases) as unknown as Parameters<Registry['registerMetric']>[0]);
  const jobDuration = new Histogram({
    name: 'changelens_job_duration_seconds',
    help: 'Jobs from enqueue to the end of an attempt, by the colour whose worker ran it and the outcome (completed, failed: retried, dead: dead-lettered).',
    labelNames: ['color', 'outcome'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  const candidateWeight = new Gauge({
    name: 'changelens_rollout_candidate_weight',
    help: 'Share of traffic (0-1) routed to the candidate colour of the current rollout.',
    registers: [registry],
  });
  const active = new Gauge({
    name: 'changelens_rollout_active',
    help: '1 for the active (stable) API colour, 0 for the other.',
    labelNames: ['color'] as const,
    registers: [registry],
  });
  const phase = new Gauge({
    name: 'changelens_rollout_phase',
    help: 'Phase of the current or last deployment: 1 for that phase, 0 for the others (none: no deployment).',
    labelNames: ['phase'] as const,
    registers: [registry],
  });
  const verdicts = new Counter({
    name: 'changelens_verdicts_total',
    help: 'Canary analysis window verdicts, by verdict.',
    labelNames: ['verdict'] as const,
    registers: [registry],
  });
  const rollbacks = new Counter({
    name: 'changelens_rollbacks_total',
    help: 'Rollbacks, by what triggered them (judge: failing windows, trip: a run of 5xx or a crash, operator, restart).',
    labelNames: ['trigger'] as const,
    registers: [registry],
  });
  // Every series exists from the start at 0, so the first rollback (or verdict) is an increase a
  // rate() or an alert sees, not a series born at 1.
  for (const trigger of ['judge', 'trip', 'operator', 'restart']) rollbacks.inc({ trigger }, 0);
  for (const verdict of ['pass', 'fail', 'insufficient']) verdicts.inc({ verdict }, 0);

  const ruleFirings = new Counter({
    name: 'changelens_monitor_firings_total',
    help: 'Monitor rule firings (actions taken), by rule; from the supervisor at scrape time.',
    labelNames: ['rule'] as const,
    registers: [registry],
  });
  const ruleHolding = new Gauge({
    name: 'changelens_monitor_rule_holding',
    help: '1 while a monitor rule\'s condition holds (firing or waiting out its duration), by rule.',
    labelNames: ['rule'] as const,
    registers: [registry],
  });
  const seenFirings = new Map<string, number>();
  const processUp = new Gauge({
    name: 'changelens_process_up',
    help: 'Each process the supervisor runs that should be running: 1 when all its instances are online, 0 when not; from the supervisor at scrape time.',
    labelNames: ['process'] as const,
    registers: [registry],
  });
  const backupGauge = (name: string, help: string) => new Gauge({ name, help, labelNames: ['kind'] as const, registers: [registry] });
  const backupAge = backupGauge('changelens_backup_age_seconds', 'Age of the newest good backup, by kind (postgres, redis); from the supervisor at scrape time.');
  const backupSize = backupGauge('changelens_backup_size_bytes', 'Size of the newest good backup, by kind.');
  const backupDuration = backupGauge('changelens_backup_duration_seconds', 'How long the newest good backup took, by kind.');
  const backupVerified = backupGauge('changelens_backup_verified', 'Newest backup of the kind: 1 verified good, 0 failed verification, -1 not verified yet.');
  const backupOverdue = backupGauge('changelens_backup_overdue', '1 when the newest good backup of the kind is older than its schedule allows.');
  const retriedOnStable = new Counter({
    name: 'changelens_retried_on_stable_total',
    help: 'Idempotent requests the candidate could not take (connection refused or reset) that the stable colour answered, by the colour that failed.',
    labelNames: ['from'] as const,
    registers: [registry],
  });

  const held = new Counter({
    name: 'changelens_held_requests_total',
    help: 'Idempotent requests (GET, HEAD, OPTIONS without a body) whose colour could not be reached (a crash, pm2 restarting it), held and re-sent to it for up to 5 s, by colour.',
    labelNames: ['color'] as const,
    registers: [registry],
  });
  const previews = new Counter({
    name: 'changelens_preview_requests_total',
    help: 'Requests pinned to a colour with a preview credential (x-changelens-color): served, counted here, never judged, by colour and status class.',
    labelNames: ['color', 'code_class'] as const,
    registers: [registry],
  });
  const mirrored = new Counter({
    name: 'changelens_mirrored_requests_total',
    help: 'Answers to copies of live requests and synthetic warm-up requests, which no client saw (not in changelens_request_duration_seconds), by colour, purpose (warmup, analysis) and status class (5xx: also no answer).',
    labelNames: ['color', 'purpose', 'code_class'] as const,
    registers: [registry],
  });
  const mirrorSkipped = new Counter({
    name: 'changelens_mirror_skipped_total',
    help: 'Copies the mirror did not send: over CHANGELENS_MIRROR_MAX_RPS (rate) or too many in flight to the colour (in_flight).',
    labelNames: ['color', 'reason'] as const,
    registers: [registry],
  });

  // Series that exist from the start, so rate() and alerts see a 0 before the first event.
  for (const v of ['pass', 'fail', 'insufficient']) verdicts.inc({ verdict: v }, 0);
  for (const t of ['judge', 'operator', 'restart']) rollbacks.inc({ trigger: t }, 0);
  const phases = new Set(ROLLOUT_PHASES);
  const setPhase = (current: string): void => {
    phases.add(current);
    for (const p of phases) phase.set({ phase: p }, p === current ? 1 : 0);
  };
  setPhase('none');
  candidateWeight.set(0);

  let tick = 0;

  const forgetRelease = (release: string): void => {
    releases.delete(release);
  };

  const seriesFor = (release: string): ReleaseSeries => {
    if (releases.size >= maxReleases) {
      let oldest: string | undefined;
      let oldestTick = Infinity;
      for (const [name, s] of releases) if (s.lastUsed < oldestTick) { oldest = name; oldestTick = s.lastUsed; }
      if (oldest !== undefined) forgetRelease(oldest);
    }
    const series: ReleaseSeries = { buckets: new Float64Array(SERIES * SLOTS), sums: new Float64Array(SERIES), counts: new Float64Array(SERIES), lastUsed: tick };
    releases.set(release, series);
    return series;
  };

  return {
    observeRequest(color, release, latencyMs, statusCode) {
      const series = releases.get(release) ?? seriesFor(release);
      series.lastUsed = ++tick;
      const i = (color === 'green' ? 4 : 0) + classIndex(statusCode);
      // A clock oddity must never fail a request or poison the sum: NaN and negatives count as 0,
      // anything beyond an hour as an hour.
      const seconds = latencyMs > 0 ? Math.min(latencyMs, 3_600_000) / 1000 : 0;
      let b = 0;
      while (b < SLOTS - 1 && seconds > REQUEST_DURATION_BUCKETS[b]!) b++;
      series.buckets[i * SLOTS + b]!++;
      series.sums[i]! += seconds;
      series.counts[i]!++;
    },

    forgetRelease,

    setRollout(s) {
      const w = s.candidateWeight;
      candidateWeight.set(w > 0 ? Math.min(1, w) : 0);
      for (const c of COLORS) active.set({ color: c }, c === s.activeColor ? 1 : 0);
      setPhase(s.phase ?? 'none');
    },

    countVerdict(verdict) {
      verdicts.inc({ verdict });
    },

    countRollback(trigger) {
      rollbacks.inc({ trigger });
    },

    countRetryOnStable(from) {
      retriedOnStable.inc({ from });
    },

    countHeld(color) {
      held.inc({ color });
    },

    observeJob(color, outcome, latencyMs) {
      jobDuration.observe({ color, outcome }, latencyMs > 0 ? Math.min(latencyMs, 3_600_000) / 1000 : 0);
    },

    countPreview(color, statusCode) {
      previews.inc({ color, code_class: CODE_CLASSES[classIndex(statusCode)]! });
    },

    countMirrored(color, purpose, statusCode) {
      mirrored.inc({ color, purpose, code_class: CODE_CLASSES[classIndex(statusCode)]! });
    },

    countMirrorSkipped(color, reason) {
      mirrorSkipped.inc({ color, reason });
    },

    setProcesses(list) {
      processUp.reset();
      for (const p of list) if (p.expected) processUp.set({ process: p.name }, p.online ? 1 : 0);
    },

    setMonitor(m) {
      for (const [rule, total] of Object.entries(m.firings)) {
        const seen = seenFirings.get(rule) ?? 0;
        // A restarted supervisor counts from 0 again: a counter only goes up, by what is new.
        ruleFirings.inc({ rule }, total >= seen ? total - seen : total);
        seenFirings.set(rule, total);
      }
      for (const rule of m.rules) {
        // Every rule's counter exists from the start (at 0): its first firing is then an increase.
        if (!seenFirings.has(rule)) {
          ruleFirings.inc({ rule }, 0);
          seenFirings.set(rule, m.firings[rule] ?? 0);
        }
        ruleHolding.set({ rule }, m.holding.includes(rule) ? 1 : 0);
      }
    },

    setBackups(b) {
      for (const kind of b.kinds) {
        const last = b.last[kind];
        backupOverdue.set({ kind }, b.overdue.includes(kind) ? 1 : 0);
        if (!last) continue;
        backupAge.set({ kind }, last.ageSeconds);
        backupSize.set({ kind }, last.bytes);
        backupDuration.set({ kind }, last.durationMs / 1000);
        backupVerified.set({ kind }, last.verified === null ? -1 : last.verified ? 1 : 0);
      }
    },

    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
