// The rollout controller's hands: starting and stopping an API colour through the supervisor's
// control socket (the proxy runs under the supervisor, which owns pm2).
import type { Color } from '../lib/config.js';
import { queryControl } from '../supervisor/control-socket.js';
import type { Release } from '../rollout/store.js';
import type { SupervisorLink } from '../rollout/controller.js';

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
    async isRunning(color: Color): Promise<boolean> {
      const { running } = await queryControl<{ running: boolean }>(socketPath, `/processes/api-${color}`, dataDir);
      if (!running) return false;
      // Started is not enough: it must answer (another app may not have /readyz: any answer but a 5xx).
      try {
        const res = await fetch(`${upstreams[color]}/readyz`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        return res.status < 500;
      } catch {
        return false;
      }
    },
  };
}
