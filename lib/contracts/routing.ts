// The routing table: which colour is stable, which is the candidate and with what share.
// `rollout/traffic.ts` is its only writer (and snapshots it); the proxy's router reads it on every
// request. An immutable object, swapped whole.
import type { Color } from '../config.js';

export interface RoutingTable {
  /** The colour that serves when nothing else decides: the active release. */
  stable: Color;
  /** The colour being rolled out, if any. */
  candidate: Color | null;
  /** The candidate's share of requests that are neither pinned nor sticky, 0-1. 0 after a rollback. */
  candidateWeight: number;
  /** The rollout a sticky cookie belongs to; a cookie from an earlier rollout is ignored. */
  rolloutId: string | null;
  /**
   * Copies of requests the stable colour serves, sent to `color` too (answers discarded): a
   * candidate warming up before its first step, or more samples for its analysis. Absent: none.
   */
  mirror?: MirrorRule;
}

export interface MirrorRule {
  color: Color;
  /** The share (0-1) of eligible requests copied: GET or HEAD, no body, not pinned. */
  share: number;
  /** warmup: counted apart and never judged; analysis: judged as the candidate's requests. */
  purpose: 'warmup' | 'analysis';
  /** The deployment it belongs to: an answer arriving after it ended is not the next one's evidence. */
  rolloutId?: string;
}

export const stableOnly = (stable: Color): RoutingTable => ({ stable, candidate: null, candidateWeight: 0, rolloutId: null });
