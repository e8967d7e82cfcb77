// Paths the appliance itself requests of the app (an analysis load, a synthetic warm-up): the app's
// own, never the proxy's, and exactly what they say once a URL parser has read them.

const MAX_PATHS = 10;

/** Why `p` is not such a path, or null when it is. */
export function appPathProblem(p: string): string | null {
  // An origin-form request target that stays what it says once a URL parser has read it (no dot
  // segments, backslashes or encoded dots to climb out with), and is the app's: not the proxy's own
  // /_changelens, /healthz or /readyz.
  const problem = `path ${JSON.stringify(p)}: expected /path[?query] (printable, ≤ 200 characters, no dot segments or backslashes; not /_changelens, /healthz or /readyz)`;
  if (!/^\/[\x21-\x7e]{0,199}$/.test(p) || p.startsWith('//') || p.includes('\\') || /%2e|%5c|%2f/i.test(p)) return problem;
  const read = new URL(p, 'http://appliance.invalid');
  if (read.pathname + read.search !== p.replace(/#.*$/, '') || p.includes('#')) return problem;
  const first = read.pathname.split('/')[1]?.toLowerCase() ?? '';
  if (first === '_changelens' || read.pathname === '/healthz' || read.pathname === '/readyz') return problem;
  return null;
}

/** Up to ten such paths (empty entries ignored); none given: ["/"]. */
export function parseAppPaths(paths: readonly string[]): string[] | { error: string } {
  const given = paths.map((p) => p.trim()).filter(Boolean);
  if (given.length > MAX_PATHS) return { error: `at most ${MAX_PATHS} paths, got ${given.length}` };
  for (const p of given) {
    const problem = appPathProblem(p);
    if (problem) return { error: problem };
  }
  return given.length > 0 ? given : ['/'];
}
