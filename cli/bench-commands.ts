// `changelens bench load|k6`: the open-model load generator against the appliance (or another
// loopback target), and the same load written as a k6 script.
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig } from '../lib/config.js';
import { CL_ERR_CLI_USAGE, EXIT } from '../lib/errors.js';
// bench/ (undici, HdrHistogram, resvg) is loaded by the commands that use it, not by every command.
import type { Endpoint, LoadPlan } from '../bench/loadgen.js';
import { adminClient } from './admin-client.js';
import { parse } from './args.js';

export const BENCH_USAGE = `  changelens bench run --scenario none|cpu|db|dependency|errors|worker-errors --strategy direct|bluegreen|canary
                      [--intensity X] [--rate 100] [--duration 60] [--out DIR] [--boot] [--url URL] [--json]
                                           one benchmark run: baseline, deploy a regressed release, rollback or
                                           promotion, recovery; writes timeseries.csv, summary.json, P99 and error charts
  changelens bench matrix [--scenarios errors,dependency,cpu] [--strategies canary,bluegreen,direct] [--repetitions 1]
                          [--rate 100] [--duration 60] [--out DIR] [--boot] [--url URL] [--json]
                                           every scenario × strategy × repetition, and report.html comparing them
  changelens bench load [--rate 100] [--duration 30] [--ramp 0] [--mix GET:/api/data:8,POST:/api/process:1]
                       [--processes 1] [--max-requests N] [--target URL] [--allow-remote] [--json]
                                           open-model load (latency from each request's intended send time)
  changelens bench k6 [same plan options] [--out FILE]
                                           the same load as a k6 script (constant-arrival-rate)`;

const planOptions = {
  rate: { type: 'string' }, duration: { type: 'string' }, ramp: { type: 'string' }, mix: { type: 'string' }, target: { type: 'string' },
  config: { type: 'string' }, json: { type: 'boolean' },
} as const;

export const DEMO_USAGE = `  changelens demo [--scenario errors|cpu|db|dependency] [--strategy canary|bluegreen] [--rate 50] [--out DIR] [--url URL]
                                           load, a bad release, and the automatic rollback to watch on the dashboard
                                           (charts and numbers: --out, or the data dir's reports/, or the temp dir)`;

export const benchCommands: Record<string, (args: string[]) => Promise<number>> = {
  /** On a running appliance: load, a bad release, and the rollback, with where to watch it. */
  async demo(args) {
    const { values, positionals } = parse(args, { scenario: { type: 'string' }, strategy: { type: 'string' }, rate: { type: 'string' }, out: { type: 'string' }, url: { type: 'string' }, config: { type: 'string' }, json: { type: 'boolean' } }, true);
    if (positionals.length > 0) throw new CL_ERR_CLI_USAGE('usage: changelens demo [--scenario errors] [--strategy canary] [--rate 50] [--out DIR] [--url URL]');
    const { runScenario } = await import('../bench/scenario.js');
    const [scenario] = listOf('scenario', values.scenario ?? 'errors', ['errors', 'cpu', 'db', 'dependency'] as const);
    const [strategy] = listOf('strategy', values.strategy ?? 'canary', ['canary', 'bluegreen'] as const);
    const config = loadConfig({ file: values.config });
    const client = adminClient(config, { url: values.url });
    const origin = client.base.replace(/\/_changelens$/, '');
    const out = outDir(values.out, 'changelens-demo', () => config.dataDir);
    if (!values.json) process.stdout.write(`Watch it on the dashboard: ${origin}/_changelens/ (sign in with the admin token)\n`
      + `Load at ${values.rate ?? 50} req/s, then a release with the ${scenario} regression goes out as a ${strategy}; ChangeLens should roll it back by itself.\n`);
    const summary = await runScenario({ url: origin, token: client.token(), scenario: scenario!, strategy: strategy!, rate: number('rate', values.rate, 50, 1, 2_000), durationSeconds: 120, baselineSeconds: 10, recoverySeconds: 10, out, onProgress: values.json ? undefined : (l) => process.stdout.write(`  ${l}\n`) });
    process.stdout.write(values.json ? JSON.stringify({ out, summary }, null, 2) + '\n'
      : `${summary.outcome === 'rolled_back' ? `Rolled back ${summary.timeToDetectMs} ms after the bad release took its first request; it served ${summary.badRequests} requests.` : `Outcome: ${summary.outcome}.`}\n`
        + `Charts and numbers: ${out}/ (p99.png, errors.png, summary.json); the audit log: changelens audit --since 10m\n`);
    return summary.outcome === 'rolled_back' ? EXIT.ok : EXIT.failure;
  },
  async bench(args) {
    const [sub, ...rest] = args;
    if (sub === 'load') return load(rest);
    if (sub === 'k6') return k6(rest);
    if (sub === 'run' || sub === 'matrix') return scenarioRuns(sub, rest);
    throw new CL_ERR_CLI_USAGE(`usage: changelens bench run|matrix|load|k6 [options] (got ${sub === undefined ? 'nothing' : JSON.stringify(sub)})`);
  },
};

