// The options many commands share, and how an option's text becomes a value: every check names
// the option and the range it accepts, and the ranges of settings come from the one config table
// (lib/config.ts), so `--step-seconds 0` is refused here with the words CHANGELENS_STEP_SECONDS gets.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { loadConfig, settingSpec, type ConfigKey } from '../lib/config.js';
import { adminClient, type AdminClient } from './admin-client.js';
import { CL_ERR_CLI_USAGE } from '../lib/errors.js';

/** What every command that reads this machine's configuration takes. */
export interface ConfigOptions { config?: string }
/** …and every command that talks to an appliance's admin API. */
export interface ApiOptions extends ConfigOptions { url?: string; json?: boolean }

export function withConfig(cmd: Command): Command {
  return cmd.addOption(new Option('-c, --config <file>', 'a JSON config file (default: $CHANGELENS_CONFIG)'));
}

export function withJson(cmd: Command, what = 'JSON on stdout, for scripts'): Command {
  return cmd.option('-j, --json', what);
}

/** --config, --url and --json: a thin client of the admin API, this machine's or a remote one. */
export function withApi(cmd: Command): Command {
  withConfig(cmd);
  cmd.addOption(new Option('-u, --url <url>', 'a remote appliance\'s public origin (default: $CHANGELENS_URL, else this machine\'s); the token comes from $CHANGELENS_ADMIN_TOKEN'));
  return withJson(cmd);
}

/** The admin API of this machine's appliance, or of the one at --url / CHANGELENS_URL. */
export function apiClient(o: ApiOptions, timeoutMs?: number): AdminClient {
  return adminClient(loadConfig({ file: o.config }), { url: o.url, ...(timeoutMs !== undefined ? { timeoutMs } : {}) });
}

/** A number in [min, max] (an integer when asked), or an error naming the range. */
export function numberIn(min: number, max: number, integer = false, unit = ''): (raw: string) => number {
  return (raw) => {
    const n = Number(raw);
    const shaped = integer ? /^\d+$/.test(raw) : /^-?(\d+\.?\d*|\.\d+)$/.test(raw);
    if (!shaped || n < min || n > max) throw new InvalidArgumentError(`expected ${integer ? 'an integer' : 'a number'} ${min}-${max}${unit ? ` (${unit})` : ''}`);
    return n;
  };
}

/** Any finite number (the appliance checks its range, which depends on other arguments). */
export function aNumber(raw: string): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number');
  return n;
}

/** `--name <value>` taking one setting's range: its help shows the setting's meaning, range and default. */
export function settingOption(flags: string, key: ConfigKey): Option {
  const spec = settingSpec(key);
  // The value's placeholder says its unit, from the range's words ("seconds 1-86400" → <seconds>).
  if (!flags.includes('<')) flags += ` <${/^(seconds|milliseconds|days|megabytes)/.exec(spec.expected)?.[1]?.replace('milliseconds', 'ms') ?? (spec.numeric ? (/integer/.test(spec.expected) ? 'n' : 'x') : 'value')}>`;
  const fallback = spec.default === undefined ? 'none' : String(spec.default);
  const option = new Option(flags, `${spec.doc} (${spec.expected}; the appliance's ${spec.env}, default ${fallback})`);
  // Numbers are checked here; a text setting's own parser (a path list, rules) is the appliance's,
  // whose error says which part is wrong, named with the flag (rollout-commands.ts withFlagNames).
  if (!spec.numeric) return option;
  return option.argParser((raw) => {
    const value = Number(raw);
    if (!/^-?(\d+\.?\d*|\.\d+)$/.test(raw) || spec.check(value) === undefined) throw new InvalidArgumentError(`expected ${spec.expected}`);
    return value;
  });
}

/** For repeatable options (`--set A=1 --set B=2`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** KEY=VALUE pairs of a repeated option, as an object; the error names the option. */
export function pairs(flag: string, items: readonly string[], showValue = true): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of items) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CL_ERR_CLI_USAGE(`${flag}${showValue ? ` ${pair}` : ''}: expected KEY=VALUE${showValue ? '' : ' (the value is not shown here)'}`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/** Examples under a command's help. */
export function examples(cmd: Command, lines: readonly string[]): Command {
  return cmd.addHelpText('after', `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`);
}

/** stdout: JSON for scripts, or the text for people. */
export function write(json: boolean | undefined, value: unknown, text: string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : text);
}

/** A value check's message as a usage error (exit 2). */
export function usage<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    throw new CL_ERR_CLI_USAGE((err as Error).message);
  }
}
