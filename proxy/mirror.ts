// The mirror: copies of live idempotent requests, and synthetic ones, sent to a colour whose answers
// nobody reads. A candidate warms up on them before its first step (its JIT, pools and caches), and
// an analysis may take more samples from them than its traffic share gives (`--mirror-percent`) —
// what Argo Rollouts and Flagger offer only on top of Istio.
//
// A copy is never a client's answer: it is a second request on its own connections, its body is
// drained and dropped, it is written to no access log and counted in no client metric. Only GET and
// HEAD without a body are copied (safe to send twice), never a pinned request. Bounded: a rate
// (token bucket), a number in flight, a timeout; past a bound a copy is skipped and counted, and
// nothing it does can throw into the proxy.
import type { IncomingMessage } from 'node:http';
import { Pool } from 'undici';
import type { Color } from '../lib/config.js';
import type { MirrorRule } from '../lib/contracts/routing.js';
import type { Logger } from '../lib/logger.js';
import { MIRROR_HEADER, requestHasBody } from './router.js';

const MIRRORED_METHODS = new Set(['GET', 'HEAD']);
/** Copies in flight at once, per colour: a slow candidate costs at most this many sockets. */
export const MIRROR_MAX_IN_FLIGHT = 32;
const MIRROR_TIMEOUT_MS = 10_000;
/** A copy's body past this is cut (its socket closed) rather than read to the end. */
const MIRROR_BODY_LIMIT = 8 * 1024 * 1024;

export type MirrorPurpose = MirrorRule['purpose'];

export interface MirrorCounts {
  /** Copies of live requests sent. */
  mirrored: number;
  /** Synthetic requests sent (a warm-up with too little live traffic). */
  synthetic: number;
  /** Answers received (any status); of them, 2xx or 3xx; and how many were 5xx or no answer at all. */
  answered: number;
  ok: number;
  failed: number;
  /** Skipped at a bound: over the rate, or too many in flight. */
  skipped: number;
}

export interface Mirror {
  /** A request the stable colour is about to serve: copied to `rule.color` when it qualifies and the bounds allow. */
  offer(rule: MirrorRule, req: IncomingMessage, headers: () => Record<string, string | string[]>): void;
  /** One synthetic GET of `path` to `color` (a warm-up with too little live traffic); false when a bound refused it. */
  synthetic(color: Color, path: string): boolean;
  /** Totals since the proxy started (a warm-up reads the difference). */
  counts(color: Color): MirrorCounts;
  close(): Promise<void>;
}

export interface MirrorOptions {
  upstreams: Record<Color, string>;
  /** Copies and synthetic requests per second, all colours together (CHANGELENS_MIRROR_MAX_RPS). */
  maxPerSecond: number;
  log: Logger;
  /** Every answer (or failure: status 0), after its body was drained, with the rollout whose rule sent it (null: synthetic). */
  onAnswered?: (color: Color, purpose: MirrorPurpose, latencyMs: number, statusCode: number, rolloutId: string | null) => void;
  /** Every copy skipped at a bound. */
  onSkipped?: (color: Color, reason: 'rate' | 'in_flight') => void;
  /** Monotonic ms; a test may drive it. */
  now?: () => number;
}

export function createMirror(o: MirrorOptions): Mirror {
  const now = o.now ?? (() => performance.now());
  const answered = o.onAnswered ?? (() => {});
  const skippedAt = o.onSkipped ?? (() => {});
  const pools = {} as Record<Color, Pool>;
  const counts = {} as Record<Color, MirrorCounts>;
  const inFlight = { blue: 0, green: 0 };
  for (const color of ['blue', 'green'] as const) {
    // Its own connections: a copy never takes a client's socket, however slow the candidate is.
    pools[color] = new Pool(o.upstreams[color], { connections: MIRROR_MAX_IN_FLIGHT, pipelining: 1, keepAliveTimeout: 4_000, headersTimeout: MIRROR_TIMEOUT_MS, bodyTimeout: MIRROR_TIMEOUT_MS });
    counts[color] = { mirrored: 0, synthetic: 0, answered: 0, ok: 0, failed: 0, skipped: 0 };
  }
  // A token bucket: up to a tenth of a second's worth at once, refilled at the rate.
  const capacity = Math.max(1, o.maxPerSecond / 10);
  let tokens = capacity;
  let refilledAt = now();
  let closed = false;

  function admit(color: Color): boolean {
    if (closed) return false;
    const t = now();
    tokens = Math.min(capacity, tokens + ((t - refilledAt) / 1000) * o.maxPerSecond);
    refilledAt = t;
    if (tokens < 1) return skip(color, 'rate');
    if (inFlight[color] >= MIRROR_MAX_IN_FLIGHT) return skip(color, 'in_flight');
    tokens -= 1;
    return true;
  }

  function skip(color: Color, reason: 'rate' | 'in_flight'): false {
    counts[color].skipped++;
    skippedAt(color, reason);
    return false;
  }

  function send(color: Color, purpose: MirrorPurpose, rolloutId: string | null, method: 'GET' | 'HEAD', path: string, headers: Record<string, string | string[]>): void {
    inFlight[color]++;
    const start = now();
    const done = (status: number): void => {
      inFlight[color]--;
      const c = counts[color];
      if (status > 0) c.answered++;
      if (status >= 200 && status < 400) c.ok++;
      if (status === 0 || status >= 500) c.failed++;
      try {
        answered(color, purpose, now() - start, status, rolloutId);
      } catch (err) {
        // Whoever listens must not make a copy count twice or reach the proxy as a rejection.
        o.log.error({ err: (err as Error).message }, 'recording a mirrored answer failed');
      }
    };
    pools[color].request({ method, path, headers: { ...headers, [MIRROR_HEADER]: purpose }, signal: AbortSignal.timeout(MIRROR_TIMEOUT_MS) }).then(
      async (res) => {
        // A body cut short (the candidate crashed mid-answer) still had its status: the answer counts.
        await res.body.dump({ limit: MIRROR_BODY_LIMIT }).catch(() => {});
        done(res.statusCode);
      },
      (err: Error) => {
        // A candidate that crashes, refuses or times out: counted (its own watch sees the crash), never thrown.
        if (!closed) o.log.debug({ err: err.message, color, path }, 'mirrored request failed');
        done(0);
      },
    );
  }

  return {
    offer(rule, req, headers) {
      if (!(rule.share > 0) || !MIRRORED_METHODS.has(req.method!) || requestHasBody(req)) return;
      if (rule.share < 1 && Math.random() >= rule.share) return;
      if (!admit(rule.color)) return;
      counts[rule.color].mirrored++;
      send(rule.color, rule.purpose, rule.rolloutId ?? null, req.method as 'GET' | 'HEAD', req.url!, headers());
    },
    synthetic(color, path) {
      if (!admit(color)) return false;
      counts[color].synthetic++;
      send(color, 'warmup', null, 'GET', path, { 'user-agent': 'changelens-warmup' });
      return true;
    },
    counts: (color) => ({ ...counts[color] }),
    async close() {
      closed = true;
      await Promise.all(Object.values(pools).map((p) => p.destroy().catch(() => {})));
    },
  };
}