/**
 * Where a command writes its files: --out, else a fresh folder under the data dir's reports/ when
 * this user may write there, else a fresh private one under the temp dir — never the working
 * directory, which in the image is /app and not the service user's.
 */
function outDir(given: string | undefined, prefix: string, dataDir: () => string | undefined): string {
  if (given !== undefined) {
    if (given.trim() === '') throw new CL_ERR_CLI_USAGE('--out: expected a directory path, got ""');
    return resolve(given);
  }
  const name = `${prefix}-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  const root = dataDir();
  if (root !== undefined && existsSync(root)) {
    try {
      const reports = join(root, 'reports');
      mkdirSync(reports, { recursive: true });
      accessSync(reports, constants.W_OK);
      return join(reports, name);
    } catch {
      // Not ours to write (a root-owned data dir read by an operator's account): the temp dir.
    }
  }
  return mkdtempSync(join(tmpdir(), `${name}-`));
}

function number(flag: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || n < min || n > max) throw new CL_ERR_CLI_USAGE(`--${flag}: expected a number ${min}-${max}, got ${JSON.stringify(value)}`);
  return n;
}

async function planFrom(values: { rate?: string; duration?: string; ramp?: string; mix?: string; target?: string; config?: string }): Promise<LoadPlan> {
  const { DEFAULT_MIX, parseMix } = await import('../bench/k6.js');
  let mix: readonly Endpoint[] = DEFAULT_MIX;
  if (values.mix !== undefined) {
    const parsed = parseMix(values.mix);
    if ('error' in parsed) throw new CL_ERR_CLI_USAGE(parsed.error);
    mix = parsed;
  }
  const target = values.target ?? `http://127.0.0.1:${loadConfig({ file: values.config }).port}`;
  if (!/^https?:\/\/[^/\s]+\/?$/.test(target)) throw new CL_ERR_CLI_USAGE(`--target: expected an origin like http://127.0.0.1:8080, got ${JSON.stringify(target)}`);
  return {
    target: target.replace(/\/$/, ''), mix,
    rate: number('rate', values.rate, 100, 0.1, 1_000_000),
    durationSeconds: number('duration', values.duration, 30, 1, 86_400),
    rampSeconds: number('ramp', values.ramp, 0, 0, 86_400),
  };
}

