// pm2, driven through its programmatic API, in-process ("no daemon" mode, as pm2-runtime does):
// the supervisor is pm2's God process, so nothing outlives `changelens up`, and PM2_HOME sits in
// the data dir. This file only adapts pm2's callbacks to promises and its log bus to lines; the
// ordering, probing and shutdown policy live in boot.ts and shutdown.ts.
import cluster from 'node:cluster';
import { createRequire } from 'node:module';
import { forkWorkersWithoutOurEnv, guardReleaseListens } from './confinement.js';

const require = createRequire(import.meta.url);

/** The subset of pm2's start options we use (pm2's own typings lack the in-process API). */
export interface AppOptions {
  name: string;
  script: string;
  cwd?: string;
  args?: string[];
  interpreter?: string;
  node_args?: string[];
  exec_mode?: 'fork' | 'cluster';
  instances?: number;
  env?: Record<string, string>;
  user?: string;
  out_file?: string;
  error_file?: string;
  merge_logs?: boolean;
  autorestart?: boolean;
  treekill?: boolean;
  kill_timeout?: number;
  min_uptime?: number;
  max_restarts?: number;
  restart_delay?: number;
  exp_backoff_restart_delay?: number;
  /** Inject pm2's @pm2/io agent into a Node process. */
  pmx?: boolean;
  /** Substrings of inherited environment variable names to drop. */
  filter_env?: string[];
  shutdown_with_message?: boolean;
  automation?: boolean;
}

/** One pm2 process as status reports it. pm2's states: online, stopping, stopped, launching, errored, one-launch-status. */
export interface ProcessInfo {
  name: string;
  pmId: number;
  state: string;
  pid: number | null;
  uptimeMs: number | null;
  restarts: number;
  rssBytes: number | null;
  cpuPercent: number | null;
}

export interface LogLine {
  name: string;
  stream: 'out' | 'err';
  line: string;
}

interface Pm2Description {
  name: string;
  pm_id: number;
  pid?: number;
  monit?: { memory?: number; cpu?: number };
  pm2_env?: { status?: string; pm_uptime?: number; restart_time?: number; unstable_restarts?: number };
}

interface Pm2Bus {
  on(event: string, handler: (packet: { process: { name: string; pm_id: number }; data: string; event?: string }) => void): void;
}

/** A lifecycle event pm2 reports for a process: exit, restart, online, restart overlimit … */
export interface ProcessEvent {
  name: string;
  event: string;
}

interface Pm2Api {
  connect(noDaemon: boolean, cb: (err: Error | null, value?: unknown) => void): void;
  start(options: AppOptions, cb: (err: Error | null, value?: unknown) => void): void;
  stop(name: string, cb: (err: Error | null, value?: unknown) => void): void;
  delete(name: string, cb: (err: Error | null, value?: unknown) => void): void;
  list(cb: (err: Error | null, list: Pm2Description[]) => void): void;
  restart(name: string, cb: (err: Error | null, value?: unknown) => void): void;
  scale(name: string, instances: number, cb: (err: Error | null, value?: unknown) => void): void;
  launchBus(cb: (err: Error | null, bus: Pm2Bus) => void): void;
}

const TAIL_LINES = 30;
/** An unfinished line longer than this is passed on as it is. */
const MAX_PARTIAL = 1024 * 1024;

export class ProcessManager {
  private readonly tails = new Map<string, string[]>();
  private readonly partial = new Map<string, string>();
  private readonly listeners: ((line: LogLine) => void)[] = [];
  private readonly eventListeners: ((event: ProcessEvent) => void)[] = [];

  private constructor(private readonly pm2: Pm2Api) {}

