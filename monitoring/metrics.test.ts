// The proxy's Prometheus exposition: what Prometheus would scrape passes promtool's parser and lint
// (promtool comes from `scripts/install-system-deps.sh --test`), and the values read back from the
// text are the requests, rollout states and events that were recorded.
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { Histogram, register as globalRegistry, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createProxyMetrics, REQUEST_DURATION_BUCKETS, ROLLOUT_PHASES } from './metrics.js';

interface Sample { name: string; labels: Record<string, string>; value: number }

/** A small parser of the text format (one sample a line; label values unescaped). */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const raw = m[3]!;
    samples.push({ name: m[1]!, labels, value: raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw) });
  }
  return samples;
}

/** The samples of `name` whose labels include all of `match`. */
const select = (samples: Sample[], name: string, match: Record<string, string> = {}): Sample[] =>
  samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));

/** The one sample of `name` with exactly these labels. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = select(samples, name, labels).filter((s) => Object.keys(s.labels).length === Object.keys(labels).length);
  expect(found, `${name}${JSON.stringify(labels)}`).toHaveLength(1);
  return found[0]!.value;
}

/** `promtool check metrics` on the text: must exist, accept it, and have nothing to say. */
function promtool(body: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8', timeout: 30_000 });
  if (r.error) {
    throw new Error(`promtool could not be run (${r.error.message}): install the test dependencies with scripts/install-system-deps.sh --test`);
  }
  return { status: r.status, output: (r.stdout + r.stderr).trim() };
}

/** The histogram of one series read back: cumulative bucket counts by bound, count and sum. */
function histogram(samples: Sample[], labels: Record<string, string>) {
  const buckets = new Map(select(samples, 'changelens_request_duration_seconds_bucket', labels).map((s) => [Number(s.labels.le === '+Inf' ? Infinity : s.labels.le), s.value]));
  return {
    buckets,
    count: value(samples, 'changelens_request_duration_seconds_count', labels),
    sum: value(samples, 'changelens_request_duration_seconds_sum', labels),
  };
}

/** The cumulative counts expected for these latencies (ms) over the configured buckets. */
const cumulative = (latenciesMs: number[]): Map<number, number> =>
  new Map([...REQUEST_DURATION_BUCKETS, Infinity].map((le) => [le, latenciesMs.filter((ms) => ms / 1000 <= le).length]));

describe('createProxyMetrics: the exposition', () => {
  it('is accepted by promtool without a single lint remark, process metrics included', async () => {
    const m = createProxyMetrics();
    m.observeRequest('blue', 'v1', 4, 200);
    m.observeRequest('green', 'v2', 120, 503);
    m.setRollout({ deploymentId: 'd-1', phase: 'shifting', candidateColor: 'green', candidateWeight: 0.1, activeColor: 'blue' });
    m.countVerdict('fail');
    m.countRollback('judge');
    const { contentType, body } = await m.render();
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const check = promtool(body);
    expect(check.output, 'promtool check metrics said something').toBe('');
    expect(check.status).toBe(0);
    // The default process metrics are there, all under the proxy's prefix.
    const names = new Set(parse(body).map((s) => s.name));
    for (const n of ['changelens_proxy_process_cpu_seconds_total', 'changelens_proxy_process_resident_memory_bytes', 'changelens_proxy_nodejs_eventloop_lag_p99_seconds', 'changelens_proxy_nodejs_heap_size_used_bytes']) {
      expect(names, n).toContain(n);
    }
    for (const n of names) expect(n, n).toMatch(/^changelens_/);
  });

  it('promtool really lints: a gauge named *_total is reported', () => {
    const bad = '# HELP x_total a gauge\n# TYPE x_total gauge\nx_total 1\n';
    const check = promtool(bad);
    expect(check.output).toMatch(/_total/);
  });

  it('uses its own registry: nothing in prom-client\'s global one, two instances are independent', async () => {
    const a = createProxyMetrics({ processMetrics: false });
    const b = createProxyMetrics({ processMetrics: false });
    a.observeRequest('blue', 'v1', 1, 200);
    a.countVerdict('pass');
    expect(await globalRegistry.metrics()).not.toContain('changelens_');
    const sb = parse((await b.render()).body);
    expect(select(sb, 'changelens_request_duration_seconds_count')).toEqual([]);
    expect(value(sb, 'changelens_verdicts_total', { verdict: 'pass' })).toBe(0);
    expect(parse((await b.render()).body).some((s) => s.name.startsWith('changelens_proxy_'))).toBe(false);
  });
});

