// The two API colours as the rollout sees them: which release each serves (metric labels), starting
// and stopping them one at a time through the supervisor, stopping an idle one later (kept warm
// after a promotion, kept for inspection after a rollback), and pruning release directories no
// colour or pointer needs.
import type { Color } from '../lib/config.js';
import { BUILTIN_ARTIFACT } from '../lib/contracts/releases.js';
import type { Logger } from '../lib/logger.js';
import { pruneReleaseDirs } from './artifacts.js';
import type { Clock, RolloutGauges, RolloutStore, SupervisorLink } from './ports.js';

export const other = (c: Color): Color => (c === 'blue' ? 'green' : 'blue');

export class Colours {
  private readonly releaseOf: Record<Color, string | null> = { blue: null, green: null };
  private readonly stops = new Map<Color, { cancel(): void }>();
  private ops: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: {
    supervisor: SupervisorLink;
    store: RolloutStore;
    clock: Clock;
    log: Logger;
    gauges: RolloutGauges | undefined;
    releasesDir: string;
    releasesKeep: number;
    /** Active, or the running deployment's candidate: never stopped by a timer. */
    inUse: (color: Color) => boolean;
    /** A deployment's release that must keep its directory. */
    running: () => string | undefined;
    /** Directories in use that no release names: the worker code a colour runs on another release's behalf. */
    keepDirs?: () => string[];
  }) {}

  /** The release a colour serves, for metric labels. */
  servedBy(color: Color): string | null {
    return this.releaseOf[color];
  }

  /** Which release a colour serves now; a release no colour serves is forgotten by the metrics. */
  serve(color: Color, version: string | null): void {
    const previous = this.releaseOf[color];
    this.releaseOf[color] = version;
    if (previous && previous !== version && this.releaseOf[other(color)] !== previous) this.o.gauges?.forgetRelease(previous);
  }

  /** Running, every instance online and ready, and its worker running (a rollback stops it alone). */
  async isUp(color: Color): Promise<boolean> {
    const health = await this.o.supervisor.health(color).catch(() => null);
    return health !== null && health.running && health.online && health.ready && health.worker?.running === true;
  }

  /** Starting and stopping colours, one at a time (apart from the state lock: a start takes seconds). */
  op<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.ops.then(fn, fn);
    this.ops = next.catch(() => {});
    return next;
  }

  /** Stops `color` after `seconds`, unless it is in use by then or a new stop replaces this one. */
  stopLater(color: Color, seconds: number, why: string): void {
    this.cancelStop(color);
    const { supervisor, log } = this.o;
    this.stops.set(color, this.o.clock.after(seconds * 1000, () => {
      this.stops.delete(color);
      if (this.o.inUse(color)) return;
      supervisor.stop(color).then(
        () => { this.serve(color, null); log.info({ color, why }, `stopped api-${color}`); },
        (err: Error) => log.warn({ color, err: err.message }, `could not stop api-${color}`),
      );
    }));
  }

  /** Stops the colour's worker now (a rollback): what it has not started runs on the stable colour. */
  stopWorker(color: Color, why: string): void {
    const { supervisor, log } = this.o;
    void this.op(() => supervisor.stopWorker(color)).then(
      () => log.info({ color, why }, `stopped worker-${color}; its jobs not started run on the stable colour`),
      (err: Error) => log.warn({ color, err: err.message }, `could not stop worker-${color}`),
    );
  }

  /** Whether a stop of `color` is scheduled (kept warm, kept for inspection). */
  stopScheduled(color: Color): boolean {
    return this.stops.has(color);
  }

  cancelStop(color: Color): void {
    this.stops.get(color)?.cancel();
    this.stops.delete(color);
  }

  close(): void {
    for (const stop of this.stops.values()) stop.cancel();
    this.stops.clear();
  }

  /** Old release directories go once a deployment ends; what is active, last_good or running stays. */
  async pruneReleases(): Promise<void> {
    const { store, log } = this.o;
    try {
      const { active, lastGood } = await store.pointers();
      const protectedDirs = new Set<string>();
      for (const version of [active?.version, lastGood?.version, this.o.running(), this.releaseOf.blue, this.releaseOf.green]) {
        const release = version ? await store.release(version) : null;
        if (release && release.artifact !== BUILTIN_ARTIFACT) protectedDirs.add(release.artifact);
      }
      for (const dir of this.o.keepDirs?.() ?? []) protectedDirs.add(dir);
      const removed = pruneReleaseDirs(this.o.releasesDir, this.o.releasesKeep, protectedDirs);
      if (removed.length > 0) log.info({ removed }, `pruned ${removed.length} old release director${removed.length === 1 ? 'y' : 'ies'}`);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'could not prune old releases');
    }
  }
}

/**
 * Runs a colour start or stop; while the supervisor is still booting (it refuses with CL_ERR_BOOTING
 * until its last probe passed) asks again every 250 ms, as long as it is still `wanted`. The proxy
 * reads its rollout state (and opens its admin API) just before the boot's end: a deployment read or
 * asked for then is not one whose candidate could not start (a fleet would roll back for it).
 */
export async function onceBooted<T>(op: () => Promise<T>, wanted: () => boolean): Promise<T> {
  for (;;) {
    try {
      return await op();
    } catch (err) {
      if ((err as { code?: string }).code !== 'CL_ERR_BOOTING' || !wanted()) throw err;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}
