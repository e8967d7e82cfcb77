// The analysis load (lib/contracts/analysis-load.ts) as it runs: an open model — requests start
// on a fixed schedule whatever the answers do — to each colour through the proxy's own port, pinned
// by x-changelens-color, so they are measured and judged like any request. Bounded: at most one
// second's worth in flight per colour (beyond that a start is skipped and counted), each with a
// timeout; bodies are discarded.
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

export function analysisLoadThrough(proxyUrl: string, clock: Clock, log: Logger): StartAnalysisLoad {
  return (load, colors) => {
    let stopped = false;
    let sent = 0;
    let skipped = 0;
    let failed = 0;
    const inFlight: Record<string, number> = {};
    const startedMs = clock.now();
    let due = 0; // requests per colour that should have started by now
    let timer: { cancel(): void } | null = null;
    const fire = (color: Color, path: string): void => {
      if ((inFlight[color] ?? 0) >= Math.max(1, load.rate)) return void skipped++;
      inFlight[color] = (inFlight[color] ?? 0) + 1;
      sent++;
      fetch(`${proxyUrl}${path}`, { headers: { 'x-changelens-color': color, 'user-agent': 'changelens-analysis-load' }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
        .then(async (res) => { await res.arrayBuffer(); }, () => { failed++; })
        .finally(() => { inFlight[color]!--; });
    };
    const tick = (): void => {
      if (stopped) return;
      const target = Math.floor(((clock.now() - startedMs) / 1000) * load.rate);
      for (; due < target; due++) for (const color of colors) fire(color, load.paths[due % load.paths.length]!);
      timer = clock.after(TICK_MS, tick);
    };
    tick();
    log.info({ rate: load.rate, paths: load.paths, colors }, 'analysis load started');
    return {
      stop() {
        stopped = true;
        timer?.cancel();
        log.info({ sent, skipped, failed }, 'analysis load stopped');
        return { sent, skipped, failed };
      },
    };
  };
}
