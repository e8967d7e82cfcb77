// Following a deployment from a terminal: `wait <id>` (deploy --wait's exit codes, for CI runners
// that restarted or deployments started from the dashboard) and `watch [id]`, a live view of the
// steps, weights, each colour's traffic, P99 and errors and the last verdict — redrawn in place on
// a terminal, a line per change otherwise.
import { Option, type Command } from 'commander';
import { isTerminal } from '../lib/contracts/phases.js';
import { ChangeLensError, CL_ERR_UNREACHABLE, EXIT } from '../lib/errors.js';
import type { Deployment, StoredVerdict } from '../rollout/index.js';
import { atGate, candidateWeight } from '../rollout/state-machine.js';
import type { AdminClient } from './admin-client.js';
import { apiClient, examples, numberIn, withApi, write, type ApiOptions } from './options.js';
import type { Act } from './command-tree.js';

type Detailed = Deployment & { verdicts: StoredVerdict[] };

export function registerWatchCommands(program: Command, act: Act): void {
  const wait = withApi(program.command('wait').argument('<id>', 'a deployment id (deploy prints it; changelens deployments lists them)')
    .description('follow a deployment until it is decided, printing each change; exits like deploy --wait')
    .addOption(new Option('-t, --timeout <seconds>', 'give up waiting after this long (exit 4; the deployment goes on)').argParser(numberIn(1, 604_800, true))));
  examples(wait, ['changelens wait dep_… --timeout 900 && echo promoted']);
  wait.addHelpText('after', '\nExit codes: 0 promoted, 1 rolled back or failed, 4 paused (a gate too, without --through-gates), aborted or\n--timeout passed, 3 unreachable, 5 unauthorized, 2 bad usage.\n');
  wait.option('--through-gates', 'keep waiting while it is held at a gate (for the gate webhook or a person to approve); use with --timeout');
  wait.action(act(async (id: string, o: ApiOptions & { timeout?: number; throughGates?: boolean }) => waitFor(apiClient(o), id, o.json === true, o.timeout, o.throughGates)));

  const watch = withApi(program.command('watch').argument('[id]', 'a deployment id (default: whatever deployment runs, followed until Ctrl-C)')
    .description('a live view of a deployment: step, weight, each colour\'s requests, P99 and errors, the last verdict')
    .addOption(new Option('-i, --interval <seconds>', 'how often it refreshes (1-60)').argParser(numberIn(1, 60, true)).default(1))
    .option('--once', 'print the view once and exit (0)'));
  examples(watch, ['changelens watch', 'changelens watch dep_…', 'changelens watch --once --json']);
  watch.addHelpText('after', '\nWith an id it ends when the deployment is decided, with wait\'s exit codes. With --json it prints\na JSON object per refresh that changed something (one per line).\n');
  watch.action(act(async (id: string | undefined, o: ApiOptions & { interval: number; once?: boolean }) => watchLoop(apiClient(o), id, o)));
}

/**
 * Polls the deployment until it is decided, printing each change: 0 promoted, 1 rolled back or
 * failed, 4 paused (a person must decide), aborted (the progress deadline, or an operator) or past
 * --timeout. Never waits forever on a deployment nobody judges.
 */
