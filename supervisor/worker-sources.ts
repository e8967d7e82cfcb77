// Which worker code each colour runs: the built-in worker, or a script of a release's artifact.
// A release that brings no worker runs the one its stable colour runs (the same code, with its own
// colour's env), so a colour is always an API and a worker, and a canary of an API-only release
// compares like with like. Kept in state/workers.json (paths only), so a reboot starts the active
// colour's worker from the same code, and the proxy keeps those directories when it prunes.
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../lib/atomic-file.js';
import type { Color } from '../lib/config.js';
import type { ArtifactEntry, WorkerEntry } from '../lib/contracts/releases.js';
import { CL_ERR_PROCESS_CONTROL } from '../lib/errors.js';

/** `builtin`: apps/worker; otherwise a script inside a release's directory. */
export type WorkerSource = 'builtin' | WorkerEntry;

export type WorkerSources = Partial<Record<Color, WorkerSource>>;

export function readWorkerSources(path: string): WorkerSources {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    const out: WorkerSources = {};
    for (const color of ['blue', 'green'] as const) {
      const v = parsed[color];
      if (v === 'builtin') out[color] = 'builtin';
      else if (typeof v === 'object' && v !== null && typeof (v as WorkerEntry).script === 'string' && typeof (v as WorkerEntry).readyPath === 'string') {
        out[color] = { script: (v as WorkerEntry).script, readyPath: (v as WorkerEntry).readyPath };
      }
    }
    return out;
  } catch {
    return {}; // none yet, or unreadable: every colour falls back to what its release says
  }
}

export function writeWorkerSources(path: string, sources: WorkerSources): void {
  writeFileAtomic(path, JSON.stringify(sources, null, 2) + '\n', 0o644);
}

/**
 * The worker a colour runs for a release: its own, else what `inheritFrom` (the stable colour's)
 * runs, else (nothing recorded) the built-in one. Inherited code that is gone is refused, never
 * replaced by the built-in worker, which would take the app's jobs and run none of them.
 */
export function workerSourceFor(artifact: ArtifactEntry | undefined, inheritFrom: WorkerSource | undefined): WorkerSource {
  if (!artifact) return 'builtin';
  if (artifact.worker) return artifact.worker;
  if (inheritFrom === undefined || inheritFrom === 'builtin') return 'builtin';
  if (!existsSync(inheritFrom.script)) throw new CL_ERR_PROCESS_CONTROL(`the worker this release inherits (${inheritFrom.script}, its stable colour's) is gone; deploy a release that brings its own worker`);
  return inheritFrom;
}