describe('observeRequest', () => {
  it('counts each request in its colour, release and status class, in the right buckets', async () => {
    const m = createProxyMetrics();
    const blueOk = [0.3, 0.5, 4, 4, 7.5, 9.99, 1_000];
    for (const ms of blueOk) m.observeRequest('blue', 'v1', ms, 200);
    m.observeRequest('blue', 'v1', 2, 101); // an upgrade is a success
    m.observeRequest('blue', 'v1', 12, 404);
    m.observeRequest('blue', 'v1', 3, 302);
    m.observeRequest('green', 'v2', 250, 503);
    m.observeRequest('green', 'v2', 20_000, 500); // beyond the last bound: only +Inf
    m.observeRequest('green', 'v2', 1, 0); // no status (aborted): a failure
    m.observeRequest('green', 'v2', 5, 201);
    const { body } = await m.render();
    expect(promtool(body)).toEqual({ status: 0, output: '' });
    const s = parse(body);

    const blue2xx = histogram(s, { color: 'blue', release: 'v1', code_class: '2xx' });
    expect(blue2xx.buckets).toEqual(cumulative([...blueOk, 2]));
    expect(blue2xx.count).toBe(blueOk.length + 1);
    expect(blue2xx.sum).toBeCloseTo((blueOk.reduce((a, b) => a + b, 0) + 2) / 1000, 9);
    expect(blue2xx.buckets.get(0.0005)).toBe(2); // 0.3 ms and exactly 0.5 ms (le is inclusive)
    expect(blue2xx.buckets.get(0.005)).toBe(5); // 0.3, 0.5, 2, 4, 4

    expect(histogram(s, { color: 'blue', release: 'v1', code_class: '4xx' }).buckets).toEqual(cumulative([12]));
    expect(histogram(s, { color: 'blue', release: 'v1', code_class: '3xx' }).count).toBe(1);
    const green5xx = histogram(s, { color: 'green', release: 'v2', code_class: '5xx' });
    expect(green5xx.buckets).toEqual(cumulative([250, 20_000, 1]));
    expect(green5xx.buckets.get(10)).toBe(2);
    expect(green5xx.buckets.get(Infinity)).toBe(3);
    expect(green5xx.sum).toBeCloseTo(20.251, 9);
    expect(histogram(s, { color: 'green', release: 'v2', code_class: '2xx' }).count).toBe(1);

    // Only the series that saw requests exist (no blue v2, no green v1, no 5xx for blue).
    const series = new Set(select(s, 'changelens_request_duration_seconds_count').map((x) => `${x.labels.color}/${x.labels.release}/${x.labels.code_class}`));
    expect([...series].sort()).toEqual(['blue/v1/2xx', 'blue/v1/3xx', 'blue/v1/4xx', 'green/v2/2xx', 'green/v2/5xx']);
    // Every series has all the buckets, 0.5 ms to 10 s, plus +Inf.
    for (const key of series) {
      const [color, release, code_class] = key.split('/') as [string, string, string];
      expect([...histogram(s, { color, release, code_class }).buckets.keys()].sort((a, b) => a - b)).toEqual([...REQUEST_DURATION_BUCKETS, Infinity]);
    }
  });

  it('never throws on odd values: NaN and negative latencies count as 0, infinite as an hour', async () => {
    const m = createProxyMetrics({ processMetrics: false });
    m.observeRequest('blue', 'v1', Number.NaN, 200);
    m.observeRequest('blue', 'v1', -5, 200);
    m.observeRequest('blue', 'v1', Infinity, 200);
    const s = parse((await m.render()).body);
    const h = histogram(s, { color: 'blue', release: 'v1', code_class: '2xx' });
    expect(h.count).toBe(3);
    expect(h.buckets.get(0.0005)).toBe(2);
    expect(h.sum).toBe(3600);
  });

  it('keeps release names that need escaping intact, and promtool accepts them', async () => {
    const m = createProxyMetrics({ processMetrics: false });
    const odd = 'v2 "quoted" back\\slash\nnewline';
    m.observeRequest('green', odd, 3, 200);
    const { body } = await m.render();
    expect(promtool(body)).toEqual({ status: 0, output: '' });
    expect(histogram(parse(body), { color: 'green', release: odd, code_class: '2xx' }).count).toBe(1);
  });

  it('forgetRelease removes every series of that release and only those; observing it again starts from 0', async () => {
    const m = createProxyMetrics({ processMetrics: false });
    for (const color of ['blue', 'green'] as const) {
      m.observeRequest(color, 'old', 5, 200);
      m.observeRequest(color, 'old', 5, 500);
      m.observeRequest(color, 'new', 5, 200);
    }
    m.forgetRelease('old');
    m.forgetRelease('never-seen');
    let s = parse((await m.render()).body);
    expect(select(s, 'changelens_request_duration_seconds_bucket', { release: 'old' })).toEqual([]);
    expect(select(s, 'changelens_request_duration_seconds_count', { release: 'new' })).toHaveLength(2);
    m.observeRequest('blue', 'old', 5, 200);
    s = parse((await m.render()).body);
    expect(value(s, 'changelens_request_duration_seconds_count', { color: 'blue', release: 'old', code_class: '2xx' })).toBe(1);
  });

  it('keeps at most maxReleases releases, dropping the least recently observed', async () => {
    const m = createProxyMetrics({ processMetrics: false, maxReleases: 2 });
    m.observeRequest('blue', 'r1', 1, 200);
    m.observeRequest('green', 'r2', 1, 200);
    m.observeRequest('blue', 'r1', 1, 200); // r1 is now the more recent
    m.observeRequest('green', 'r3', 1, 200); // evicts r2
    const s = parse((await m.render()).body);
    const releases = new Set(select(s, 'changelens_request_duration_seconds_count').map((x) => x.labels.release));
    expect([...releases].sort()).toEqual(['r1', 'r3']);
    expect(value(s, 'changelens_request_duration_seconds_count', { color: 'blue', release: 'r1', code_class: '2xx' })).toBe(2);
  });
});

