// A deployment's built-in analysis load (`--analysis-load RATE[,PATH…]`): on a box with too little
// traffic to judge, the proxy itself drives each colour at RATE req/s on the given paths (GET,
// pinned by x-changelens-color), so windows become decisive. Its text form, shared by the CLI, the
// admin API and the setting.
import { parseAppPaths } from './app-paths.js';

export interface AnalysisLoad {
  /** Requests per second to each colour. */
  rate: number;
  /** GET paths, cycled. */
  paths: string[];
}

export const ANALYSIS_LOAD_MAX_RATE = 500;

/** "40" or "40,/api/data,/api/items?limit=5": a rate, then paths (default "/"). */
export function parseAnalysisLoad(text: string): AnalysisLoad | { error: string } {
  const [rateText, ...rest] = text.split(',').map((p) => p.trim());
  if (!rateText || !/^\d+(\.\d+)?$/.test(rateText) || !(Number(rateText) > 0) || Number(rateText) > ANALYSIS_LOAD_MAX_RATE) {
    return { error: `expected RATE[,PATH…] with RATE requests per second (0-${ANALYSIS_LOAD_MAX_RATE}] per colour, got ${JSON.stringify(text)}` };
  }
  const paths = parseAppPaths(rest);
  if ('error' in paths) return paths;
  return { rate: Number(rateText), paths };
}