  /**
   * `releasePorts`: each API colour's process name and the one port it may listen on (through the
   * supervisor, as every cluster worker does); `refused` hears of anything else it asks.
   */
  static async connect(pm2Home: string, guard?: { releasePorts: Record<string, number>; refused: (name: string, what: string) => void }): Promise<ProcessManager> {
    process.env.PM2_HOME = pm2Home;
    // Cluster workers (the API colours) accept their connections themselves from the shared socket.
    // Node's default on Linux, round-robin, accepts in this process and passes each connection on
    // over IPC: a connection passed to a worker that dies before taking it is neither closed nor
    // given to another, and the proxy's request on it waits for an answer that never comes (seen
    // as a 10 s client timeout during an API kill -9 under load). Frozen at pm2's first setup.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    forkWorkersWithoutOurEnv(cluster);
    if (guard) guardReleaseListens(cluster, (name) => guard.releasePorts[name], guard.refused);
    const Pm2 = require('pm2') as { custom: new (opts: object) => Pm2Api };
    const pm2 = new Pm2.custom({ pm2_home: pm2Home, daemon_mode: false });
    await callback((cb) => pm2.connect(true, cb));
    const manager = new ProcessManager(pm2);
    const bus = await callback<Pm2Bus>((cb) => pm2.launchBus(cb));
    bus.on('log:out', (p) => manager.collect(p.process.name, 'out', p.data));
    bus.on('log:err', (p) => manager.collect(p.process.name, 'err', p.data));
    bus.on('process:event', (p) => {
      for (const listener of manager.eventListeners) listener({ name: p.process.name, event: p.event ?? 'unknown' });
    });
    return manager;
  }

  /** Every complete line any process prints, in order per process and stream. */
  onLine(listener: (line: LogLine) => void): void {
    this.listeners.push(listener);
  }

  onEvent(listener: (event: ProcessEvent) => void): void {
    this.eventListeners.push(listener);
  }

  /** The last lines a process printed, for error messages. */
  lastLines(name: string): string[] {
    return [...(this.tails.get(name) ?? [])];
  }

  start(app: AppOptions): Promise<void> {
    return callback((cb) => this.pm2.start(app, cb)).then(() => undefined);
  }

  /** Sends pm2's kill signal (SIGINT) and resolves once the process exited (or was killed after kill_timeout). */
  async stop(name: string): Promise<void> {
    await callback((cb) => this.pm2.stop(name, cb));
  }

  async delete(name: string): Promise<void> {
    await callback((cb) => this.pm2.delete(name, cb));
  }

  async restart(name: string): Promise<void> {
    await callback((cb) => this.pm2.restart(name, cb));
  }

  /** Cluster mode: instances share the port, so more of them serve more of the same colour. */
  async scale(name: string, instances: number): Promise<void> {
    await callback((cb) => this.pm2.scale(name, instances, cb));
  }

  async list(): Promise<ProcessInfo[]> {
    const list = await callback<Pm2Description[]>((cb) => this.pm2.list(cb));
    const now = Date.now();
    return list.map((p) => {
      const state = p.pm2_env?.status ?? 'unknown';
      const running = state === 'online' || state === 'launching' || state === 'stopping';
      return {
        name: p.name,
        pmId: p.pm_id,
        state,
        pid: running && p.pid ? p.pid : null,
        uptimeMs: running && p.pm2_env?.pm_uptime ? now - p.pm2_env.pm_uptime : null,
        restarts: p.pm2_env?.restart_time ?? 0,
        rssBytes: running ? (p.monit?.memory ?? null) : null,
        cpuPercent: running ? (p.monit?.cpu ?? null) : null,
      };
    });
  }

  async describe(name: string): Promise<ProcessInfo[]> {
    return (await this.list()).filter((p) => p.name === name);
  }

  private collect(name: string, stream: 'out' | 'err', data: string): void {
    const key = `${name}\0${stream}`;
    const text = (this.partial.get(key) ?? '') + data;
    const lines = text.split('\n');
    // A process that prints without ever ending a line cannot grow this without bound.
    const rest = lines.pop() ?? '';
    if (rest.length > MAX_PARTIAL) lines.push(rest);
    this.partial.set(key, rest.length > MAX_PARTIAL ? '' : rest);
    let tail = this.tails.get(name);
    if (tail === undefined) this.tails.set(name, (tail = []));
    for (const raw of lines) {
      const line = raw.replace(/\r$/, '');
      if (line === '') continue;
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
      // A listener's failure must not escape into pm2's bus (it would take the supervisor down).
      for (const listener of this.listeners) {
        try {
          listener({ name, stream, line });
        } catch { /* the line is lost, nothing else */ }
      }
    }
  }
}

function callback<T = unknown>(fn: (cb: (err: Error | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    fn((err, value) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(value as T)));
  });
}