describe('setRollout, countVerdict, countRollback', () => {
  it('starts with no deployment: phase none, weight 0, counters at 0 for the known values', async () => {
    const s = parse((await createProxyMetrics({ processMetrics: false }).render()).body);
    expect(value(s, 'changelens_rollout_phase', { phase: 'none' })).toBe(1);
    expect(select(s, 'changelens_rollout_phase').filter((x) => x.value === 1)).toHaveLength(1);
    expect(value(s, 'changelens_rollout_candidate_weight')).toBe(0);
    for (const verdict of ['pass', 'fail', 'insufficient']) expect(value(s, 'changelens_verdicts_total', { verdict })).toBe(0);
    for (const trigger of ['judge', 'operator', 'restart']) expect(value(s, 'changelens_rollbacks_total', { trigger })).toBe(0);
  });

  it('reflects the last rollout state: weight, active colour, exactly one phase at 1', async () => {
    const m = createProxyMetrics();
    const phaseOf = (s: Sample[]) => select(s, 'changelens_rollout_phase').filter((x) => x.value === 1).map((x) => x.labels.phase);

    m.setRollout({ deploymentId: 'd-1', phase: 'shifting', candidateColor: 'green', candidateWeight: 0.25, activeColor: 'blue' });
    let body = (await m.render()).body;
    expect(promtool(body)).toEqual({ status: 0, output: '' });
    let s = parse(body);
    expect(value(s, 'changelens_rollout_candidate_weight')).toBe(0.25);
    expect(value(s, 'changelens_rollout_active', { color: 'blue' })).toBe(1);
    expect(value(s, 'changelens_rollout_active', { color: 'green' })).toBe(0);
    expect(phaseOf(s)).toEqual(['shifting']);
    expect(select(s, 'changelens_rollout_phase').map((x) => x.labels.phase).sort()).toEqual([...ROLLOUT_PHASES].sort());

    m.setRollout({ deploymentId: 'd-1', phase: 'promoted', candidateColor: null, candidateWeight: 0, activeColor: 'green' });
    s = parse((await m.render()).body);
    expect(value(s, 'changelens_rollout_candidate_weight')).toBe(0);
    expect(value(s, 'changelens_rollout_active', { color: 'blue' })).toBe(0);
    expect(value(s, 'changelens_rollout_active', { color: 'green' })).toBe(1);
    expect(phaseOf(s)).toEqual(['promoted']);

    m.setRollout({ deploymentId: null, phase: null, candidateColor: null, candidateWeight: 0, activeColor: 'green' });
    s = parse((await m.render()).body);
    expect(phaseOf(s)).toEqual(['none']);

    // A weight outside 0-1 is clamped.
    m.setRollout({ deploymentId: 'd-2', phase: 'shifting', candidateColor: 'blue', candidateWeight: 1.7, activeColor: 'green' });
    expect(value(parse((await m.render()).body), 'changelens_rollout_candidate_weight')).toBe(1);
    m.setRollout({ deploymentId: 'd-2', phase: 'shifting', candidateColor: 'blue', candidateWeight: Number.NaN, activeColor: 'green' });
    body = (await m.render()).body;
    expect(value(parse(body), 'changelens_rollout_candidate_weight')).toBe(0);
    expect(promtool(body)).toEqual({ status: 0, output: '' });
  });

  it('counts verdicts and rollbacks by label, including a trigger it did not know', async () => {
    const m = createProxyMetrics({ processMetrics: false });
    m.countVerdict('pass');
    m.countVerdict('pass');
    m.countVerdict('fail');
    m.countVerdict('insufficient');
    m.countRollback('judge');
    m.countRollback('operator');
    m.countRollback('operator');
    m.countRollback('webhook');
    const { body } = await m.render();
    expect(promtool(body)).toEqual({ status: 0, output: '' });
    const s = parse(body);
    expect(value(s, 'changelens_verdicts_total', { verdict: 'pass' })).toBe(2);
    expect(value(s, 'changelens_verdicts_total', { verdict: 'fail' })).toBe(1);
    expect(value(s, 'changelens_verdicts_total', { verdict: 'insufficient' })).toBe(1);
    expect(value(s, 'changelens_rollbacks_total', { trigger: 'judge' })).toBe(1);
    expect(value(s, 'changelens_rollbacks_total', { trigger: 'operator' })).toBe(2);
    expect(value(s, 'changelens_rollbacks_total', { trigger: 'restart' })).toBe(0);
    expect(value(s, 'changelens_rollbacks_total', { trigger: 'webhook' })).toBe(1);
  });
});

