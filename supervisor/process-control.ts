// Which processes run, and starting or stopping one while the appliance runs. Boot and shutdown go
// through here too, so the shutdown order always follows the graph (reversed), whatever was
// started later. By hand, only the idle API colour may be started or stopped — the rollout
// controller will drive exactly this to bring a release up on the idle colour.
import { dirname } from 'node:path';
import { envNameOf, type Color } from '../lib/config.js';
import { RELEASE_MAIN } from '../lib/contracts/release-process.js';
import type { ArtifactEntry } from '../lib/contracts/releases.js';
import { CL_ERR_PROCESS_CONTROL } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { startProcess, type ProbeDeps } from './boot.js';
import { BUILTIN_ONLY, confineEnv } from './confinement.js';
import { stopStages, type GraphNode } from './process-graph.js';

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
  ) {}

  /** Records a process started by the boot. */
  noteStarted(name: string): void {
    this.running.add(name);
  }

  isRunning(name: string): boolean {
    return this.running.has(name);
  }

  /**
   * Starts an idle colour; `env` is the release's own settings for it (validated by the caller),
   * `artifact` another app to run instead of the built-in API.
   */
  start(name: string, env: Record<string, string> = {}, artifact?: ArtifactEntry): Promise<ProcessChange> {
    return this.serially(async () => {
      const node = this.manualNode(name, 'start');
      const t = performance.now();
      if (this.running.has(name)) return { name, action: 'unchanged', ms: 0 };
      const withEnv = nodeForRelease(node, env, artifact);
      try {
        await startProcess(withEnv, this.deps, this.stopping, (n) => this.running.add(n));
      } catch (err) {
        // Leave nothing half-started behind.
        await this.remove(name);
        throw err;
      }
      return { name, action: 'started', ms: Math.round(performance.now() - t) };
    });
  }

  stop(name: string): Promise<ProcessChange> {
    return this.serially(async () => {
      this.manualNode(name, 'stop');
      if (name === `api-${this.activeColor()}`) throw new CL_ERR_PROCESS_CONTROL(`cannot stop ${name}: it is the active colour`);
      const t = performance.now();
      if (!this.running.has(name)) return { name, action: 'unchanged', ms: 0 };
      await this.remove(name);
      return { name, action: 'stopped', ms: Math.round(performance.now() - t) };
    });
  }

  /**
   * Stops everything in reverse dependency order — the proxy, then the APIs and the worker
   * together, then Redis, then Postgres — each stage after the one before has exited.
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
    if (!node || !/^api-(blue|green)$/.test(name)) {
      throw new CL_ERR_PROCESS_CONTROL(`cannot ${verb} ${JSON.stringify(name)}: only api-blue and api-green can be ${verb === 'start' ? 'started' : 'stopped'} by hand`);
    }
    return node;
  }

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => {});
    return run;
  }
}

/** An API colour's node set up for one release: its env and, for another app, its script and probe. */
export function nodeForRelease(node: GraphNode, env: Record<string, string>, artifact?: ArtifactEntry): GraphNode {
  const ours = node.app!.env!;
  if (!artifact || node.probe.kind !== 'http') return { ...node, app: { ...node.app!, env: confineEnv(ours, ours[RELEASE_MAIN]!, env) } };
  // Another app: it listens on $PORT (the colour's port) and answers its readiness path there.
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
