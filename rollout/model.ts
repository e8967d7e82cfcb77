// What the rollout is made of: a release, a deployment with its plan, the pointers, and what is
// kept of its analysis (verdicts and per-window buckets). Plain data, stored by a RolloutStore.
import type { Color } from '../lib/config.js';
import type { AnalysisLoad } from '../lib/contracts/analysis-load.js';
import { ChangeLensError } from '../lib/errors.js';
import type { JudgeRules, WindowJudgement } from '../monitoring/index.js';
import type { DeploymentStatus } from './state-machine.js';

export type Strategy = 'canary' | 'bluegreen' | 'direct';

export interface Release {
  version: string;
  /** 'builtin' (apps/api) or an absolute directory under <data>/releases/. */
  artifact: string;
  env: Record<string, string>;
  createdBy: string;
  createdAt: string;
}

/** What a deployment judges by, fixed when it starts. */
export interface Plan {
  stepSeconds: number;
  windowSeconds: number;
  rules: JudgeRules;
  /** bluegreen: how long the old colour stays warm after promotion; canary: the same. */
  keepWarmSeconds: number;
  /** How long a rolled-back candidate keeps running for inspection. */
  inspectSeconds: number;
  /** bluegreen: how long the new colour is reachable by pin only before the switch. */
  previewSeconds: number;
  /** Fast trips: this many 5xx in a row from the candidate roll back at once (0: off). */
  tripConsecutive5xx: number;
  /** Fast trips: this many failed job attempts in a row from the candidate's worker roll back at once (0 or absent, older plans: off). */
  tripConsecutiveJobFailures?: number;
  /** Early verdicts from the sequential tests (monitoring/sequential.ts). */
  sequential: boolean;
  /** No decisive verdict for this long (too little traffic): the deadline action; 0 or absent (older plans): none. */
  progressDeadlineSeconds?: number;
  progressDeadlineAction?: 'abort' | 'pause';
  /** The proxy drives both colours itself (a box with little traffic): from the first step to the end. */
  analysisLoad?: AnalysisLoad;
  /** Before the first step, the candidate warms up for up to this long (0 or absent, older plans: none). */
  warmupSeconds?: number;
  /** The warm-up copies live GET/HEAD requests to the candidate (false: synthetic GETs only). */
  warmupMirror?: boolean;
  /** The synthetic warm-up's GET paths (when live traffic is short). */
  warmupPaths?: string[];
  /** While judged, this percentage of the live GET/HEAD requests the stable colour serves is also copied to the candidate and judged (0 or absent: none). */
  mirrorPercent?: number;
  /** Steps (indices) entered only once approved: held paused at the step before's weight until then (absent: none). */
  gates?: number[];
}

export interface Deployment {
  id: string;
  version: string;
  strategy: Strategy;
  stableVersion: string;
  stableColor: Color;
  candidateColor: Color;
  status: DeploymentStatus;
  plan: Plan;
  actor: string;
  startedAt: string;
  updatedAt: string;
  finishedAt: string | null;
  result: unknown;
}

export interface Pointers {
  active: { version: string; color: Color } | null;
  lastGood: { version: string; color: Color } | null;
}

export interface StoredVerdict extends WindowJudgement {
  seq: number;
  explanation: string;
  at: string;
  stepIndex: number;
  weight: number;
}

export interface Bucket {
  color: Color;
  startMs: number;
  durationSec: number;
  count: number;
  errors: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  violations: number;
}

/** A release is immutable: the same version again must have the same env (and artifact). */
export function sameEnv(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}

/** A deployment moved by someone else first: its compare-and-swap revision no longer matches. */
export function staleRevision(id: string, expected: number): ChangeLensError {
  return new ChangeLensError('CL_ERR_ROLLOUT_BAD_TRANSITION', 409, `deployment ${id} was changed by someone else (expected revision ${expected})`, 'read its status again');
}

/** What an operator (or CI) asks for: POST /_changelens/api/deployments. */
export interface DeployRequest {
  version: string;
  strategy: Strategy;
  /** Canary weights; bluegreen and direct always switch 100 %. */
  steps: number[];
  /** The release's env; undefined: a new release gets none, an existing one keeps its own. */
  env: Record<string, string> | undefined;
  /** An absolute path (directory or .tar.gz) to import, or "uploaded"; undefined: the built-in API, or the existing release's. */
  artifact: string | undefined;
  plan: Plan;
  actor: string;
}
