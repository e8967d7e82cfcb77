// The options of an open-model plan (`bench load`, `bench k6`, `bench locust`) and the plan they make.
import { Option, type Command } from 'commander';
import { loadConfig } from '../lib/config.js';
import { CL_ERR_CLI_USAGE } from '../lib/errors.js';
import type { Endpoint, LoadPlan } from '../bench/loadgen.js';
import { numberIn, withConfig, withJson, type ConfigOptions } from './options.js';

export interface PlanOptions extends ConfigOptions { rate: number; duration: number; ramp: number; mix?: string; target?: string; json?: boolean }

/** The options of an open-model plan, shared by `bench load`, `bench k6` and `bench locust`. */
export function withPlan(cmd: Command): Command {
  return withJson(withConfig(cmd))
    .addOption(new Option('-r, --rate <req/s>', 'arrivals per second (0.1-1000000)').argParser(numberIn(0.1, 1_000_000)).default(100))
    .addOption(new Option('-d, --duration <seconds>', 'how long (1-86400)').argParser(numberIn(1, 86_400)).default(30))
    .addOption(new Option('--ramp <seconds>', 'rise linearly to the rate over this long (0-86400)').argParser(numberIn(0, 86_400)).default(0))
    .option('--mix <spec>', 'the endpoint mix as METHOD:PATH:WEIGHT, comma-separated (default: GET:/api/data:8,POST:/api/process:1,…)')
    .option('--target <origin>', 'the origin to load (default: this machine\'s appliance, http://127.0.0.1:$PORT)');
}

export async function planFrom(values: PlanOptions): Promise<LoadPlan> {
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
    rate: values.rate, durationSeconds: values.duration, rampSeconds: values.ramp,
  };
}

