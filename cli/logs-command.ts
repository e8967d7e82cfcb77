// `changelens logs`: the recent lines of every service (or one), from the supervisor's bounded
// in-memory copy of its stdout, and with -f the new ones as they come — pm2 logs / gitlab-ctl tail
// for the appliance. A terminal gets a readable form; a pipe or --json gets the JSON lines as they are.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { loadConfig } from '../lib/config.js';
import { EXIT } from '../lib/errors.js';
import { dataPaths } from '../lib/paths.js';
import { SINCE_EXPECTED, sinceMs } from '../lib/since.js';
import { LOG_LEVELS, levelOf, streamControl, type LogLevelName } from '../supervisor/index.js';
import { examples, numberIn, withConfig, type ConfigOptions } from './options.js';
import type { Act } from './command-tree.js';

interface LogsOptions extends ConfigOptions { follow?: boolean; service?: string; since?: number; lines: number; level?: LogLevelName; json?: boolean }

export function registerLogsCommand(program: Command, act: Act): void {
  const logs = withConfig(program.command('logs').description('the recent log lines of the appliance\'s services (kept in memory by the supervisor, never on disk), and with -f the new ones')
    .option('-f, --follow', 'keep printing new lines until Ctrl-C')
    .addOption(new Option('-s, --service <name>', 'one service: supervisor, proxy, postgres, redis, api (both colours), api-green, worker, worker-blue, …').argParser(serviceName))
    .addOption(new Option('--since <age>', `only lines from then on: ${SINCE_EXPECTED}`).argParser(since))
    .addOption(new Option('-n, --lines <n>', 'at most this many of the kept lines (1-99999)').argParser(numberIn(1, 99_999, true)).default(200))
    .addOption(new Option('--level <level>', 'this level and above').choices(LOG_LEVELS))
    .option('-j, --json', 'the JSON lines as the services wrote them (also what a pipe gets)'));
  examples(logs, ['changelens logs -f', 'changelens logs --service api-green --since 10m', 'changelens logs --level warn --json | jq .msg']);
  logs.addHelpText('after', '\nEach service keeps its last 2,000 lines (at most 1 MB); older ones are on the platform\'s log of stdout.\n');
  logs.action(act(async (o: LogsOptions) => {
    const paths = dataPaths(loadConfig({ file: o.config }).dataDir);
    // The supervisor filters (level included) before it counts the last --lines.
    const query = new URLSearchParams({ lines: String(o.lines), ...(o.service ? { service: o.service } : {}), ...(o.since !== undefined ? { since: String(o.since) } : {}), ...(o.level ? { level: o.level } : {}), ...(o.follow ? { follow: '1' } : {}) });
    const pretty = !o.json && process.stdout.isTTY === true;
    const stop = new AbortController();
    const onSignal = (): void => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      await streamControl(paths.controlSocket, `/logs?${query}`, paths.root, (line) => {
        process.stdout.write(pretty ? prettyLine(parse(line), line) : line + '\n');
      }, stop.signal);
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    return EXIT.ok;
  }));
}

function serviceName(raw: string): string {
  if (!/^[a-z0-9-]{1,40}$/.test(raw)) throw new InvalidArgumentError('expected a service name like proxy, api or api-green');
  return raw;
}

function since(raw: string): number {
  const ms = sinceMs(raw);
  if (ms === null) throw new InvalidArgumentError(`expected ${SINCE_EXPECTED}`);
  return ms;
}

type LogRecord = Record<string, unknown> | null;

function parse(line: string): LogRecord {
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}


const LEVEL_COLOUR: Record<string, string> = { trace: '90', debug: '90', info: '36', warn: '33', error: '31', fatal: '41' };
const SHOWN_APART = new Set(['level', 'time', 'service', 'process', 'msg', 'pid', 'hostname', 'v']);

/** `12:00:03.120 proxy       INFO  the message  key=value …`, colours by level. */
export function prettyLine(r: LogRecord, raw: string): string {
  if (!r) return raw + '\n';
  const time = typeof r.time === 'string' ? r.time.slice(11, 23) : typeof r.time === 'number' ? new Date(r.time).toISOString().slice(11, 23) : '            ';
  const level = levelOf(raw);
  const who = String(r.process ?? r.service ?? '?');
  const extra = Object.entries(r).filter(([k]) => !SHOWN_APART.has(k)).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
  return `\x1b[90m${time}\x1b[0m ${who.padEnd(12)} \x1b[${LEVEL_COLOUR[level]}m${level.toUpperCase().padEnd(5)}\x1b[0m ${String(r.msg ?? '')}${extra ? `  \x1b[90m${extra}\x1b[0m` : ''}\n`;
}
