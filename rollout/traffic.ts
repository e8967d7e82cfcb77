// Who changes the routing table: this, and nothing else. The reconciler (reconciler.ts) decides (all to one
// colour, a deployment's split, everything back to stable now); this swaps the immutable table the
// router reads on every request, and writes the routing snapshot a restarted proxy routes by before
// Postgres answers.
import type { Color } from '../lib/config.js';
import { stableOnly, type MirrorRule, type RoutingTable } from '../lib/contracts/routing.js';
import { writeRoutingSnapshot, type RoutingSnapshot } from '../lib/routing-snapshot.js';

/** What a split is made of: a deployment's colours and id (its sticky cookies name it). */
interface Split {
  id: string;
  stableColor: Color;
  candidateColor: Color;
}

export class Traffic {
  /** Shared with every view of it (`fenced`): one table the router reads. */
  private readonly state: { table: RoutingTable };

  constructor(private readonly snapshotPath: string, active: Color, shared?: { table: RoutingTable }, private readonly live: () => boolean = () => true) {
    this.state = shared ?? { table: stableOnly(active) };
  }

  /**
   * A writer of the same table whose changes are dropped once `live()` is false: what a fleet's
   * controller drives through, so nothing it still had in flight when it lost the lease moves the
   * routing its follower applies.
   */
  fenced(live: () => boolean): Traffic {
    return new Traffic(this.snapshotPath, this.state.table.stable, this.state, live);
  }

  private get table(): RoutingTable {
    return this.state.table;
  }

  private set table(t: RoutingTable) {
    if (this.live()) this.state.table = t;
  }

  /** The table now: an immutable object, swapped whole. */
  current(): RoutingTable {
    return this.table;
  }

  get candidateWeight(): number {
    return this.table.candidateWeight;
  }

  /** Every request to `color`: no rollout. */
  allTo(color: Color): void {
    this.table = stableOnly(color);
  }

  /**
   * A deployment's split: its candidate takes `weight` (0-1) of the requests nothing else decides,
   * and copies of a `mirrorShare` of those the stable colour serves (judged as the candidate's).
   */
  split(d: Split, weight: number, mirrorShare = 0): void {
    this.table = { stable: d.stableColor, candidate: d.candidateColor, candidateWeight: weight, rolloutId: d.id, ...mirrorTo(d, mirrorShare, 'analysis') };
  }

  /** Before the candidate's first step: every request to the stable colour, copies of them (all, within the mirror's bounds) to the candidate, or none. */
  warmup(d: Split, copy: boolean): void {
    this.table = { ...stableOnly(d.stableColor), ...mirrorTo(d, copy ? 1 : 0, 'warmup') };
  }

  /** Everything to the deployment's stable colour, now (synchronous: the very next request). */
  toStable(d: Split): void {
    // No copies either: a rolled-back candidate gets nothing but pinned requests.
    this.table = { stable: d.stableColor, candidate: d.candidateColor, candidateWeight: 0, rolloutId: d.id };
  }

  /** Records `color` as the active colour, with the release it runs, for a restarted proxy. */
  snapshot(color: Color, release: RoutingSnapshot['release']): void {
    if (!this.live()) return;
    writeRoutingSnapshot(this.snapshotPath, color, release);
  }
}

const mirrorTo = (d: Split, share: number, purpose: MirrorRule['purpose']): { mirror?: MirrorRule } =>
  (share > 0 ? { mirror: { color: d.candidateColor, share, purpose, rolloutId: d.id } } : {});