export async function waitFor(api: AdminClient, id: string, json: boolean, timeoutSeconds: number | undefined, throughGates = false): Promise<number> {
  let last = '';
  const deadline = timeoutSeconds === undefined ? Infinity : Date.now() + timeoutSeconds * 1000;
  let seen: Deployment | undefined;
  const fetch = retrying(() => api.get<Detailed>(`/api/deployments/${encodeURIComponent(id)}`));
  for (;;) {
    if (Date.now() > deadline) {
      process.stderr.write(`gave up waiting after ${timeoutSeconds} s (--timeout); the deployment goes on: changelens deployment ${id}\n`);
      if (json && seen) write(true, seen, '');
      return EXIT.undecided;
    }
    const d = await fetch();
    if (d === null) continue;
    seen = d;
    const v = d.verdicts.at(-1);
    const line = `${d.status.phase} step ${d.status.stepIndex + 1}/${d.status.steps.length} weight ${weightOf(d)}%${v ? ` last window (${v.samples.candidate} candidate / ${v.samples.stable} stable requests) ${v.explanation}` : ''}`;
    if (line !== last) process.stderr.write(`${clock()} ${line}\n`);
    last = line;
    if (decided(d, throughGates)) {
      const failing = d.verdicts.filter((x) => x.verdict === 'fail').at(-1);
      const next = atGate(d.status) ? `  it waits at a gate: changelens promote --step approves it; changelens wait ${d.id} --through-gates follows it on\n`
        : d.status.phase === 'paused' ? '  it waits for a person: changelens resume, promote [--step] or rollback\n' : '';
      write(json, d, `${describe(d)}${failing ? `  verdict: ${failing.explanation}\n` : ''}${next}`);
      return exitOf(d);
    }
    await sleep(1_000);
  }
}

/** Deploy --wait's exit code for a decided deployment. */
function exitOf(d: Deployment): number {
  switch (d.status.phase) {
    case 'promoted': return EXIT.ok;
    case 'rolled_back': case 'failed': return EXIT.failure;
    default: return EXIT.undecided; // paused, aborted
  }
}

/** Ended, or paused for a person — a gate too, unless asked to wait through gates (a person or the gate webhook approves). */
const decided = (d: Deployment, throughGates = false): boolean => isTerminal(d.status.phase) || (d.status.phase === 'paused' && !(throughGates && atGate(d.status)));

/**
 * A call that rides out a proxy restarting (pm2 brings it back and it takes the deployment over):
 * null while the appliance does not answer, the error after a minute of that.
 */
function retrying<T>(call: () => Promise<T>): () => Promise<T | null> {
  let unreachableSince: number | null = null;
  return async () => {
    try {
      const value = await call();
      unreachableSince = null;
      return value;
    } catch (err) {
      const transient = err instanceof CL_ERR_UNREACHABLE || (err instanceof ChangeLensError && err.statusCode >= 502);
      unreachableSince ??= Date.now();
      if (!transient || Date.now() - unreachableSince > 60_000) throw err;
      process.stderr.write(`${clock()} the appliance does not answer (${(err as Error).message}); still waiting\n`);
      await sleep(1_000);
      return null;
    }
  };
}

interface StatusAnswer {
  active: { version: string; color: string };
  routing: { candidateWeight: number };
  deployment: (Deployment & { lastVerdict: string | null; lastExplanation: string | null }) | null;
}
interface LiveSecond { t: number; blue: ColourSecond; green: ColourSecond }
interface ColourSecond { count: number; p50Ms: number; p99Ms: number; errorRate: number }

/** What one frame shows; also what --json prints. */
export interface WatchFrame {
  at: string;
  active: { version: string; color: string };
  deployment: { id: string; version: string; strategy: string; candidateColor: string; stableColor: string; stableVersion: string; phase: string; step: number; steps: readonly number[]; weight: number; reason: string | null } | null;
  lastVerdict: { verdict: string; explanation: string; samples: { candidate: number; stable: number } } | null;
  /** The last 10 complete seconds per colour: requests per second, the worst second's P99, the 5xx share. */
  colours: Record<'blue' | 'green', { rps: number; p99Ms: number | null; errorRate: number | null }>;
}

