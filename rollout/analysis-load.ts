// The analysis load (lib/contracts/analysis-load.ts) as it runs: an open model — requests start
// on a fixed schedule whatever the answers do — to each colour through the proxy's own port, pinned
// by x-changelens-color, so they are measured and judged like any request. Bounded: at most one
// second's worth in flight per colour (beyond that a start is skipped and counted), no burst to
// catch up after a stall (what is more than one tick late is skipped), each with a timeout; bodies
// are discarded, and stop() aborts what is in flight. Nothing it does can throw into the proxy.
import type { Color } from '../lib/config.js';
import type { AnalysisLoad } from '../lib/contracts/analysis-load.js';
import type { Logger } from '../lib/logger.js';
import type { Clock } from './ports.js';

const REQUEST_TIMEOUT_MS = 10_000;
/** Requests are started in batches this often (fewer timers than one per request). */
const TICK_MS = 50;

export interface AnalysisLoadRun {
  stop(): { sent: number; skipped: number; failed: number };
}

/** Starts driving both colours; `stop()` ends it and says what it did. */
export type StartAnalysisLoad = (load: AnalysisLoad, colors: readonly Color[]) => AnalysisLoadRun;

/** `credential()`: what lets its pinned requests be judged (an `analysis` preview credential, lib/contracts/preview.ts). */
export function analysisLoadThrough(proxyUrl: string, clock: Clock, log: Logger, credential: () => string = () => ''): StartAnalysisLoad {
  return (load, colors) => {
    const stopped = new AbortController();
    let sent = 0;
    let skipped = 0;
    let failed = 0;
    const inFlight: Record<string, number> = {};
    const startedMs = clock.monotonic();
    let due = 0; // starts per colour scheduled so far
    let timer: { cancel(): void } | null = null;
    const fire = (color: Color, path: string): void => {
      if ((inFlight[color] ?? 0) >= Math.max(1, load.rate)) return void skipped++;
      inFlight[color] = (inFlight[color] ?? 0) + 1;
      sent++;
      const signal = AbortSignal.any([stopped.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]);
      void (async () => {
        try {
          const res = await fetch(`${proxyUrl}${path}`, { headers: { 'x-changelens-color': color, 'x-changelens-preview': credential(), 'user-agent': 'changelens-analysis-load' }, signal });
          await res.arrayBuffer();
        } catch {
          // A candidate crashing mid-answer, a timeout, the stop: counted, never thrown.
          if (!stopped.signal.aborted) failed++;
        } finally {
          inFlight[color]!--;
        }
      })();
    };
    const tick = (): void => {
      if (stopped.signal.aborted) return;
      const target = Math.floor(((clock.monotonic() - startedMs) / 1000) * load.rate);
      // After a stall, only one tick's worth is started late; the rest is skipped, not burst.
      const oneTick = Math.max(1, Math.ceil((load.rate * TICK_MS) / 1000));
      if (target - due > oneTick) {
        skipped += (target - due - oneTick) * colors.length;
        due = target - oneTick;
      }
      for (; due < target; due++) for (const color of colors) fire(color, load.paths[due % load.paths.length]!);
      timer = clock.after(TICK_MS, tick);
    };
    tick();
    log.info({ rate: load.rate, paths: load.paths, colors }, 'analysis load started');
    return {
      stop() {
        if (!stopped.signal.aborted) {
          stopped.abort();
          timer?.cancel();
          log.info({ sent, skipped, failed }, 'analysis load stopped');
        }
        return { sent, skipped, failed };
      },
    };
  };
}
