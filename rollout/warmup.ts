// The candidate's warm-up, before its first step. A fresh process answers its first requests slower
// (cold JIT, empty connection pools and caches); judged on them, a good release looks like a
// regression on a busy box (issue 16's A/A rollbacks). So before any user reaches it, it answers
// copies of the live GET/HEAD requests (the routing table's mirror rule, set by the reconciler), and
// synthetic GETs of the plan's paths when live traffic is short — until it has answered enough of
// them or the plan's warm-up time is over. Its answers are discarded; nobody judges them.
import type { Color } from '../lib/config.js';
import type { Clock, MirrorLink } from './ports.js';

/** 2xx/3xx answers after which a candidate counts as warm (the warm-up may end early); a 404 warms no handler. */
export const WARM_ENOUGH = 300;
/** Copies and synthetic requests per second the warm-up aims at; synthetic ones fill what copies leave short. */
const WARMUP_RATE = 100;
const TICK_MS = 100;

export interface WarmupReport {
  ms: number;
  /** Copies of live requests and synthetic GETs sent; answers received, of them 2xx/3xx, and 5xx (or none). */
  mirrored: number;
  synthetic: number;
  answered: number;
  ok: number;
  failed: number;
  /** It answered WARM_ENOUGH requests with 2xx/3xx: the cold-start grace of the sequential test is not needed. */
  warm: boolean;
}

export async function warmUp(o: {
  clock: Clock;
  mirror: MirrorLink;
  color: Color;
  seconds: number;
  paths: readonly string[];
  /** Sleeps (an operator's action may end it early). */
  sleep: (ms: number) => Promise<void>;
  /** False once the deployment ended (aborted) or the proxy closes. */
  live: () => boolean;
}): Promise<WarmupReport> {
  const { clock, mirror, color } = o;
  const start = mirror.counts(color);
  const startedMs = clock.monotonic();
  const oneTick = Math.ceil((WARMUP_RATE * TICK_MS) / 1000);
  let next = 0;
  const report = (): WarmupReport => {
    const now = mirror.counts(color);
    const ok = now.ok - start.ok;
    return {
      ms: Math.round(clock.monotonic() - startedMs), mirrored: now.mirrored - start.mirrored, synthetic: now.synthetic - start.synthetic,
      answered: now.answered - start.answered, ok, failed: now.failed - start.failed, warm: ok >= WARM_ENOUGH,
    };
  };
  for (;;) {
    const r = report();
    if (!o.live() || r.warm || r.ms >= o.seconds * 1000) return r;
    // Short of the rate (no live traffic, or little): synthetic GETs make up the difference, at most one tick's worth at a time.
    const due = Math.min(oneTick, Math.floor((r.ms / 1000) * WARMUP_RATE) - r.mirrored - r.synthetic);
    for (let i = 0; i < due; i++) if (!mirror.synthetic(color, o.paths[next++ % o.paths.length]!)) break;
    await o.sleep(TICK_MS);
  }
}
