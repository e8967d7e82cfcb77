// Which processes run, and starting or stopping one while the appliance runs. Boot and shutdown go
// through here too, so the shutdown order always follows the graph (reversed), whatever was
// started later. By hand, only the idle colour may be started or stopped: its API and its worker
// together (a colour is both), or its worker alone (a rollback stops the candidate's worker at
// once, so what it has not started runs on the stable colour: supervisor/job-drain.ts).
import { dirname } from 'node:path';
import { envNameOf, type Color } from '../lib/config.js';
import { RELEASE_MAIN } from '../lib/contracts/release-process.js';
import type { ArtifactEntry, WorkerEntry } from '../lib/contracts/releases.js';
import { CL_ERR_PROCESS_CONTROL } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { startProcess, type ProbeDeps } from './boot.js';
import { BUILTIN_ONLY, confineEnv } from './confinement.js';
import { stopStages, type GraphNode } from './process-graph.js';
import { workerSourceFor, writeWorkerSources, type WorkerSource, type WorkerSources } from './worker-sources.js';

export interface ProcessChange {
  name: string;
  action: 'started' | 'stopped' | 'unchanged';
  ms: number;
}

export class ProcessControl {
  private readonly running = new Set<string>();
  /** One change at a time: a start and a stop of the same colour must not interleave. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    /** The graph in dependency order. */
    private readonly graph: readonly GraphNode[],
    private readonly deps: ProbeDeps,
    private readonly activeColor: () => Color,
    /** Aborted when the appliance stops: a start in progress gives up instead of delaying the stop. */
    private readonly stopping: AbortSignal,
    /** Which worker code each colour runs (the boot's for the active colour), and where that is kept. */
    private readonly workers: { path: string; sources: WorkerSources },
  ) {}

  /** The worker code a colour runs (or ran last). */
  workerSource(color: Color): WorkerSource | undefined {
    return this.workers.sources[color];
  }

  /** Records a process started by the boot. */
  noteStarted(name: string): void {
    this.running.add(name);
  }

  isRunning(name: string): boolean {
    return this.running.has(name);
  }

  /**
   * Starts an idle colour, its worker first, then its API; `env` is the release's own settings for
   * both (validated by the caller), `artifact` another app to run instead of the built-in one. A
   * release without a worker of its own runs the stable colour's worker code.
   */
  start(name: string, env: Record<string, string> = {}, artifact?: ArtifactEntry): Promise<ProcessChange> {
    return this.serially(async () => {
      const node = this.manualNode(name, 'start');
      if (!node.name.startsWith('api-')) throw new CL_ERR_PROCESS_CONTROL(`cannot start ${name} alone: start api-${colorOf(name)}, which starts its worker too`);
      const t = performance.now();
      const color = colorOf(name);
      const worker = this.graph.find((n) => n.name === `worker-${color}`)!;
      if (this.running.has(name) && this.running.has(worker.name)) return { name, action: 'unchanged', ms: 0 };
      // The active colour is never (re)started by hand: it serves everyone, with the active release.
      if (color === this.activeColor()) throw new CL_ERR_PROCESS_CONTROL(`cannot start ${name}: ${color} is the active colour`);
      // Refused (inherited code gone) before anything is stopped.
      const source = workerSourceFor(artifact, this.workers.sources[color === 'blue' ? 'green' : 'blue']);
      // Its worker was stopped alone (a rollback): the colour starts again whole, with this release.
      await this.remove(name);
      try {
        // A worker left running (stopped alone never; a crash restarts it) is replaced: it may run an older release.
        await this.remove(worker.name);
        await startProcess(nodeForRelease(worker, env, source === 'builtin' ? undefined : source), this.deps, this.stopping, (n) => this.running.add(n));
        await startProcess(nodeForRelease(node, env, artifact), this.deps, this.stopping, (n) => this.running.add(n));
      } catch (err) {
        // Leave nothing half-started behind.
        await Promise.all([this.remove(name), this.remove(worker.name)]);
        throw err;
      }
      this.workers.sources[color] = source;
      writeWorkerSources(this.workers.path, this.workers.sources);
      return { name, action: 'started', ms: Math.round(performance.now() - t) };
    });
  }

  /** Stops an idle colour (its API and its worker), or only its worker. */
  stop(name: string): Promise<ProcessChange> {
    return this.serially(async () => {
      this.manualNode(name, 'stop');
      const color = colorOf(name);
      if (color === this.activeColor()) throw new CL_ERR_PROCESS_CONTROL(`cannot stop ${name}: ${color} is the active colour`);
      const t = performance.now();
      const names = name.startsWith('api-') ? [name, `worker-${color}`] : [name];
      if (!names.some((n) => this.running.has(n))) return { name, action: 'unchanged', ms: 0 };
      await Promise.all(names.map((n) => this.remove(n)));
      return { name, action: 'stopped', ms: Math.round(performance.now() - t) };
    });
  }

  /**
   * Stops everything in reverse dependency order — the proxy, then the APIs and the worker
   * together, then Redis and Postgres together — each stage after the one before has exited.
   */
  async stopAll(log: Logger): Promise<void> {
    await this.serially(async () => {
      const t0 = performance.now();
      for (const stage of stopStages(this.graph)) {
        await Promise.all(stage.filter((node) => this.running.has(node.name)).map(async (node) => {
          const t = performance.now();
          try {
            await this.deps.pm.stop(node.name);
            this.running.delete(node.name);
            log.info({ process: node.name, ms: Math.round(performance.now() - t) }, `${node.name} stopped`);
          } catch (err) {
            log.error({ process: node.name, err: (err as Error).message }, `${node.name} did not stop cleanly`);
          }
        }));
      }
      log.info({ ms: Math.round(performance.now() - t0) }, 'appliance stopped');
    });
  }

  private async remove(name: string): Promise<void> {
    await this.deps.pm.stop(name).catch(() => {});
    await this.deps.pm.delete(name).catch(() => {});
    this.running.delete(name);
  }

  private manualNode(name: string, verb: string): GraphNode {
    const node = this.graph.find((n) => n.name === name);
    if (!node || !/^(api|worker)-(blue|green)$/.test(name)) {
      throw new CL_ERR_PROCESS_CONTROL(`cannot ${verb} ${JSON.stringify(name)}: only a colour (api-blue, api-green) or its worker (worker-blue, worker-green) can be ${verb === 'start' ? 'started' : 'stopped'} by hand`);
    }
    return node;
  }

  private inProgress = 0;

  /** A start or stop is queued or under way: which processes run is about to change. */
  changing(): boolean {
    return this.inProgress > 0;
  }

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    this.inProgress++;
    const run = this.tail.then(fn, fn).finally(() => this.inProgress--);
    this.tail = run.catch(() => {});
    return run;
  }
}

