// `changelens regression list|set|clear`: the built-in API's regressions per colour (or, with
// --worker, its worker's) — a release made slow or failing on purpose, for demos and drills. Thin
// clients of the admin API's /api/colors/<colour>/regressions and …/worker-regressions (the token is
// needed; every change is audited).
import { Argument, Option, type Command } from 'commander';
import { REGRESSION_TYPES } from '../lib/contracts/regressions.js';
import { WORKER_REGRESSION_TYPES } from '../lib/contracts/worker-regressions.js';
import { CL_ERR_CLI_USAGE, EXIT } from '../lib/errors.js';
import { aNumber, apiClient, examples, numberIn, withApi, write, type ApiOptions } from './options.js';
import type { Act } from './command-tree.js';

const COLORS = ['blue', 'green'] as const;

interface ColorRegressions { color: string; regressions: { type: string; intensity: number; timeoutRate?: number; source: string }[] }
type Options = ApiOptions & { worker?: boolean };

export function registerRegressionCommands(program: Command, act: Act): void {
  const regression = program.command('regression').description('make a colour slow or failing on purpose, for demos and drills (audited)');
  const withWorker = (cmd: Command): Command => withApi(cmd).option('--worker', 'the colour\'s worker (its jobs) instead of the built-in API');

  const list = withWorker(regression.command('list').description('each colour\'s regressions, set at run time or from its release'));
  examples(list, ['changelens regression list', 'changelens regression list --worker --json']);
  list.action(act(async (o: Options) => {
      const api = apiClient(o);
      // A colour that is not running has none to show; it is not an error of the command.
      const all = await Promise.all(COLORS.map(async (color) => {
        try {
          return await api.get<ColorRegressions>(`/api/colors/${color}/${o.worker ? 'worker-regressions' : 'regressions'}`);
        } catch (err) {
          return { color, regressions: [], error: (err as Error).message };
        }
      }));
      write(o.json, all, all.map((c) => `${c.color.padEnd(6)} ${'error' in c ? `not answering (${c.error})` : describe(c)}`).join('\n') + '\n');
      return EXIT.ok;
    }));

  const set = withWorker(regression.command('set')
    .addArgument(new Argument('<colour>', 'the colour').choices(COLORS))
    .argument('<type>', `API: ${REGRESSION_TYPES.join(', ')}; --worker: ${WORKER_REGRESSION_TYPES.join(', ')}`)
    .argument('<intensity>', 'how much: cpu and db 1-10000, dependency ms 1-60000, errors 0-1; worker slow ms 1-60000, errors and crash 0-1', aNumber)
    .description('make a colour slow or failing on purpose')
    .addOption(new Option('--timeout-rate <r>', 'dependency only: the share of downstream calls that time out (0-1)').argParser(numberIn(0, 1))));
  examples(set, ['changelens regression set green errors 0.2', 'changelens regression set green dependency 300 --timeout-rate 0.05', 'changelens regression set green crash 0.01 --worker']);
  set.action(act(async (color: string, type: string, intensity: number, o: Options & { timeoutRate?: number }) => {
    const result = await apiClient(o).post<ColorRegressions>(`/api/colors/${path(color, type, o.worker)}`, { intensity, ...(o.timeoutRate === undefined ? {} : { timeoutRate: o.timeoutRate }) });
    write(o.json, result, `${result.color}: ${describe(result)}\n`);
    return EXIT.ok;
  }));

  const clear = withWorker(regression.command('clear')
    .addArgument(new Argument('<colour>', 'the colour').choices(COLORS))
    .argument('<type>', 'the regression to switch off')
    .description('switch one regression off'));
  examples(clear, ['changelens regression clear green errors']);
  clear.action(act(async (color: string, type: string, o: Options) => {
    const result = await apiClient(o).delete<ColorRegressions>(`/api/colors/${path(color, type, o.worker)}`);
    write(o.json, result, `${result.color}: ${describe(result)}\n`);
    return EXIT.ok;
  }));
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
