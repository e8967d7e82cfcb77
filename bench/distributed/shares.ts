// Who sends which request of one open-model schedule. The schedule (bench/loadgen.ts) numbers every
// arrival; an epoch gives each worker a weight from some moment on; within an epoch, arrival i goes
// to the worker whose band of [0, 1) holds frac(i·φ), a low-discrepancy sequence, so every worker's
// requests are spread evenly through each second (not a block at its start) in the proportion of its
// weight. Every party computes the same owner for every arrival: the workers to know what to send,
// the client to know what each was meant to send and where coverage had a gap.
import { intendedTimeMs, type LoadPlan } from '../loadgen.js';

export interface Epoch {
  /** From this many ms after the run's time 0 (the first epoch: 0). */
  fromMs: number;
  /** worker id → weight (> 0); a worker not listed sends nothing in this epoch. */
  weights: Record<string, number>;
}

const GOLDEN = 0.6180339887498949;

/** Whose arrivals were due while no worker had a share. */
export const NOBODY = '(no worker)';

/** The epoch in effect at `atMs` (epochs sorted by fromMs; the first starts at 0). */
export function epochAt(epochs: readonly Epoch[], atMs: number): Epoch | undefined {
  let found: Epoch | undefined;
  for (const e of epochs) {
    if (e.fromMs > atMs) break;
    found = e;
  }
  return found;
}

/** Bands in a fixed order (ids sorted), so every party cuts [0, 1) the same way. */
function bands(epoch: Epoch): { id: string; upTo: number }[] {
  const ids = Object.keys(epoch.weights).filter((id) => epoch.weights[id]! > 0).sort();
  const total = ids.reduce((n, id) => n + epoch.weights[id]!, 0);
  let acc = 0;
  return ids.map((id) => ({ id, upTo: (acc += epoch.weights[id]!) / total }));
}

/** A cache of each epoch's bands: the owner of every arrival is asked for, often millions of times. */
export class Owners {
  private readonly cache = new Map<Epoch, { id: string; upTo: number }[]>();
  constructor(readonly epochs: Epoch[]) {}

  /** Adds an epoch (kept sorted by fromMs; one at the same moment replaces the earlier). */
  add(epoch: Epoch): void {
    const same = this.epochs.findIndex((e) => e.fromMs === epoch.fromMs);
    if (same >= 0) this.epochs.splice(same, 1, epoch);
    else this.epochs.push(epoch);
    this.epochs.sort((a, b) => a.fromMs - b.fromMs);
  }

  /** The worker meant to send arrival `i`, due `atMs` after time 0 (null: nobody had a share then). */
  ownerOf(i: number, atMs: number): string | null {
    const epoch = epochAt(this.epochs, atMs);
    if (!epoch) return null;
    let b = this.cache.get(epoch);
    if (!b) this.cache.set(epoch, (b = bands(epoch)));
    if (b.length === 0) return null;
    const u = (i * GOLDEN) % 1;
    for (const band of b) if (u < band.upTo) return band.id;
    return b.at(-1)!.id;
  }
}

/** Weights by declared capacity: each worker's max rate (what one of its event loops can send). */
export function weightsOf(workers: readonly { id: string; maxRate: number }[]): Record<string, number> {
  return Object.fromEntries(workers.filter((w) => w.maxRate > 0).map((w) => [w.id, w.maxRate]));
}

/** How many arrivals the plan schedules (before any stop). */
export function scheduledCount(plan: Pick<LoadPlan, 'rate' | 'durationSeconds' | 'rampSeconds' | 'maxRequests'>): number {
  const ramp = plan.rampSeconds ?? 0;
  const scheduled = Math.floor(plan.rate * (plan.durationSeconds - ramp) + (plan.rate * ramp) / 2);
  return Math.min(scheduled, plan.maxRequests ?? Infinity);
}

export interface PlannedCounts {
  total: number;
  /** second → arrivals due in it. */
  bySecond: Map<number, number>;
  /** worker → second → arrivals it was meant to send in it. */
  byWorker: Map<string, Map<number, number>>;
}

/** What the schedule meant everyone to send, arrival by arrival, up to `stopAtMs`. */
export function plannedCounts(plan: Pick<LoadPlan, 'rate' | 'durationSeconds' | 'rampSeconds' | 'maxRequests'>, owners: Owners, stopAtMs = Infinity): PlannedCounts {
  const out: PlannedCounts = { total: 0, bySecond: new Map(), byWorker: new Map() };
  const count = scheduledCount(plan);
  const ramp = plan.rampSeconds ?? 0;
  for (let i = 0; i < count; i++) {
    const at = intendedTimeMs(i, plan.rate, ramp);
    if (at >= stopAtMs) break;
    const second = Math.floor(at / 1000);
    out.total++;
    out.bySecond.set(second, (out.bySecond.get(second) ?? 0) + 1);
    // Arrivals due while no worker had a share are everyone's gap.
    const owner = owners.ownerOf(i, at) ?? NOBODY;
    let m = out.byWorker.get(owner);
    if (!m) out.byWorker.set(owner, (m = new Map()));
    m.set(second, (m.get(second) ?? 0) + 1);
  }
  return out;
}

export interface Gap {
  fromSecond: number;
  /** Inclusive. */
  toSecond: number;
  /** Arrivals due in these seconds that nobody sent. */
  missing: number;
  /** Whose share they were. */
  workers: string[];
}

/**
 * Where coverage had a gap: the runs of seconds in which some worker sent fewer arrivals than its
 * share (a worker that died before its failure was declared, or one that fell behind and stopped).
 */
export function coverageGaps(planned: PlannedCounts, sent: ReadonlyMap<string, ReadonlyMap<number, number>>): Gap[] {
  const missingBySecond = new Map<number, { missing: number; workers: Set<string> }>();
  for (const [worker, seconds] of planned.byWorker) {
    for (const [second, n] of seconds) {
      const short = n - (sent.get(worker)?.get(second) ?? 0);
      if (short <= 0) continue;
      const m = missingBySecond.get(second) ?? { missing: 0, workers: new Set<string>() };
      m.missing += short;
      m.workers.add(worker);
      missingBySecond.set(second, m);
    }
  }
  const gaps: Gap[] = [];
  for (const second of [...missingBySecond.keys()].sort((a, b) => a - b)) {
    const m = missingBySecond.get(second)!;
    const last = gaps.at(-1);
    if (last && last.toSecond === second - 1) {
      last.toSecond = second;
      last.missing += m.missing;
      last.workers = [...new Set([...last.workers, ...m.workers])].sort();
    } else {
      gaps.push({ fromSecond: second, toSecond: second, missing: m.missing, workers: [...m.workers].sort() });
    }
  }
  return gaps;
}
