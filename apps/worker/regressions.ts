// What a colour's worker is told to get wrong (lib/contracts/worker-regressions.ts): those its
// release carries from birth (CHANGELENS_WORKER_REGRESSION) and those set at run time through its
// control route. One worker process per colour, so the set lives in its memory; a restart (a crash
// regression's own doing) comes back with the release's set only.
import type { WorkerRegression, WorkerRegressionType } from '../../lib/contracts/worker-regressions.js';

export interface ActiveWorkerRegression extends WorkerRegression {
  source: 'release' | 'runtime';
}

export class WorkerRegressions {
  private readonly active = new Map<WorkerRegressionType, ActiveWorkerRegression>();

  constructor(fromBirth: readonly WorkerRegression[], private readonly random: () => number = Math.random) {
    for (const r of fromBirth) this.active.set(r.type, { ...r, source: 'release' });
  }

  list(): ActiveWorkerRegression[] {
    return [...this.active.values()];
  }

  set(r: WorkerRegression): ActiveWorkerRegression[] {
    this.active.set(r.type, { ...r, source: 'runtime' });
    return this.list();
  }

  remove(type: WorkerRegressionType): ActiveWorkerRegression[] {
    this.active.delete(type);
    return this.list();
  }

  /** Called once per job attempt after its own work: slows it, fails it, or kills the process. */
  async apply(): Promise<void> {
    const slow = this.active.get('slow');
    if (slow) await new Promise((resolve) => setTimeout(resolve, slow.intensity));
    const crash = this.active.get('crash');
    // The whole process at once, as a real crash would: no cleanup, the job stays pending.
    if (crash && this.random() < crash.intensity) process.kill(process.pid, 'SIGKILL');
    const errors = this.active.get('errors');
    if (errors && this.random() < errors.intensity) throw new Error('worker regression: errors');
  }
}
