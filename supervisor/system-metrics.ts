// What the monitor rules look at, sampled by the supervisor: CPU and memory of the container
// (cgroup v2 when there is one, so a container's limit, not the host's size, is 100 %), disk of the
// data dir, Postgres connections, Redis memory, the supervisor's event-loop lag, pm2 restarts, and
// whether each running service answers its probe (down:<name> = 1 when it does not).
import { readFileSync, statfsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import pg from 'pg';
import { createRedisClient, destroyQuietly } from '../lib/redis.js';
import type { GraphNode } from './process-graph.js';
import type { ProcessManager } from './process-manager.js';
import { probeHttp, probePostgres, probeRedis } from './probes.js';

export interface SamplerDeps {
  pm: ProcessManager;
  dataDir: string;
  urls: { database: string; redis: string };
  /** The graph's nodes that are running now (the idle colour is not). */
  running: () => GraphNode[];
}

export type Sample = Record<string, number>;

export class SystemSampler {
  private lastCpu: { usageUs: number; atMs: number } | null = null;
  private lastRestarts = new Map<string, number>();
  private readonly lag = monitorEventLoopDelay({ resolution: 20 });

  constructor(private readonly deps: SamplerDeps) {
    this.lag.enable();
  }

  async sample(): Promise<Sample> {
    const out: Sample = {};
    const cpu = this.cpuPercent();
    if (cpu !== null) out.cpu_percent = cpu;
    const memory = memoryPercent();
    if (memory !== null) out.memory_percent = memory;
    try {
      const fs = statfsSync(this.deps.dataDir);
      out.disk_percent = fs.blocks > 0 ? (100 * (fs.blocks - fs.bavail)) / fs.blocks : 0;
    } catch { /* no data dir: no figure */ }
    out.event_loop_lag_ms = this.lag.percentile(99) / 1e6;
    this.lag.reset();

    const [pgConnections, redisMb, list] = await Promise.all([pgConnectionCount(this.deps.urls.database), redisMemoryMb(this.deps.urls.redis), this.deps.pm.list().catch(() => [])]);
    if (pgConnections !== null) out.pg_connections = pgConnections;
    if (redisMb !== null) out.redis_memory_mb = redisMb;

    let restarts = 0;
    for (const p of list) {
      const before = this.lastRestarts.get(`${p.name}/${p.pmId}`);
      if (before !== undefined && p.restarts > before) restarts += p.restarts - before;
      this.lastRestarts.set(`${p.name}/${p.pmId}`, p.restarts);
    }
    out.process_restarts = restarts;

    await Promise.all(this.deps.running().map(async (node) => {
      out[`down:${node.name}`] = (await probe(node, this.deps.urls)) ? 0 : 1;
    }));
    return out;
  }

  stop(): void {
    this.lag.disable();
  }

  /** Share of the CPUs this container may use, over the time since the last sample. */
  private cpuPercent(): number | null {
    const usageUs = cgroupCpuUsageUs() ?? procCpuUsageUs();
    if (usageUs === null) return null;
    const now = Date.now();
    const last = this.lastCpu;
    this.lastCpu = { usageUs, atMs: now };
    if (!last || now <= last.atMs) return null;
    return Math.min(100, (100 * (usageUs - last.usageUs)) / ((now - last.atMs) * 1000 * cpuLimit()));
  }
}

async function probe(node: GraphNode, urls: { database: string; redis: string }): Promise<boolean> {
  switch (node.probe.kind) {
    case 'postgres': return (await probePostgres(urls.database)).ok;
    case 'redis': return (await probeRedis(urls.redis)).ok;
    case 'http': return (await probeHttp(node.probe.url)).ok;
    case 'task': return true;
  }
}

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function cgroupCpuUsageUs(): number | null {
  const m = /usage_usec (\d+)/.exec(read('/sys/fs/cgroup/cpu.stat') ?? '');
  return m ? Number(m[1]) : null;
}

/** Whole-machine busy time from /proc/stat, in µs (USER_HZ is 100 on Linux). */
function procCpuUsageUs(): number | null {
  const line = (read('/proc/stat') ?? '').split('\n')[0];
  if (!line?.startsWith('cpu ')) return null;
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) * 10_000;
}

/** CPUs available: the cgroup's quota when set, else the machine's. */
function cpuLimit(): number {
  const [quota, period] = (read('/sys/fs/cgroup/cpu.max') ?? 'max').trim().split(/\s+/);
  if (quota && quota !== 'max' && period) return Math.max(0.01, Number(quota) / Number(period));
  return availableParallelism();
}

function memoryPercent(): number | null {
  const current = Number(read('/sys/fs/cgroup/memory.current'));
  const max = (read('/sys/fs/cgroup/memory.max') ?? '').trim();
  const meminfo = read('/proc/meminfo') ?? '';
  const kb = (key: string): number | null => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(meminfo);
    return m ? Number(m[1]) * 1024 : null;
  };
  const total = max && max !== 'max' ? Number(max) : kb('MemTotal');
  if (Number.isFinite(current) && current > 0 && total) return (100 * current) / total;
  const available = kb('MemAvailable');
  return total && available !== null ? (100 * (total - available)) / total : null;
}

async function pgConnectionCount(url: string): Promise<number | null> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_500, query_timeout: 1_500 });
  client.on('error', () => {});
  try {
    await client.connect();
    const { rows } = await client.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend'");
    return rows[0].n as number;
  } catch {
    return null;
  } finally {
    client.end().catch(() => {});
  }
}

async function redisMemoryMb(url: string): Promise<number | null> {
  const client = createRedisClient(url, { name: 'changelens-monitor', reconnect: false });
  try {
    await client.connect();
    const info = await client.info('memory');
    const m = /used_memory:(\d+)/.exec(info);
    return m ? Number(m[1]) / 1048576 : null;
  } catch {
    return null;
  } finally {
    destroyQuietly(client);
  }
}