async function load(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...planOptions, processes: { type: 'string' }, 'max-requests': { type: 'string' }, 'allow-remote': { type: 'boolean' } }, true);
  if (positionals.length > 0) throw new CL_ERR_CLI_USAGE('usage: changelens bench load [options] (changelens --help lists them)');
  const { checkPlan, runLoad } = await import('../bench/loadgen.js');
  const plan: LoadPlan = {
    ...(await planFrom(values)),
    processes: number('processes', values.processes, 1, 1, 64),
    ...(values['max-requests'] !== undefined ? { maxRequests: number('max-requests', values['max-requests'], 0, 1, 1e9) } : {}),
    allowRemote: values['allow-remote'] ?? false,
  };
  try {
    checkPlan(plan);
  } catch (err) {
    throw new CL_ERR_CLI_USAGE((err as Error).message);
  }
  if (!values.json) process.stderr.write(`${plan.rate} req/s for ${plan.durationSeconds} s against ${plan.target}…\n`);
  const r = await runLoad(plan);
  const { histograms: _h, ...shown } = r;
  const ms = (x: number): string => `${x.toFixed(2)} ms`;
  process.stdout.write(values.json ? JSON.stringify(shown, null, 2) + '\n'
    : `sent ${r.sent}, failed ${r.failed} (${Object.entries(r.statuses).map(([s, n]) => `${s}: ${n}`).join(', ')})\n`
      + `latency (from intended send)  P50 ${ms(r.latency.p50Ms)}  P95 ${ms(r.latency.p95Ms)}  P99 ${ms(r.latency.p99Ms)}  max ${ms(r.latency.maxMs)}\n`
      + `service time (from send)      P50 ${ms(r.serviceTime.p50Ms)}  P95 ${ms(r.serviceTime.p95Ms)}  P99 ${ms(r.serviceTime.p99Ms)}  max ${ms(r.serviceTime.maxMs)}\n`);
  return r.failed === 0 ? EXIT.ok : EXIT.failure;
}

async function k6(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...planOptions, out: { type: 'string' } }, true);
  if (positionals.length > 0) throw new CL_ERR_CLI_USAGE('usage: changelens bench k6 [options] [--out FILE]');
  const { k6Script } = await import('../bench/k6.js');
  const script = k6Script(await planFrom(values));
  if (values.out !== undefined) {
    writeFileSync(values.out, script);
    process.stdout.write(values.json ? JSON.stringify({ out: values.out }) + '\n' : `wrote ${values.out}; run it with: k6 run ${values.out}\n`);
  } else {
    process.stdout.write(values.json ? JSON.stringify({ script }) + '\n' : script);
  }
  return EXIT.ok;
}

const scenarioOptions = {
  scenario: { type: 'string' }, strategy: { type: 'string' }, intensity: { type: 'string' }, scenarios: { type: 'string' }, strategies: { type: 'string' },
  repetitions: { type: 'string' }, rate: { type: 'string' }, duration: { type: 'string' }, out: { type: 'string' }, boot: { type: 'boolean' },
  url: { type: 'string' }, config: { type: 'string' }, json: { type: 'boolean' },
} as const;

function listOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T[] {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = items.find((s) => !allowed.includes(s as T));
  if (bad !== undefined || items.length === 0) throw new CL_ERR_CLI_USAGE(`--${flag}: expected ${allowed.join(', ')} (comma-separated), got ${JSON.stringify(value)}`);
  return items as T[];
}

