// What a release may carry, shared by the proxy (which validates a deploy before recording it) and
// the supervisor (which starts a colour with it): its env, and how an artifact directory is run.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseRegressionSpec } from './regressions.js';
import { parseWorkerRegressionSpec } from './worker-regressions.js';

/** The artifact of the demo API that ships inside the appliance. */
export const BUILTIN_ARTIFACT = 'builtin';

/** Set by the appliance for every colour; a release cannot override them. */
const RESERVED = new Set(['PORT', 'DATABASE_URL', 'REDIS_URL', 'NODE_ENV', 'NODE_OPTIONS', 'PATH', 'HOME', 'USER', 'PWD', 'pm_id']);
const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * A release's env: CHANGELENS_REGRESSION (validated like at boot) and the app's own variables.
 * Every problem names the key; nothing reserved to the appliance may be set.
 */
export function validateReleaseEnv(env: unknown, field = 'env'): { env: Record<string, string> } | { error: string } {
  if (typeof env !== 'object' || env === null || Array.isArray(env)) return { error: `${field}: expected an object of NAME: value` };
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (typeof value !== 'string' || value.length > 4096) return { error: `${field}.${key}: expected a string of at most 4096 characters` };
    if (!NAME.test(key)) return { error: `${field}.${key}: expected a variable name of letters, digits and _` };
    if (RESERVED.has(key) || key.startsWith('OTEL_') || (key.startsWith('CHANGELENS_') && key !== 'CHANGELENS_REGRESSION' && key !== 'CHANGELENS_WORKER_REGRESSION')) {
      return { error: `${field}.${key}: set by the appliance; a release may set CHANGELENS_REGRESSION, CHANGELENS_WORKER_REGRESSION and its app's own variables` };
    }
    if (key === 'CHANGELENS_REGRESSION') {
      const parsed = parseRegressionSpec(value);
      if ('problems' in parsed) return { error: `${field}.${key}: ${parsed.problems.join('; ')}` };
    }
    if (key === 'CHANGELENS_WORKER_REGRESSION') {
      const parsed = parseWorkerRegressionSpec(value);
      if ('problems' in parsed) return { error: `${field}.${key}: ${parsed.problems.join('; ')}` };
    }
    out[key] = value;
  }
  if (Object.keys(out).length > 100) return { error: `${field}: at most 100 variables` };
  return { env: out };
}

export interface ArtifactEntry {
  /** The Node script pm2 runs. */
  script: string;
  /** The path probed for readiness: package.json "changelens.readyPath", default /readyz. */
  readyPath: string;
  /**
   * Its job consumer, when it has one: package.json "changelens.worker" (a script in the artifact),
   * which listens on $PORT and answers "changelens.workerReadyPath" (default /readyz) there. A
   * release without one runs the worker its stable colour runs (supervisor/process-control.ts).
   */
  worker?: WorkerEntry;
}

export interface WorkerEntry {
  script: string;
  readyPath: string;
}

/** How a release directory is run: package.json "main", else server.js, else index.js; its worker, if package.json names one. */
export function resolveArtifactEntry(dir: string): ArtifactEntry | { error: string } {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return { error: `artifact ${dir}: not a directory` };
  let readyPath = '/readyz';
  let main: string | undefined;
  let worker: WorkerEntry | undefined;
  const pkgPath = join(dir, 'package.json');
  if (existsSync(pkgPath)) {
    try {
      const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { main?: unknown; changelens?: { readyPath?: unknown; worker?: unknown; workerReadyPath?: unknown } };
      if (typeof pkg.main === 'string') main = pkg.main;
      const path = (key: 'readyPath' | 'workerReadyPath'): string | { error: string } | undefined => {
        const value = pkg.changelens?.[key];
        if (value === undefined) return undefined;
        return typeof value === 'string' && value.startsWith('/') && value.length <= 256 ? value : { error: `artifact ${dir}: package.json changelens.${key}: expected a path starting with /` };
      };
      const rp = path('readyPath');
      if (typeof rp === 'object') return rp;
      readyPath = rp ?? readyPath;
      const w = pkg.changelens?.worker;
      if (w !== undefined) {
        const script = typeof w === 'string' ? join(dir, w) : '';
        if (!script.startsWith(dir + '/') || !existsSync(script) || !statSync(script).isFile()) return { error: `artifact ${dir}: package.json changelens.worker: expected a script inside the artifact` };
        const wrp = path('workerReadyPath');
        if (typeof wrp === 'object') return wrp;
        worker = { script, readyPath: wrp ?? '/readyz' };
      }
    } catch (err) {
      return { error: `artifact ${dir}: package.json is not valid JSON (${(err as Error).message})` };
    }
  }
  for (const candidate of main ? [main] : ['server.js', 'index.js']) {
    const script = join(dir, candidate);
    if (!script.startsWith(dir + '/')) return { error: `artifact ${dir}: package.json main points outside the artifact` };
    if (existsSync(script) && statSync(script).isFile()) return { script, readyPath, ...(worker ? { worker } : {}) };
  }
  return { error: `artifact ${dir}: no entry point (package.json "main", server.js or index.js)` };
}
