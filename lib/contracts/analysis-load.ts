// A deployment's built-in analysis load (`--analysis-load RATE[,PATH…]`): on a box with too little
// traffic to judge, the proxy itself drives each colour at RATE req/s on the given paths (GET,
// pinned by x-changelens-color), so windows become decisive. Its text form, shared by the CLI, the
// admin API and the setting.

export interface AnalysisLoad {
  /** Requests per second to each colour. */
  rate: number;
  /** GET paths, cycled. */
  paths: string[];
}

export const ANALYSIS_LOAD_MAX_RATE = 500;
const MAX_PATHS = 10;

/** "40" or "40,/api/data,/api/items?limit=5": a rate, then paths (default "/"). */
export function parseAnalysisLoad(text: string): AnalysisLoad | { error: string } {
  const [rateText, ...rest] = text.split(',').map((p) => p.trim());
  if (!rateText || !/^\d+(\.\d+)?$/.test(rateText) || !(Number(rateText) > 0) || Number(rateText) > ANALYSIS_LOAD_MAX_RATE) {
    return { error: `expected RATE[,PATH…] with RATE requests per second (0-${ANALYSIS_LOAD_MAX_RATE}] per colour, got ${JSON.stringify(text)}` };
  }
  const paths = rest.filter(Boolean);
  if (paths.length > MAX_PATHS) return { error: `at most ${MAX_PATHS} paths, got ${paths.length}` };
  for (const p of paths) {
    // An origin-form request target that stays what it says once a URL parser has read it (no dot
    // segments, backslashes or encoded dots to climb out with), and is the app's: not the proxy's own
    // /_changelens, /healthz or /readyz.
    const problem = `path ${JSON.stringify(p)}: expected /path[?query] (printable, ≤ 200 characters, no dot segments or backslashes; not /_changelens, /healthz or /readyz)`;
    if (!/^\/[\x21-\x7e]{0,199}$/.test(p) || p.startsWith('//') || p.includes('\\') || /%2e|%5c|%2f/i.test(p)) return { error: problem };
    const read = new URL(p, 'http://appliance.invalid');
    if (read.pathname + read.search !== p.replace(/#.*$/, '') || p.includes('#')) return { error: problem };
    const first = read.pathname.split('/')[1]?.toLowerCase() ?? '';
    if (first === '_changelens' || read.pathname === '/healthz' || read.pathname === '/readyz') return { error: problem };
  }
  return { rate: Number(rateText), paths: paths.length > 0 ? paths : ['/'] };
}
