// What `changelens status` shows, collected live by the running supervisor: pm2's view of each
// declared process, a real probe of Postgres and Redis, and the boot's timings.
import type { ApplianceStatus, BootStageStatus, JobsStatus, ProcessStatus, ServiceStatus } from '../lib/contracts/status.js';
import { DEAD_LETTER_STREAM, JOB_GROUP, jobStream } from '../lib/contracts/jobs.js';
import { createRedisClient, destroyQuietly } from '../lib/redis.js';
import { readRoutingSnapshot } from '../lib/routing-snapshot.js';
import type { DataPaths } from '../lib/paths.js';
import type { Color } from '../lib/config.js';
import { packageVersion } from '../lib/package-root.js';
import type { GraphNode } from './process-graph.js';
import type { ProcessManager } from './process-manager.js';
import { probePostgres, probeRedis, type ProbeResult } from './probes.js';

export interface StatusSources {
  pm: ProcessManager;
  graph: readonly GraphNode[];
  paths: DataPaths;
  urls: { database: string; redis: string };
  embedded: { postgres: boolean; redis: boolean };
  fallbackColor: Color;
  boot: { startedAt: Date; firstBoot: boolean; durationMs: number | null; readyMs: Record<string, number>; stages: BootStageStatus[] };
  phase: () => ApplianceStatus['phase'];
  /** Which worker code each colour runs ('builtin' or a script's path). */
  workerOf: (color: Color) => string | null;
}

export async function collectStatus(src: StatusSources): Promise<ApplianceStatus> {
  const [list, pgProbe, redisProbe, jobs] = await Promise.all([src.pm.list(), probePostgres(src.urls.database), probeRedis(src.urls.redis), jobsStatus(src.urls.redis, src.workerOf)]);
  const processes: ProcessStatus[] = [];
  for (const node of src.graph) {
    if (!node.app) continue;
    const found = list.filter((p) => p.name === node.name);
    if (found.length === 0) {
      processes.push({ name: node.name, state: node.external ? 'external' : 'not started', pmId: null, pid: null, uptimeMs: null, restarts: 0, rssBytes: null, cpuPercent: null });
      continue;
    }
    for (const p of found) processes.push({ ...p });
  }
  let activeColor = src.fallbackColor;
  try {
    activeColor = readRoutingSnapshot(src.paths.routing)?.activeColor ?? activeColor;
  } catch {
    // A damaged snapshot is reported by the proxy; status keeps the boot's colour.
  }
  return {
    schemaVersion: 1,
    running: true,
    phase: src.phase(),
    version: packageVersion,
    supervisorPid: process.pid,
    dataDir: src.paths.root,
    activeColor,
    boot: { startedAt: src.boot.startedAt.toISOString(), firstBoot: src.boot.firstBoot, durationMs: src.boot.durationMs, readyMs: src.boot.readyMs, stages: src.boot.stages },
    processes,
    services: {
      postgres: service(src.embedded.postgres, src.urls.database, pgProbe),
      redis: service(src.embedded.redis, src.urls.redis, redisProbe),
    },
    jobs,
  };
}

async function jobsStatus(url: string, workerOf: (color: Color) => string | null): Promise<JobsStatus | null> {
  const client = createRedisClient(url, { name: 'changelens-status', reconnect: false });
  try {
    await client.connect();
    const ofColor = async (color: Color) => {
      const stream = jobStream(color);
      const groups = (await client.exists(stream)) ? await client.xInfoGroups(stream) : [];
      const group = (groups as { name: string; pending: number; lag?: number | null }[]).find((g) => g.name === JOB_GROUP);
      // No group yet (its worker never ran): everything on the stream waits.
      const waiting = group ? group.lag ?? 0 : await client.xLen(stream);
      return { waiting, pending: group?.pending ?? 0, worker: workerOf(color) };
    };
    const [blue, green, deadLetters] = await Promise.all([ofColor('blue'), ofColor('green'), client.xLen(DEAD_LETTER_STREAM)]);
    return { waiting: blue.waiting + green.waiting, pending: blue.pending + green.pending, deadLetters, byColor: { blue, green } };
  } catch {
    return null;
  } finally {
    destroyQuietly(client);
  }
}

function service(embedded: boolean, url: string, probe: ProbeResult): ServiceStatus {
  const { hostname, port } = new URL(url);
  return {
    mode: embedded ? 'embedded' : 'external',
    reachable: probe.ok,
    latencyMs: Math.round(probe.latencyMs * 10) / 10,
    endpoint: `${hostname}:${port}`,
    ...(probe.error ? { error: probe.error } : {}),
  };
}
