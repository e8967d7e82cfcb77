// `changelens regression list|set|clear`: the built-in API's regressions per colour (or, with
// --worker, its worker's) — a release made slow or failing on purpose, for demos and drills. Thin
// clients of the admin API's /api/colors/<colour>/regressions and …/worker-regressions (the token is
// needed; every change is audited).
import { loadConfig } from '../lib/config.js';
import { REGRESSION_TYPES } from '../lib/contracts/regressions.js';
import { WORKER_REGRESSION_TYPES } from '../lib/contracts/worker-regressions.js';
import { CL_ERR_CLI_USAGE, EXIT } from '../lib/errors.js';
import { adminClient } from './admin-client.js';
import { parse } from './args.js';

export const REGRESSION_USAGE = `  changelens regression list [--worker] [--json]
                                           each colour's regressions (built-in API, or its worker), run-time and from its release
  changelens regression set <colour> <type> <intensity> [--timeout-rate R] [--worker] [--json]
                                           make a colour slow or failing on purpose (types: ${REGRESSION_TYPES.join(', ')};
                                           with --worker, its jobs: ${WORKER_REGRESSION_TYPES.join(', ')}); audited
  changelens regression clear <colour> <type> [--worker] [--json]
                                           switch one off`;

const common = { json: { type: 'boolean' }, config: { type: 'string' }, url: { type: 'string' }, worker: { type: 'boolean' } } as const;
const COLORS = ['blue', 'green'] as const;

interface ColorRegressions { color: string; regressions: { type: string; intensity: number; timeoutRate?: number; source: string }[] }

export const regressionCommands: Record<string, (args: string[]) => Promise<number>> = {
  async regression(args) {
    const [sub, ...rest] = args;
    switch (sub) {
      case 'list': return list(rest);
      case 'set': return set(rest);
      case 'clear': return clear(rest);
      default: throw new CL_ERR_CLI_USAGE(`usage: changelens regression list|set|clear (got ${sub === undefined ? 'nothing' : JSON.stringify(sub)})`);
    }
  },
};

async function list(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, common, true);
  if (positionals.length > 0) throw new CL_ERR_CLI_USAGE('usage: changelens regression list [--json]');
  const api = client(values);
  // A colour that is not running has none to show; it is not an error of the command.
  const all = await Promise.all(COLORS.map(async (color) => {
    try {
      return await api.get<ColorRegressions>(`/api/colors/${color}/${values.worker ? 'worker-regressions' : 'regressions'}`);
    } catch (err) {
      return { color, regressions: [], error: (err as Error).message };
    }
  }));
  write(values.json, all, all.map((c) => `${c.color.padEnd(6)} ${'error' in c ? `not answering (${c.error})` : describe(c)}`).join('\n') + '\n');
  return EXIT.ok;
}

async function set(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...common, 'timeout-rate': { type: 'string' } }, true);
  const usage = 'usage: changelens regression set <blue|green> <type> <intensity> [--timeout-rate R] [--json]';
  if (positionals.length !== 3) throw new CL_ERR_CLI_USAGE(usage);
  const [color, type, intensityText] = positionals as [string, string, string];
  const intensity = Number(intensityText);
  if (intensityText.trim() === '' || !Number.isFinite(intensity)) throw new CL_ERR_CLI_USAGE(`intensity: expected a number, got ${JSON.stringify(intensityText)}`);
  const timeoutRate = values['timeout-rate'] === undefined ? undefined : Number(values['timeout-rate']);
  if (timeoutRate !== undefined && !Number.isFinite(timeoutRate)) throw new CL_ERR_CLI_USAGE(`--timeout-rate: expected a number 0-1, got ${JSON.stringify(values['timeout-rate'])}`);
  const result = await client(values).post<ColorRegressions>(`/api/colors/${path(color, type, values.worker)}`, { intensity, ...(timeoutRate === undefined ? {} : { timeoutRate }) });
  write(values.json, result, `${result.color}: ${describe(result)}\n`);
  return EXIT.ok;
}

async function clear(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, common, true);
  if (positionals.length !== 2) throw new CL_ERR_CLI_USAGE('usage: changelens regression clear <blue|green> <type> [--json]');
  const [color, type] = positionals as [string, string];
  const result = await client(values).delete<ColorRegressions>(`/api/colors/${path(color, type, values.worker)}`);
  write(values.json, result, `${result.color}: ${describe(result)}\n`);
  return EXIT.ok;
}

/** <colour>/regressions/<type> (or worker-regressions), both checked here so the error names the argument. */
function path(color: string, type: string, worker = false): string {
  if (!(COLORS as readonly string[]).includes(color)) throw new CL_ERR_CLI_USAGE(`colour: expected blue or green, got ${JSON.stringify(color)}`);
  const types: readonly string[] = worker ? WORKER_REGRESSION_TYPES : REGRESSION_TYPES;
  if (!types.includes(type)) throw new CL_ERR_CLI_USAGE(`type: expected one of ${types.join(', ')}${worker ? ' (a worker\'s)' : ''}, got ${JSON.stringify(type)}`);
  return `${color}/${worker ? 'worker-regressions' : 'regressions'}/${type}`;
}

function describe(c: ColorRegressions): string {
  if (c.regressions.length === 0) return 'no regressions';
  return c.regressions.map((r) => `${r.type} ${r.intensity}${r.timeoutRate !== undefined ? ` (timeouts ${r.timeoutRate})` : ''} [${r.source}]`).join(', ');
}

function client(values: { config?: string | undefined; url?: string | undefined }) {
  return adminClient(loadConfig({ file: values.config }), { url: values.url });
}

function write(json: boolean | undefined, value: unknown, text: string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : text);
}