describe('setMonitor', () => {
  it('turns the supervisor\'s cumulative firings into a counter that only goes up, across a supervisor restart', async () => {
    const m = createProxyMetrics({ processMetrics: false });
    const firings = async () => value(parse((await m.render()).body), 'changelens_monitor_firings_total', { rule: 'cpu-high' });
    m.setMonitor({ firings: { 'cpu-high': 2 }, rules: ['cpu-high', 'disk-full'], holding: ['cpu-high'] });
    expect(await firings()).toBe(2);
    m.setMonitor({ firings: { 'cpu-high': 3 }, rules: ['cpu-high', 'disk-full'], holding: [] });
    expect(await firings()).toBe(3);
    // The supervisor restarted and counts from 0: 1 new firing, the counter never goes down.
    m.setMonitor({ firings: { 'cpu-high': 1 }, rules: ['cpu-high', 'disk-full'], holding: ['disk-full'] });
    expect(await firings()).toBe(4);
    const samples = parse((await m.render()).body);
    expect(value(samples, 'changelens_monitor_rule_holding', { rule: 'cpu-high' })).toBe(0);
    expect(value(samples, 'changelens_monitor_rule_holding', { rule: 'disk-full' })).toBe(1);
    expect(promtool((await m.render()).body).status).toBe(0);
  });
});

describe('changelens_request_duration_seconds, kept as a plain table and rendered at scrape time', () => {
  it('renders exactly what prom-client\'s own histogram renders for the same requests', async () => {
    const request = fc.record({
      color: fc.constantFrom('blue' as const, 'green' as const),
      release: fc.constantFrom('r1', 'r"2\\', 'r3'),
      // Bucket bounds themselves, values between them, beyond the last, zero, and clock oddities.
      latencyMs: fc.oneof(fc.constantFrom(...REQUEST_DURATION_BUCKETS.map((b) => b * 1000), 0, -1, Number.NaN, 1e9), fc.double({ min: 0, max: 20_000, noNaN: true })),
      statusCode: fc.constantFrom(0, 101, 200, 204, 301, 404, 499, 500, 503, 600),
    });
    await fc.assert(fc.asyncProperty(fc.array(request, { maxLength: 60 }), async (requests) => {
      const ours = createProxyMetrics({ processMetrics: false });
      const registry = new Registry();
      const reference = new Histogram({ name: 'changelens_request_duration_seconds', help: 'x', labelNames: ['color', 'release', 'code_class'] as const, buckets: [...REQUEST_DURATION_BUCKETS], registers: [registry] });
      const codeClass = (s: number): string => (s < 300 ? (s >= 100 ? '2xx' : '5xx') : s < 400 ? '3xx' : s < 500 ? '4xx' : '5xx');
      for (const r of requests) {
        ours.observeRequest(r.color, r.release, r.latencyMs, r.statusCode);
        reference.observe({ color: r.color, release: r.release, code_class: codeClass(r.statusCode) }, r.latencyMs > 0 ? Math.min(r.latencyMs, 3_600_000) / 1000 : 0);
      }
      const samples = (text: string) => parse(text).filter((x) => x.name.startsWith('changelens_request_duration_seconds'))
        .map((x) => `${x.name}${JSON.stringify(Object.entries(x.labels).sort())} ${x.value}`).sort();
      const got = samples((await ours.render()).body);
      const want = samples(await registry.metrics());
      expect(got.length).toBe(want.length);
      got.forEach((line, i) => {
        // Sums may differ in the last bits (the order of additions is the same, but be safe).
        const [a, b] = [line, want[i]!].map((l) => l.slice(l.lastIndexOf(' ') + 1));
        expect(line.slice(0, line.lastIndexOf(' '))).toBe(want[i]!.slice(0, want[i]!.lastIndexOf(' ')));
        expect(Number(a)).toBeCloseTo(Number(b), 9);
      });
    }), { numRuns: 200 });
  });
});