async function watchLoop(api: AdminClient, id: string | undefined, o: ApiOptions & { interval: number; once?: boolean }): Promise<number> {
  const tty = process.stdout.isTTY === true && !o.json;
  let drawnLines = 0;
  let lastKey = '';
  const fetch = retrying(() => frame(api, id));
  for (;;) {
    const got = await fetch();
    if (got === null) continue;
    const { view, detailed } = got;
    if (o.json) {
      // A line per change: the time alone changing is not news.
      const key = JSON.stringify({ ...view, at: '' });
      if (key !== lastKey || o.once) process.stdout.write(JSON.stringify(view) + '\n');
      lastKey = key;
    } else if (tty) {
      // Each line fits the terminal: a wrapped line would throw the redraw's count of lines off.
      const text = fitWidth(render(view), process.stdout.columns || 100);
      // Back over the last frame and clear it: the view stays in place.
      process.stdout.write(`${drawnLines > 0 ? `\x1b[${drawnLines}A\x1b[J` : ''}${text}`);
      drawnLines = text.split('\n').length - 1;
    } else {
      const line = plainLine(view);
      if (line !== lastKey || o.once) process.stdout.write(`${clock()} ${line}\n`);
      lastKey = line;
    }
    if (o.once) return EXIT.ok;
    // A view: it watches through a gate; it ends when the deployment ends or waits for a person.
    if (id !== undefined && detailed && decided(detailed, true)) return exitOf(detailed);
    await sleep(o.interval * 1000);
  }
}

async function frame(api: AdminClient, id: string | undefined): Promise<{ view: WatchFrame; detailed: Detailed | null }> {
  const [status, live, detailed] = await Promise.all([
    api.get<StatusAnswer>('/api/status'),
    api.get<{ seconds: LiveSecond[] }>('/api/live?seconds=11'),
    id !== undefined ? api.get<Detailed>(`/api/deployments/${encodeURIComponent(id)}`) : Promise.resolve(null),
  ]);
  const d: Deployment | null = detailed ?? status.deployment;
  const running = status.deployment !== null && d !== null && status.deployment.id === d.id;
  const v = detailed?.verdicts.at(-1);
  // The second in progress is partial: the last 10 complete ones.
  const seconds = live.seconds.slice(0, -1).slice(-10);
  const colours = Object.fromEntries((['blue', 'green'] as const).map((c) => {
    const count = seconds.reduce((n, s) => n + s[c].count, 0);
    const errors = seconds.reduce((n, s) => n + s[c].errorRate * s[c].count, 0);
    return [c, { rps: seconds.length ? count / seconds.length : 0, p99Ms: count ? Math.max(...seconds.filter((s) => s[c].count > 0).map((s) => s[c].p99Ms)) : null, errorRate: count ? errors / count : null }];
  })) as WatchFrame['colours'];
  return {
    detailed,
    view: {
      at: new Date().toISOString(),
      active: status.active,
      deployment: d ? {
        id: d.id, version: d.version, strategy: d.strategy, candidateColor: d.candidateColor, stableColor: d.stableColor, stableVersion: d.stableVersion,
        phase: d.status.phase, step: d.status.stepIndex + 1, steps: d.status.steps, reason: d.status.reason,
        weight: running ? Math.round(status.routing.candidateWeight * 100) : weightOf(d),
      } : null,
      lastVerdict: v ? { verdict: v.verdict, explanation: v.explanation, samples: v.samples }
        : running && status.deployment?.lastVerdict ? { verdict: status.deployment.lastVerdict, explanation: status.deployment.lastExplanation ?? '', samples: { candidate: 0, stable: 0 } } : null,
      colours,
    },
  };
}

const PHASE_COLOUR: Record<string, string> = { promoted: '32', rolled_back: '31', failed: '31', rolling_back: '31', aborted: '33', paused: '33' };
const paint = (code: string | undefined, text: string): string => (code ? `\x1b[${code}m${text}\x1b[0m` : text);

/** The terminal view: a few lines, redrawn in place. */
export function render(f: WatchFrame): string {
  const lines: string[] = [];
  const d = f.deployment;
  lines.push(`changelens watch   ${f.at.slice(11, 19)}   active ${f.active.version} on ${f.active.color}`);
  if (!d) {
    lines.push('no deployment running (Ctrl-C to stop watching)');
  } else {
    lines.push(`deployment ${d.id}: ${d.strategy} of ${d.version} on ${d.candidateColor} (stable ${d.stableVersion} on ${d.stableColor})`);
    const steps = d.steps.map((w, i) => (i + 1 < d.step || d.phase === 'promoted' ? `${w}% ✓` : i + 1 === d.step && (d.phase === 'shifting' || d.phase === 'paused') ? `[${w}%]` : `${w}%`)).join(' → ');
    lines.push(`phase ${paint(PHASE_COLOUR[d.phase], d.phase.padEnd(12))} step ${d.step}/${d.steps.length}  weight ${d.weight}%   ${steps}`);
    if (d.reason) lines.push(`reason: ${d.reason}`);
  }
  lines.push('');
  lines.push('colour   req/s   P99 (worst 1 s of 10)   5xx');
  for (const c of ['blue', 'green'] as const) {
    const x = f.colours[c];
    const role = d ? (c === d.candidateColor ? ' candidate' : ' stable') : c === f.active.color ? ' active' : '';
    lines.push(`${`${c}${role}`.padEnd(16).slice(0, 16)} ${x.rps.toFixed(1).padStart(7)}   ${x.p99Ms === null ? '–'.padStart(10) : `${x.p99Ms.toFixed(1)} ms`.padStart(10)}   ${x.errorRate === null ? '–' : `${(x.errorRate * 100).toFixed(2)} %`}`);
  }
  if (f.lastVerdict) {
    lines.push('');
    lines.push(`last verdict: ${paint(f.lastVerdict.verdict === 'fail' ? '31' : f.lastVerdict.verdict === 'pass' ? '32' : undefined, f.lastVerdict.verdict)}${f.lastVerdict.samples.candidate ? ` (${f.lastVerdict.samples.candidate} candidate / ${f.lastVerdict.samples.stable} stable requests)` : ''}`);
    lines.push(`  ${f.lastVerdict.explanation}`);
  }
  return lines.join('\n') + '\n';
}

/** Every line cut to `columns` visible characters (colour codes do not count). */
export function fitWidth(text: string, columns: number): string {
  const codes = /\x1b\[[0-9;]*m/g;
  return text.split('\n').map((line) => {
    if (line.replace(codes, '').length <= columns) return line;
    let visible = 0;
    let out = '';
    for (const part of line.split(/(\x1b\[[0-9;]*m)/)) {
      if (part.startsWith('\x1b[')) {
        out += part;
        continue;
      }
      const room = columns - 1 - visible;
      if (room <= 0) continue;
      out += part.slice(0, room);
      visible += Math.min(part.length, room);
    }
    return `${out}…\x1b[0m`;
  }).join('\n');
}

/** One line for a log or a pipe, printed when it changes. */
function plainLine(f: WatchFrame): string {
  const d = f.deployment;
  const colours = (['blue', 'green'] as const).map((c) => `${c} ${f.colours[c].rps.toFixed(0)} req/s p99 ${f.colours[c].p99Ms === null ? '–' : f.colours[c].p99Ms!.toFixed(0)} ms`).join(', ');
  if (!d) return `no deployment running; active ${f.active.version} on ${f.active.color}; ${colours}`;
  return `${d.id} ${d.version} ${d.phase} step ${d.step}/${d.steps.length} weight ${d.weight}%${f.lastVerdict ? ` last verdict ${f.lastVerdict.verdict}: ${f.lastVerdict.explanation}` : ''}`;
}

const weightOf = (d: Deployment): number => Math.round(candidateWeight(d.status) * 100);

export function describe(d: Deployment): string {
  return `deployment ${d.id}: ${d.strategy} of ${d.version} on ${d.candidateColor} is ${d.status.phase} (step ${d.status.stepIndex + 1}/${d.status.steps.length}, weight ${weightOf(d)}%)${d.status.reason ? `: ${d.status.reason}` : ''}\n`;
}

const clock = (): string => new Date().toISOString().slice(11, 19);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
