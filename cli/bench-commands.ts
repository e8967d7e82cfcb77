// `changelens bench load|k6`: the open-model load generator against the appliance (or another
// loopback target), and the same load written as a k6 script.
import { writeFileSync } from 'node:fs';
import { loadConfig } from '../lib/config.js';
import { CL_ERR_CLI_USAGE, EXIT } from '../lib/errors.js';
import { DEFAULT_MIX, k6Script, parseMix } from '../bench/k6.js';
import { checkPlan, runLoad, type Endpoint, type LoadPlan } from '../bench/loadgen.js';
import { parse } from './args.js';

export const BENCH_USAGE = `  changelens bench load [--rate 100] [--duration 30] [--ramp 0] [--mix GET:/api/data:8,POST:/api/process:1]
                       [--processes 1] [--max-requests N] [--target URL] [--allow-remote] [--json]
                                           open-model load (latency from each request's intended send time)
  changelens bench k6 [same plan options] [--out FILE]
                                           the same load as a k6 script (constant-arrival-rate)`;

const planOptions = {
  rate: { type: 'string' }, duration: { type: 'string' }, ramp: { type: 'string' }, mix: { type: 'string' }, target: { type: 'string' },
  config: { type: 'string' }, json: { type: 'boolean' },
} as const;

export const benchCommands: Record<string, (args: string[]) => Promise<number>> = {
  async bench(args) {
    const [sub, ...rest] = args;
    if (sub === 'load') return load(rest);
    if (sub === 'k6') return k6(rest);
    throw new CL_ERR_CLI_USAGE(`usage: changelens bench load|k6 [options] (got ${sub === undefined ? 'nothing' : JSON.stringify(sub)})`);
  },
};

function number(flag: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || n < min || n > max) throw new CL_ERR_CLI_USAGE(`--${flag}: expected a number ${min}-${max}, got ${JSON.stringify(value)}`);
  return n;
}

function planFrom(values: { rate?: string; duration?: string; ramp?: string; mix?: string; target?: string; config?: string }): LoadPlan {
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
  const plan: LoadPlan = {
    ...planFrom(values),
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
  const script = k6Script(planFrom(values));
  if (values.out !== undefined) {
    writeFileSync(values.out, script);
    process.stdout.write(values.json ? JSON.stringify({ out: values.out }) + '\n' : `wrote ${values.out}; run it with: k6 run ${values.out}\n`);
  } else {
    process.stdout.write(values.json ? JSON.stringify({ script }) + '\n' : script);
  }
  return EXIT.ok;
}
