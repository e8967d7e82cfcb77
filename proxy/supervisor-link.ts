// The rollout controller's hands: starting and stopping a colour (its API and worker) through the supervisor's
// control socket (the proxy runs under the supervisor, which owns pm2).
import type { Color } from '../lib/config.js';
import type { ApplianceStatus, BackupSummary, MonitorStatusSummary } from '../lib/contracts/status.js';
import { relative, join } from 'node:path';
import { queryControl } from '../supervisor/control-socket.js';
import { readWorkerSources } from '../supervisor/worker-sources.js';
import type { ColorHealth, Release, SupervisorLink } from '../rollout/index.js';

export function supervisorLink(socketPath: string, dataDir: string, upstreams: Record<Color, string>, readyTimeoutMs: number): SupervisorLink {
  return {
    async start(color: Color, release: Release): Promise<void> {
      const query = new URLSearchParams();
      for (const [key, value] of Object.entries(release.env)) query.append('set', `${key}=${value}`);
      query.set('artifact', release.artifact);
      // The supervisor answers once the colour passed its readiness probe (or gave up).
      await queryControl(socketPath, `/processes/api-${color}/start?${query}`, dataDir, { method: 'POST', timeoutMs: readyTimeoutMs + 15_000 });
    },
    async stop(color: Color): Promise<void> {
      await queryControl(socketPath, `/processes/api-${color}/stop`, dataDir, { method: 'POST', timeoutMs: 30_000 });
    },
    async stopWorker(color: Color): Promise<void> {
      await queryControl(socketPath, `/processes/worker-${color}/stop`, dataDir, { method: 'POST', timeoutMs: 30_000 });
    },
    async health(color: Color): Promise<ColorHealth> {
      type Proc = { running: boolean; online: boolean; restarts: number };
      const [p, w] = await Promise.all([
        queryControl<Proc>(socketPath, `/processes/api-${color}`, dataDir, { timeoutMs: 2_000 }),
        queryControl<Proc>(socketPath, `/processes/worker-${color}`, dataDir, { timeoutMs: 2_000 }).catch(() => null),
      ]);
      const worker = w ? { worker: { running: w.running, restarts: w.restarts } } : {};
      if (!p.running) return { running: false, online: false, restarts: p.restarts, ready: false, error: `api-${color} is not running`, ...worker };
      // Started is not enough: it must answer (another app may not have /readyz: any answer but a 5xx).
      try {
        const res = await fetch(`${upstreams[color]}/readyz`, { signal: AbortSignal.timeout(1_000) });
        await res.arrayBuffer();
        return { running: true, online: p.online, restarts: p.restarts, ready: res.status < 500, ...(res.status < 500 ? {} : { error: `/readyz answered ${res.status}` }), ...worker };
      } catch (err) {
        return { running: true, online: p.online, restarts: p.restarts, ready: false, error: `/readyz: ${(err as Error).message}`, ...worker };
      }
    },
  };
}

/**
 * `/healthz?all=1`: each process's pm2 state and Postgres/Redis reachability, from the supervisor;
 * `degraded` when any is not well (or the supervisor does not answer).
 */
export async function healthDetails(socketPath: string, dataDir: string): Promise<{ status: 'ok' | 'degraded'; [key: string]: unknown }> {
  try {
    const s = await queryControl<ApplianceStatus>(socketPath, '/status', dataDir, { timeoutMs: 3_000 });
    const services: Record<string, string> = {};
    for (const p of s.processes ?? []) if (p.state !== 'not started') services[p.name] = p.state;
    if (s.services) {
      services.postgres = s.services.postgres.reachable ? 'reachable' : `unreachable: ${s.services.postgres.error ?? 'no answer'}`;
      services.redis = s.services.redis.reachable ? 'reachable' : `unreachable: ${s.services.redis.error ?? 'no answer'}`;
    }
    const unwell = Object.entries(services).filter(([, state]) => state !== 'online' && state !== 'reachable').map(([name]) => name);
    const overdue = s.backups?.overdue ?? [];
    const backups = s.backups ? { overdue, last: Object.fromEntries(Object.entries(s.backups.last).map(([k, b]) => [k, { id: b.id, at: b.at, verified: b.verified }])) } : null;
    return { status: s.phase === 'ready' && unwell.length === 0 && overdue.length === 0 ? 'ok' : 'degraded', phase: s.phase, activeColor: s.activeColor, services, ...(unwell.length ? { unwell } : {}), alerts: s.monitor?.breaching ?? [], backups };
  } catch (err) {
    return { status: 'degraded', error: `the supervisor did not answer: ${(err as Error).message}` };
  }
}

/** The supervisor's monitor rules (for the Prometheus exposition); null when it does not answer. */
export function monitorSummary(socketPath: string, dataDir: string): Promise<MonitorStatusSummary | null> {
  return queryControl<MonitorStatusSummary | null>(socketPath, '/monitor', dataDir, { timeoutMs: 1_000 }).catch(() => null);
}

/** Each process pm2 runs: whether it should run and whether it is online; null when the supervisor does not answer. */
export function processSummary(socketPath: string, dataDir: string): Promise<Array<{ name: string; expected: boolean; online: boolean }> | null> {
  return queryControl<Array<{ name: string; expected: boolean; online: boolean }>>(socketPath, '/processes', dataDir, { timeoutMs: 1_000 }).catch(() => null);
}

/** Backups run in the supervisor (it owns the services); these calls can take as long as a dump. */
export interface BackupLink {
  list(): Promise<{ summary: BackupSummary; backups: unknown[] }>;
  summary(): Promise<BackupSummary | null>;
  now(kinds: readonly string[], reason: 'manual' | 'pre-deploy'): Promise<unknown>;
  verify(id: string): Promise<{ ok: boolean }>;
  restore(id: string): Promise<unknown>;
}

const BACKUP_TIMEOUT_MS = 6 * 60 * 60_000;

export function backupLink(socketPath: string, dataDir: string): BackupLink {
  const long = { method: 'POST' as const, timeoutMs: BACKUP_TIMEOUT_MS };
  return {
    list: () => queryControl(socketPath, '/backups', dataDir, { timeoutMs: 10_000 }),
    summary: () => queryControl<{ summary: BackupSummary }>(socketPath, '/backups', dataDir, { timeoutMs: 1_000 }).then((r) => r.summary, () => null),
    now: (kinds, reason) => {
      const query = new URLSearchParams(kinds.map((k): [string, string] => ['kind', k]));
      query.set('reason', reason);
      return queryControl(socketPath, `/backups?${query}`, dataDir, long);
    },
    verify: (id) => queryControl(socketPath, `/backups/${encodeURIComponent(id)}/verify`, dataDir, long),
    restore: (id) => queryControl(socketPath, `/backups/${encodeURIComponent(id)}/restore`, dataDir, long),
  };
}

/** The release directories whose worker code a colour runs (a release without a worker runs another's): kept when releases are pruned. */
export function workerCodeDirs(workersPath: string, releasesDir: string): string[] {
  return Object.values(readWorkerSources(workersPath)).flatMap((source) => {
    if (!source || source === 'builtin') return [];
    // The release's own directory, however deep in it the script is.
    const top = relative(releasesDir, source.script).split('/')[0];
    return top && top !== '..' ? [join(releasesDir, top)] : [];
  });
}
