// The types of the process graph declared in ecosystem.config.js, and its ordering: which node may
// start once which are ready (boot), and the reverse (shutdown). Pure functions, no pm2 here.
import type { Color, Config } from '../lib/config.js';
import type { DataPaths } from '../lib/paths.js';
import type { AppOptions } from './process-manager.js';

export type Probe =
  | { kind: 'postgres' }
  | { kind: 'redis' }
  | { kind: 'http'; url: string }
  /** Work the supervisor does itself (migrations): ready when it has finished. */
  | { kind: 'task' };

export interface GraphNode {
  /** The pm2 name (postgres, redis, api-blue, api-green, worker-blue, worker-green, proxy) or a task's name. */
  name: string;
  /** Names that must be ready before this one counts as ready (and that stop after it). */
  needs: string[];
  /**
   * Spawned once these are ready (some of what it needs, directly or not) rather than once all it
   * needs is: for a process that waits for the rest by itself (its probe fails until they answer),
   * so its start-up (Node's and its imports') runs alongside theirs. It is still ready only once
   * all it needs is and its own probe passes. Never for a release's code, which may expect all it
   * needs at its first line.
   */
  spawnAfter?: string[];
  /** Part of `changelens up`; false for the idle colour (a deploy starts it). */
  atBoot: boolean;
  /** A service run elsewhere (DATABASE_URL / REDIS_URL): never started, only probed. */
  external?: boolean;
  probe: Probe;
  /** pm2 options; absent for tasks. */
  app?: AppOptions;
}

export interface GraphContext {
  config: Config;
  paths: DataPaths;
  activeColor: Color;
  bin: { postgres: string; redisServer: string };
  /** The unprivileged user Postgres and Redis run as when the supervisor runs as root. */
  serviceUser: string | undefined;
  /** The environment of the appliance's own Node processes: the resolved config, with effective DATABASE_URL/REDIS_URL. */
  childEnv: Record<string, string>;
  /** What only the proxy gets (the admin token). */
  proxyEnv: Record<string, string>;
  /**
   * Everything each colour's release (its API and its worker) gets (supervisor/confinement.ts): the app's URLs, the few
   * settings the built-in API reads, its control credential, its release's settings, whom to run as.
   */
  releaseEnv: Record<Color, Record<string, string>>;
  /** The directory of the built JavaScript (dist/). */
  distDir: string;
  embedded: { postgres: boolean; redis: boolean };
}

/**
 * Checks the graph once at boot: unique names, known needs, no cycles. Returns the nodes in a
 * dependency order (each after all it needs), which is also the shutdown order reversed.
 */
export function orderGraph(nodes: readonly GraphNode[]): GraphNode[] {
  const byName = new Map<string, GraphNode>();
  for (const node of nodes) {
    if (byName.has(node.name)) throw new Error(`process graph: "${node.name}" is declared twice`);
    byName.set(node.name, node);
  }
  for (const node of nodes) {
    for (const need of node.needs) {
      if (!byName.has(need)) throw new Error(`process graph: "${node.name}" needs unknown "${need}"`);
    }
  }
  for (const node of nodes) {
    if (!node.spawnAfter) continue;
    if (node.app?.script.endsWith('/release-entry.js')) throw new Error(`process graph: "${node.name}" runs a release's code, which is spawned only once all it needs is ready (spawnAfter is not for it)`);
    const needed = new Set<string>();
    const collect = (name: string): void => {
      for (const need of byName.get(name)?.needs ?? []) if (!needed.has(need)) { needed.add(need); collect(need); }
    };
    collect(node.name);
    for (const name of node.spawnAfter) {
      if (!needed.has(name)) throw new Error(`process graph: "${node.name}" spawns after "${name}", which it does not need`);
    }
  }
  const ordered: GraphNode[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (node: GraphNode, path: string[]): void => {
    const seen = state.get(node.name);
    if (seen === 'done') return;
    if (seen === 'visiting') throw new Error(`process graph: cycle ${[...path, node.name].join(' → ')}`);
    state.set(node.name, 'visiting');
    for (const need of node.needs) visit(byName.get(need)!, [...path, node.name]);
    state.set(node.name, 'done');
    ordered.push(node);
  };
  for (const node of nodes) visit(node, []);
  return ordered;
}

/**
 * Stop stages, last started first: nodes of equal depth in the graph (the APIs and the worker)
 * stop together; a node always stops before anything it needs.
 */
export function stopStages(ordered: readonly GraphNode[]): GraphNode[][] {
  const depth = new Map<string, number>();
  for (const node of ordered) depth.set(node.name, Math.max(-1, ...node.needs.map((n) => depth.get(n) ?? 0)) + 1);
  const stages = new Map<number, GraphNode[]>();
  for (const node of ordered) stages.set(depth.get(node.name)!, [...(stages.get(depth.get(node.name)!) ?? []), node]);
  return [...stages.entries()].sort(([a], [b]) => b - a).map(([, nodes]) => nodes);
}

/** The nodes a boot brings up, in dependency order; refuses a boot node that needs a non-boot one. */
export function bootNodes(nodes: readonly GraphNode[]): GraphNode[] {
  const ordered = orderGraph(nodes);
  const atBoot = new Set(ordered.filter((n) => n.atBoot).map((n) => n.name));
  for (const node of ordered) {
    if (!node.atBoot) continue;
    const missing = node.needs.find((need) => !atBoot.has(need));
    if (missing !== undefined) throw new Error(`process graph: "${node.name}" starts at boot but needs "${missing}", which does not`);
  }
  return ordered.filter((n) => n.atBoot);
}
