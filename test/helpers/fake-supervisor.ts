// The colours' processes as the rollout sees them through the supervisor, in memory: the only
// thing the reconciler's and the follower's tests mock (the real link is the supervisor's socket).
import type { Color } from '../../lib/config.js';
import { CL_ERR_BOOTING } from '../../lib/errors.js';
import type { ColorHealth, SupervisorLink } from '../../rollout/ports.js';

/** The colours' processes: started, stopped, crashed, or not answering, as each test needs. */
export class FakeSupervisor implements SupervisorLink {
  readonly colours: Record<Color, ColorHealth & { release: string | null }> = {
    blue: { running: true, online: true, restarts: 0, ready: true, release: 'v1', worker: { running: true, restarts: 0 } },
    green: { running: false, online: false, restarts: 0, ready: false, release: null, worker: { running: false, restarts: 0 } },
  };
  readonly calls: string[] = [];
  failStart: string | null = null;
  /** While set, a start waits for it (a candidate slow to start). */
  holdStart: Promise<void> | null = null;
  /** While true, starts and stops are refused as the real supervisor refuses them before its boot ends. */
  booting = false;

  async start(color: Color, release: { version: string }): Promise<void> {
    if (this.booting) throw new CL_ERR_BOOTING();
    this.calls.push(`start ${color} ${release.version}`);
    await this.holdStart;
    if (this.failStart) throw new Error(this.failStart);
    Object.assign(this.colours[color], { running: true, online: true, ready: true, release: release.version, worker: { running: true, restarts: 0 } });
  }

  async stop(color: Color): Promise<void> {
    if (this.booting) throw new CL_ERR_BOOTING();
    this.calls.push(`stop ${color}`);
    Object.assign(this.colours[color], { running: false, online: false, ready: false, release: null, worker: { running: false, restarts: 0 } });
  }

  async stopWorker(color: Color): Promise<void> {
    this.calls.push(`stop worker-${color}`);
    this.colours[color].worker = { running: false, restarts: this.colours[color].worker?.restarts ?? 0 };
  }

  async health(color: Color): Promise<ColorHealth> {
    const { release: _, ...health } = this.colours[color];
    return { ...health };
  }
}

