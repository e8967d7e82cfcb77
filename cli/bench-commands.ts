// `changelens demo` and `changelens bench run|matrix|load|k6`: the benchmark's scenario runs, the
// open-model load generator against the appliance (or another loopback target), and the same load
// written as a k6 script.
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { loadConfig } from '../lib/config.js';
import { CL_ERR_CLI_USAGE, EXIT } from '../lib/errors.js';
// bench/ (undici, HdrHistogram, resvg) is loaded by the commands that use it, not by every command.
import type { LoadPlan, LoadResult } from '../bench/loadgen.js';
import type { DistributedReport } from '../bench/distributed/client.js';
import type { JoinInfo } from '../bench/distributed/protocol.js';
import { adminClient } from './admin-client.js';
import { apiClient, examples, numberIn, usage, withApi, withConfig, withJson, write, type ApiOptions, type ConfigOptions } from './options.js';
import type { Act } from './command-tree.js';
import { registerLoadCommands } from './load-commands.js';
import { planFrom, withPlan, type PlanOptions } from './load-plan.js';
import { withProgress } from './progress.js';

export function registerBenchCommands(program: Command, act: Act): void {
  const demo = withApi(program.command('demo').description('on a running appliance: load, a bad release, and the automatic rollback to watch on the dashboard')
    .addOption(new Option('--scenario <name>', 'the regression the bad release carries').choices(['errors', 'cpu', 'db', 'dependency']).default('errors'))
    .addOption(new Option('-s, --strategy <name>', 'how it goes out').choices(['canary', 'bluegreen']).default('canary'))
    .addOption(new Option('-r, --rate <req/s>', 'the load while it runs (1-2000)').argParser(numberIn(1, 2_000)).default(50))
    .option('-o, --out <dir>', 'where the charts and numbers go (default: the data dir\'s reports/, else the temp dir)'));
  examples(demo, ['changelens demo', 'changelens demo --scenario cpu --strategy bluegreen']);
  demo.action(act(async (o: ApiOptions & { scenario: 'errors' | 'cpu' | 'db' | 'dependency'; strategy: 'canary' | 'bluegreen'; rate: number; out?: string }) => {
    const { runScenario } = await import('../bench/scenario.js');
    const config = loadConfig({ file: o.config });
    const client = adminClient(config, { url: o.url });
    const origin = client.base.replace(/\/_changelens$/, '');
    const out = outDir(o.out, 'changelens-demo', () => config.dataDir);
    if (!o.json) process.stdout.write(`Watch it on the dashboard: ${origin}/_changelens/ (sign in with the admin token), or run: changelens watch\n`
      + `Load at ${o.rate} req/s, then a release with the ${o.scenario} regression goes out as a ${o.strategy}; ChangeLens should roll it back by itself.\n`);
    const summary = await runScenario({ url: origin, token: client.token(), scenario: o.scenario, strategy: o.strategy, rate: o.rate, durationSeconds: 120, baselineSeconds: 10, recoverySeconds: 10, out, onProgress: o.json ? undefined : (l) => process.stdout.write(`  ${l}\n`) });
    write(o.json, { out, summary }, `${summary.outcome === 'rolled_back' ? `Rolled back ${summary.timeToDetectMs} ms after the bad release took its first request; it served ${summary.badRequests} requests.` : `Outcome: ${summary.outcome}.`}\n`
      + `Charts and numbers: ${out}/ (p99.png, errors.png, summary.json); the audit log: changelens audit --since 10m\n`);
    return summary.outcome === 'rolled_back' ? EXIT.ok : EXIT.failure;
  }));

  const bench = program.command('bench').description('the ChangeLens benchmark: regressions injected, detection and rollback measured; open-model load');
  const run = withScenario(bench.command('run').description('one benchmark run: baseline, deploy a regressed release, rollback or promotion, recovery; writes timeseries.csv, summary.json, P99 and error charts')
    .requiredOption('--scenario <name>', 'the regression: none, cpu, db, dependency, errors or worker-errors')
    .requiredOption('-s, --strategy <name>', 'direct, bluegreen or canary')
    .addOption(new Option('--intensity <x>', 'the regression\'s intensity (0.001-100000; default: the scenario\'s)').argParser(numberIn(0.001, 100_000))));
  examples(run, ['changelens bench run --scenario errors --strategy canary', 'changelens bench run --scenario cpu --strategy bluegreen --boot --out ./bench-out']);
  run.action(act(async (o: ScenarioOptions) => scenarioRuns('run', o)));
  const matrix = withScenario(bench.command('matrix').description('every scenario × strategy × repetition, and report.html comparing them')
    .option('--scenarios <list>', 'comma-separated scenarios', 'errors,dependency,cpu')
    .option('--strategies <list>', 'comma-separated strategies', 'canary,bluegreen,direct')
    .addOption(new Option('--repetitions <n>', 'runs of each pair (1-100)').argParser(numberIn(1, 100, true)).default(1)));
  examples(matrix, ['changelens bench matrix --scenarios errors,cpu --strategies canary,direct --repetitions 3 --boot']);
  matrix.action(act(async (o: ScenarioOptions) => scenarioRuns('matrix', o)));

  const load = withPlan(bench.command('load').description('open-model load: arrivals on schedule whatever the answers, latency from each request\'s intended send time'))
    .addOption(new Option('--processes <n>', 'load processes splitting the schedule (1-64)').argParser(numberIn(1, 64, true)).default(1))
    .addOption(new Option('--max-requests <n>', 'stop after this many (1-1000000000)').argParser(numberIn(1, 1e9, true)))
    .option('--allow-remote', 'let --target be another machine (loopback only otherwise)')
    .option('--coordinator <string>', 'send the load from the workers of this coordinator (what `bench coordinator` printed)')
    .addOption(new Option('--timing <how>', 'precise: each request within µs of its time, spinning up to a core (the default with --coordinator: load machines of their own); timer: 1-2 ms late at P99, nearly free (the default here, beside what it measures)').choices(['precise', 'timer']));
  examples(load, ['changelens bench load --rate 500 --duration 60', 'changelens bench load --mix GET:/api/data:1 --processes 2 --json',
    'changelens bench load --coordinator \'redis://:secret@10.0.0.5:6379#k3j2ab.…\' --target http://10.0.0.9:8080 --allow-remote --rate 20000']);
  load.action(act(async (o: PlanOptions & { processes: number; maxRequests?: number; allowRemote?: boolean; coordinator?: string; timing?: 'precise' | 'timer' }) => {
    const { checkPlan, runLoad } = await import('../bench/loadgen.js');
    const plan: LoadPlan = { ...(await planFrom(o)), processes: o.processes, timing: o.timing ?? (o.coordinator !== undefined ? 'precise' : 'timer'), ...(o.maxRequests !== undefined ? { maxRequests: o.maxRequests } : {}), allowRemote: o.allowRemote ?? false };
    usage(() => checkPlan(plan));
    const through = o.coordinator !== undefined ? await coordinatorOf(o.coordinator) : null;
    if (through && o.processes > 1) throw new CL_ERR_CLI_USAGE('--processes: the workers send the load with --coordinator; run more workers instead');
    if (through) {
      // Ctrl-C stops the workers' run too (the coordinator would, once this client's liveness lapsed).
      const stop = new AbortController();
      process.once('SIGINT', () => stop.abort());
      plan.signal = stop.signal;
    }
    if (!o.json) process.stderr.write(`${plan.rate} req/s for ${plan.durationSeconds} s against ${plan.target}${through ? ` from coordinator ${through.coordinator}'s workers` : ''}…\n`);
    const running = through ? (await import('../bench/distributed/client.js')).runDistributed(plan, through) : runLoad(plan);
    // An open-model schedule's progress is its clock.
    const r: LoadResult & { distributed?: DistributedReport } = await withProgress('load', running, { totalSeconds: plan.durationSeconds });
    const { histograms: _h, ...shown } = r;
    const ms = (x: number): string => `${x.toFixed(2)} ms`;
    write(o.json, shown, `sent ${r.sent}, failed ${r.failed} (${Object.entries(r.statuses).map(([st, n]) => `${st}: ${n}`).join(', ')})\n`
      + (Object.keys(r.failures).length ? `failures: ${Object.entries(r.failures).map(([k, n]) => `${k} ${n}`).join(', ')}\n` : '')
      + `latency (from intended send)  P50 ${ms(r.latency.p50Ms)}  P95 ${ms(r.latency.p95Ms)}  P99 ${ms(r.latency.p99Ms)}  max ${ms(r.latency.maxMs)}\n`
      + `service time (from send)      P50 ${ms(r.serviceTime.p50Ms)}  P95 ${ms(r.serviceTime.p95Ms)}  P99 ${ms(r.serviceTime.p99Ms)}  max ${ms(r.serviceTime.maxMs)}\n`
      + `send lag (the generator's own) P50 ${ms(r.sendLag.p50Ms)}  P99 ${ms(r.sendLag.p99Ms)}  max ${ms(r.sendLag.maxMs)}${r.sendLag.p99Ms > (plan.timing === 'timer' ? 3 : 1) ? '  — the generator fell behind: add --processes or workers' : ''}\n`
      + (r.distributed ? describeDistributed(r.distributed) : ''));
    return r.failed === 0 ? EXIT.ok : EXIT.failure;
  }));

  registerLoadCommands(bench, act);

  const k6 = withPlan(bench.command('k6').description('the same load as a k6 script (constant-arrival-rate)'))
    .option('-o, --out <file>', 'write the script here (default: stdout)');
  examples(k6, ['changelens bench k6 --rate 200 --duration 120 --out load.js && k6 run load.js']);
  k6.action(act(async (o: PlanOptions & { out?: string }) => {
    const { k6Script } = await import('../bench/k6.js');
    const script = k6Script(await planFrom(o));
    if (o.out !== undefined) {
      writeFileSync(o.out, script);
      process.stdout.write(o.json ? JSON.stringify({ out: o.out }) + '\n' : `wrote ${o.out}; run it with: k6 run ${o.out}\n`);
    } else {
      process.stdout.write(o.json ? JSON.stringify({ script }) + '\n' : script);
    }
    return EXIT.ok;
  }));
}

interface ScenarioOptions extends ApiOptions {
  scenario?: string; strategy?: string; intensity?: number; scenarios: string; strategies: string; repetitions: number;
  rate: number; duration: number; out?: string; boot?: boolean; coordinator?: string; target?: string; allowRemote?: boolean;
}

/** What `bench run` and `bench matrix` share. */
function withScenario(cmd: Command): Command {
  return withApi(cmd)
    .addOption(new Option('-r, --rate <req/s>', 'the load throughout (1-5000)').argParser(numberIn(1, 5_000)).default(100))
    .addOption(new Option('-d, --duration <seconds>', 'the deployment phase of each run (5-3600)').argParser(numberIn(5, 3_600)).default(60))
    .option('-o, --out <dir>', 'where the CSV, JSON and charts go (default: the data dir\'s reports/, else the temp dir)')
    .option('--boot', 'boot a throwaway appliance for the run instead of using this machine\'s')
    .option('--coordinator <string>', 'send the load from the workers of this coordinator (what `bench coordinator` printed)')
    .option('--target <origin>', 'the origin the load goes to (default: the appliance\'s; with --coordinator, one the workers reach)')
    .option('--allow-remote', 'let the load\'s target be another machine (loopback only otherwise)');
}

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

/** --coordinator's string, checked before anything is sent. */
async function coordinatorOf(text: string): Promise<JoinInfo> {
  const { parseJoin } = await import('../bench/distributed/protocol.js');
  return usage(() => parseJoin(text, '--coordinator'));
}

/** Who ran what, the share changes, and where coverage had a gap. */
function describeDistributed(d: DistributedReport): string {
  const rate = (x: number): string => `${x.toFixed(1)} req/s`;
  return `planned ${d.planned} (${rate(d.plannedRate)}), achieved ${rate(d.achievedRate)} (${((d.achievedRate / d.plannedRate) * 100).toFixed(1)} %) over ${d.seconds} s\n`
    + d.workers.map((w) => `  ${w.id.padEnd(32)} ${w.outcome.padEnd(6)} planned ${String(w.planned).padStart(8)}  sent ${String(w.sent).padStart(8)}  failed ${w.failed}\n`).join('')
    + d.events.map((e) => `  ${e.atMs === null ? '' : `at ${(e.atMs / 1000).toFixed(1)} s: `}${e.worker} ${e.event} (${e.detail})\n`).join('')
    + d.shares.slice(1).map((s) => `  shares from ${s.fromMs / 1000} s (${s.why})\n`).join('')
    + (d.gaps.length ? d.gaps.map((g) => `  gap: seconds ${g.fromSecond}-${g.toSecond}, ${g.missing} arrivals not sent (${g.workers.join(', ')})\n`).join('') : '  no gap in coverage\n');
}

function listOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T[] {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = items.find((s) => !allowed.includes(s as T));
  if (bad !== undefined || items.length === 0) throw new CL_ERR_CLI_USAGE(`--${flag}: expected ${allowed.join(', ')} (comma-separated), got ${JSON.stringify(value)}`);
  return items as T[];
}

/** `bench run` and `bench matrix`: against the appliance found like every command's (or --url), or a throwaway one (--boot). */
async function scenarioRuns(kind: 'run' | 'matrix', values: ScenarioOptions): Promise<number> {
  const { SCENARIOS, STRATEGIES, comparison, runMatrix, runScenario } = await import('../bench/scenario.js');
  const { rate, duration: durationSeconds, intensity, repetitions } = values;
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
  const scenarios = kind === 'matrix' ? listOf('scenarios', values.scenarios, SCENARIOS) : [];
  const strategies = kind === 'matrix' ? listOf('strategies', values.strategies, STRATEGIES) : [];

  let target: { url: string; token: string; close: () => Promise<void> };
  if (values.boot) {
    const { launchAppliance } = await import('../bench/harness.js');
    const { reapOrphans } = await import('../supervisor/index.js');
    process.stderr.write('booting a throwaway appliance…\n');
    const app = await launchAppliance({ env: { CHANGELENS_SEED_ITEMS: '2000', CHANGELENS_MONITOR_RULES: '[]', CHANGELENS_INSPECT_SECONDS: '0', CHANGELENS_KEEP_WARM_SECONDS: '0', CHANGELENS_BACKUP_PG_SCHEDULE: 'off', CHANGELENS_BACKUP_REDIS_SCHEDULE: 'off' } });
    await app.ready;
    target = { url: app.url, token: app.secrets().adminToken, close: async () => { await app.stop('SIGTERM'); await reapOrphans(join(app.dataDir, 'state', 'pm2')); } };
  } else {
    const client = apiClient(values);
    target = { url: client.base.replace(/\/_changelens$/, ''), token: client.token(), close: async () => {} };
  }
  try {
    const through = values.coordinator !== undefined ? await coordinatorOf(values.coordinator) : undefined;
    if (values.target !== undefined && !/^https?:\/\/[^/\s]+\/?$/.test(values.target)) throw new CL_ERR_CLI_USAGE(`--target: expected an origin like http://10.0.0.9:8080, got ${JSON.stringify(values.target)}`);
    const load = { ...(through ? { coordinator: through } : {}), ...(values.target !== undefined ? { target: values.target.replace(/\/$/, '') } : {}), allowRemote: values.allowRemote === true };
    const common = { url: target.url, token: target.token, rate, durationSeconds, load, ...(intensity !== undefined ? { intensity } : {}), onProgress: values.json ? undefined : (l: string) => process.stderr.write(`${l}\n`) };
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
