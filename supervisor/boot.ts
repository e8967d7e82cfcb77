// Ordered, probed start-up on top of pm2: a node starts only once everything it needs has passed
// a real readiness probe; independent nodes start side by side. pm2 alone reports a crash-looping
// program "online", so while probing we also watch pm2's view and fail fast on `errored` or on a
// crash loop, naming the service and quoting its last log lines.
import type { Logger } from '../lib/logger.js';
import { CL_ERR_DEPENDENCY_FAILED } from '../lib/errors.js';
import type { GraphNode, Probe } from './process-graph.js';
import type { ProcessManager } from './process-manager.js';
import { probeHttp, probePostgres, probeRedis, type ProbeResult } from './probes.js';

export interface ProbeDeps {
  pm: ProcessManager;
  log: Logger;
  urls: { database: string; redis: string };
  readyTimeoutMs: number;
}

export interface BootDeps extends ProbeDeps {
  /** Told each node's name as it starts (spawned, or its task begun), in ms from the boot's start. */
  onStarted?: (name: string, ms: number) => void;
  /** Told each node's name as it becomes ready, in ms from the boot's start. */
  onReady?: (name: string, ms: number) => void;
  /** Runs a task node (migrations). */
  runTask: (node: GraphNode) => Promise<void>;
  /** Aborted by SIGTERM/SIGINT during boot. */
  signal: AbortSignal;
}

export interface BootResult {
  /** Milliseconds from the start of the boot until each node was ready (each node's start: `onStarted`). */
  readyMs: Record<string, number>;
}

/** How often a starting process is probed: boot waits on these, so short. */
const PROBE_INTERVAL_MS = 50;
/** Restarts during boot that mean "crash loop" rather than "a slow start". */
const CRASH_LOOP_RESTARTS = 3;

export async function bootGraph(nodes: readonly GraphNode[], deps: BootDeps, started: { push(name: string): void }): Promise<BootResult> {
  const t0 = performance.now();
  const since = (): number => Math.round(performance.now() - t0);
  const readyMs: Record<string, number> = {};
  const ready = new Map<string, Promise<void>>();
  const abort = new AbortController();
  deps.signal.addEventListener('abort', () => abort.abort(), { once: true });

  const bringUp = async (node: GraphNode): Promise<void> => {
    const needs = Promise.all(node.needs.map((need) => ready.get(need)));
    needs.catch(() => {}); // awaited below; a failed need fails the boot where it failed
    const owned = !node.external && node.app !== undefined;
    let startedMs: number;
    if (node.spawnAfter && owned) {
      // Its start-up overlaps the rest of its needs'; it becomes ready only after them (its probe is the gate).
      await Promise.all(node.spawnAfter.map((name) => ready.get(name)));
      if (abort.signal.aborted) throw interrupted(node);
      startedMs = since();
      deps.onStarted?.(node.name, startedMs);
      await spawn(node, deps, (name) => started.push(name));
      await needs;
      await waitUntilReady(node, deps, abort.signal);
    } else {
      await needs;
      if (abort.signal.aborted) throw interrupted(node);
      startedMs = since();
      deps.onStarted?.(node.name, startedMs);
      if (node.probe.kind === 'task') {
        await deps.runTask(node);
      } else {
        await startProcess(node, deps, abort.signal, (name) => started.push(name));
      }
    }
    readyMs[node.name] = since();
    deps.onReady?.(node.name, readyMs[node.name]!);
    deps.log.info({ process: node.name, ms: readyMs[node.name]! - startedMs, external: node.external === true }, `${node.name} ready`);
  };

  // Nodes arrive in dependency order, so every need's promise exists when a node is mapped.
  for (const node of nodes) ready.set(node.name, bringUp(node));
  try {
    await Promise.all(ready.values());
  } catch (err) {
    abort.abort();
    // Let the others settle (their probes see the abort) before the caller stops what started.
    await Promise.allSettled(ready.values());
    throw err;
  }
  return { readyMs };
}

/** Starts a node's process under pm2 (unless external) and waits until it passes its probe. */
export async function startProcess(node: GraphNode, deps: ProbeDeps, signal: AbortSignal, onStarted: (name: string) => void): Promise<void> {
  await spawn(node, deps, onStarted);
  await waitUntilReady(node, deps, signal);
}

/** Starts a node's process under pm2, unless it is external. */
async function spawn(node: GraphNode, deps: ProbeDeps, onStarted: (name: string) => void): Promise<void> {
  if (node.external || !node.app) return;
  deps.log.info({ process: node.name }, `starting ${node.name}`);
  await deps.pm.start(node.app);
  onStarted(node.name);
}

/** Waits until a node passes its probe (and pm2 does not report it dead or crash-looping). */
export async function waitUntilReady(node: GraphNode, deps: ProbeDeps, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + deps.readyTimeoutMs;
  let last: ProbeResult | undefined;
  for (;;) {
    if (signal.aborted) throw interrupted(node);
    if (!node.external && node.app) {
      const procs = await deps.pm.describe(node.name);
      const dead = procs.find((p) => p.state === 'errored' || p.state === 'stopped');
      if (dead) throw failure(node, deps, `pm2 reports it ${dead.state} after ${dead.restarts} restarts`);
      const looping = procs.find((p) => p.restarts >= CRASH_LOOP_RESTARTS);
      if (looping) throw failure(node, deps, `it is crash-looping (${looping.restarts} restarts while starting)`);
    }
    last = await runProbe(node.probe, deps.urls);
    if (last.ok) return;
    if (Date.now() >= deadline) {
      throw failure(node, deps, `no successful ${describeProbe(node.probe)} within ${deps.readyTimeoutMs} ms (last: ${last.error ?? 'no answer'})`);
    }
    await new Promise((r) => setTimeout(r, PROBE_INTERVAL_MS));
  }
}

export function runProbe(probe: Probe, urls: { database: string; redis: string }): Promise<ProbeResult> {
  switch (probe.kind) {
    case 'postgres': return probePostgres(urls.database);
    case 'redis': return probeRedis(urls.redis);
    case 'http': return probeHttp(probe.url);
    case 'task': return Promise.resolve({ ok: true, latencyMs: 0 });
  }
}

function describeProbe(probe: Probe): string {
  switch (probe.kind) {
    case 'postgres': return 'SELECT 1';
    case 'redis': return 'PING';
    case 'http': return `GET ${probe.url}`;
    case 'task': return 'run';
  }
}

function interrupted(node: GraphNode): Error {
  return new Error(`boot interrupted before ${node.name} was ready`);
}

function failure(node: GraphNode, deps: ProbeDeps, reason: string): Error {
  const lines = deps.pm.lastLines(node.name).slice(-15);
  const tail = lines.length > 0 ? `\n--- last log lines of ${node.name} ---\n${lines.join('\n')}` : node.external ? '' : `\n(${node.name} printed nothing)`;
  return new CL_ERR_DEPENDENCY_FAILED(node.name, reason, tail);
}