const colorOf = (name: string): Color => (name.endsWith('-blue') ? 'blue' : 'green');

/**
 * A colour's API or worker node set up for one release: its env and, for another app's code (its
 * entry point, or its worker's), its script and probe.
 */
export function nodeForRelease(node: GraphNode, env: Record<string, string>, artifact?: ArtifactEntry | WorkerEntry): GraphNode {
  const ours = node.app!.env!;
  if (!artifact || node.probe.kind !== 'http') return { ...node, app: { ...node.app!, env: confineEnv(ours, ours[RELEASE_MAIN]!, env) } };
  // Another app: it listens on $PORT (the colour's port, or its worker's) and answers its readiness path there.
  const url = new URL(node.probe.url);
  return {
    ...node,
    probe: { kind: 'http', url: `${url.origin}${artifact.readyPath}` },
    // It knows nothing of pm2's "shutdown" message: stop it with a signal (SIGINT). It runs in its
    // own directory, through the same entry (its user, its env).
    app: { ...node.app!, cwd: dirname(artifact.script), shutdown_with_message: false, env: confineEnv({ ...withoutBuiltinOnly(ours), PORT: url.port }, artifact.script, env) },
  };
}

/** Another app is not ours: it never gets the built-in API's control credential nor its settings. */
function withoutBuiltinOnly(env: Record<string, string>): Record<string, string> {
  const builtinOnly = new Set<string>(BUILTIN_ONLY.map((key) => envNameOf(key)));
  return Object.fromEntries(Object.entries(env).filter(([name]) => !builtinOnly.has(name)));
}
