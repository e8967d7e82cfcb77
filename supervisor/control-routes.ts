// What the control socket answers once the graph is up, besides status: starting and stopping a
// colour (for the rollout controller and `changelens process`), a colour's state, the monitor's.
import type { Config } from '../lib/config.js';
import type { DataPaths } from '../lib/paths.js';
import type { ControlRoute } from './control-socket.js';
import { LOG_LEVELS, type LogLevelName, type LogRing } from './log-ring.js';
import type { ProcessControl } from './process-control.js';
import type { ProcessManager } from './process-manager.js';
import { releaseArtifact, releaseEnv } from './release-env.js';

export interface ProcessRoutesOptions {
  control: ProcessControl;
  pm: ProcessManager;
  /** Runs fn only between the end of the boot and the stop; refuses otherwise. */
  whenReady: <T>(fn: () => Promise<T>) => Promise<T>;
  monitorStatus: () => unknown;
  config: Config;
  paths: DataPaths;
  /** Opens a release's sealed secrets (lib/contracts/release-secrets.ts). */
  releaseSecretsKey: Buffer;
}

export function processRoutes(o: ProcessRoutesOptions): ControlRoute[] {
  return [
    { method: 'POST', path: /^\/processes\/([a-z-]+)\/start(?:\?(.*))?$/, handler: (name, query) => o.whenReady(() => o.control.start(name!, releaseEnv(o.config, query, o.releaseSecretsKey), releaseArtifact(o.paths, query))) },
    { method: 'POST', path: /^\/processes\/([a-z-]+)\/stop$/, handler: (name) => o.whenReady(() => o.control.stop(name!)) },
    // For the proxy's Prometheus exposition: the monitor's rules, without the full status's probes.
    { method: 'GET', path: /^\/monitor$/, handler: () => o.monitorStatus() },
    // …and each process: whether it should run (started, not stopped: an idle colour should not) and whether all its instances are online.
    { method: 'GET', path: /^\/processes$/, handler: async () => {
      const byName = new Map<string, boolean>();
      for (const p of await o.pm.list()) byName.set(p.name, (byName.get(p.name) ?? true) && p.state === 'online');
      return [...byName].map(([name, online]) => ({ name, expected: o.control.isRunning(name), online }));
    } },
    // Cheap, for the rollout controller: is a colour running (started and not stopped), are all its
    // instances online, and how often has pm2 restarted them (a crash is a fast trip).
    { method: 'GET', path: /^\/processes\/([a-z-]+)$/, handler: async (name) => {
      const instances = o.control.isRunning(name!) ? await o.pm.describe(name!) : [];
      return {
        name, running: o.control.isRunning(name!),
        online: instances.length > 0 && instances.every((p) => p.state === 'online'),
        restarts: instances.reduce((n, p) => n + p.restarts, 0),
        pids: instances.map((p) => p.pid),
      };
    } },
  ];
}

/**
 * GET /logs?service=&since=&lines=&follow=1: the kept log lines as NDJSON, then (follow) new ones.
 * A bad query is refused naming the field.
 */
export function logsRoute(ring: LogRing): ControlRoute {
  return {
    method: 'GET', path: /^\/logs(?:\?(.*))?$/,
    stream: (res, query = '') => {
      const q = new URLSearchParams(query);
      const bad = (field: string, expected: string): void => {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'CL_ERR_INVALID_REQUEST', message: `${field}: expected ${expected}, got ${JSON.stringify(q.get(field))}`, hint: 'run: changelens logs --help' }));
      };
      const service = q.get('service') ?? undefined;
      if (service !== undefined && !/^[a-z0-9-]{1,40}$/.test(service)) return bad('service', 'a service name like proxy, api or api-green');
      const since = q.get('since');
      if (since !== null && !/^\d{1,15}$/.test(since)) return bad('since', 'ms since the epoch');
      const lines = q.get('lines');
      if (lines !== null && !(/^\d{1,5}$/.test(lines) && Number(lines) >= 1)) return bad('lines', 'an integer 1-99999');
      const level = q.get('level');
      if (level !== null && !(LOG_LEVELS as readonly string[]).includes(level)) return bad('level', LOG_LEVELS.join(', '));
      ring.serve(res, { ...(service ? { service } : {}), ...(since !== null ? { since: Number(since) } : {}), ...(lines !== null ? { lines: Number(lines) } : {}), ...(level !== null ? { level: level as LogLevelName } : {}) }, q.get('follow') === '1');
    },
  };
}