/** `bench run` and `bench matrix`: against the appliance found like every command's (or --url), or a throwaway one (--boot). */
async function scenarioRuns(kind: 'run' | 'matrix', args: string[]): Promise<number> {
  const { values, positionals } = parse(args, scenarioOptions, true);
  if (positionals.length > 0) throw new CL_ERR_CLI_USAGE(`usage: changelens bench ${kind} [options] (changelens --help lists them)`);
  const { SCENARIOS, STRATEGIES, comparison, runMatrix, runScenario } = await import('../bench/scenario.js');
  const rate = number('rate', values.rate, 100, 1, 5_000);
  const durationSeconds = number('duration', values.duration, 60, 5, 3_600);
  // --boot needs no configuration of this machine's: a bad one only moves the output to the temp dir.
  const out = outDir(values.out, 'changelens-bench', () => {
    try {
      return loadConfig({ file: values.config }).dataDir;
    } catch (err) {
      if (values.boot) return undefined;
      throw err;
    }
  });
  let scenario: (typeof SCENARIOS)[number] | undefined;
  let strategy: (typeof STRATEGIES)[number] | undefined;
  if (kind === 'run') {
    if (values.scenario === undefined || values.strategy === undefined) throw new CL_ERR_CLI_USAGE('bench run: --scenario and --strategy are required');
    [scenario] = listOf('scenario', values.scenario, SCENARIOS);
    [strategy] = listOf('strategy', values.strategy, STRATEGIES);
  }
  const intensity = values.intensity === undefined ? undefined : number('intensity', values.intensity, 0, 0.001, 100_000);
  const scenarios = kind === 'matrix' ? listOf('scenarios', values.scenarios ?? 'errors,dependency,cpu', SCENARIOS) : [];
  const strategies = kind === 'matrix' ? listOf('strategies', values.strategies ?? 'canary,bluegreen,direct', STRATEGIES) : [];
  const repetitions = number('repetitions', values.repetitions, 1, 1, 100);

  let target: { url: string; token: string; close: () => Promise<void> };
  if (values.boot) {
    const { launchAppliance } = await import('../bench/harness.js');
    const { reapOrphans } = await import('../supervisor/index.js');
    process.stderr.write('booting a throwaway appliance…\n');
    const app = await launchAppliance({ env: { CHANGELENS_SEED_ITEMS: '2000', CHANGELENS_MONITOR_RULES: '[]', CHANGELENS_INSPECT_SECONDS: '0', CHANGELENS_KEEP_WARM_SECONDS: '0', CHANGELENS_BACKUP_PG_SCHEDULE: 'off', CHANGELENS_BACKUP_REDIS_SCHEDULE: 'off' } });
    await app.ready;
    target = { url: app.url, token: app.secrets().adminToken, close: async () => { await app.stop('SIGTERM'); await reapOrphans(join(app.dataDir, 'state', 'pm2')); } };
  } else {
    const client = adminClient(loadConfig({ file: values.config }), { url: values.url });
    target = { url: client.base.replace(/\/_changelens$/, ''), token: client.token(), close: async () => {} };
  }
  try {
    const common = { url: target.url, token: target.token, rate, durationSeconds, ...(intensity !== undefined ? { intensity } : {}), onProgress: values.json ? undefined : (l: string) => process.stderr.write(`${l}\n`) };
    if (kind === 'run') {
      const summary = await runScenario({ ...common, scenario: scenario!, strategy: strategy!, out });
      process.stdout.write(values.json ? JSON.stringify({ out, summary }, null, 2) + '\n'
        : `${summary.outcome}: detect ${summary.timeToDetectMs ?? '–'} ms, rollback ${summary.timeToRollbackMs ?? '–'} ms, bad requests ${summary.badRequests}, bad jobs ${summary.badJobs}, failed ${summary.failedRequests}, worst P99 ${summary.worstP99Ms.toFixed(1)} ms\nwrote ${out}/ (timeseries.csv, summary.json, p99.svg/png, errors.svg/png)\n`);
    } else {
      const runs = await runMatrix({ ...common, scenarios, strategies, repetitions, out });
      process.stdout.write(values.json ? JSON.stringify({ out, runs, comparison: comparison(runs) }, null, 2) + '\n'
        : comparison(runs).map((c) => `${c.scenario.padEnd(14)} ${c.strategy.padEnd(10)} detect ${String(c.detectMs ?? '–').padStart(6)} ms  rollback ${String(c.rollbackMs ?? '–').padStart(6)} ms  bad ${String(c.badRequests).padStart(5)}  bad jobs ${String(c.badJobs).padStart(4)}  failed ${String(c.failedRequests).padStart(5)}  worst P99 ${c.worstP99Ms.toFixed(1)} ms`).join('\n') + `\nreport: ${join(out, 'report.html')}\n`);
    }
  } finally {
    await target.close();
  }
  return EXIT.ok;
}
