// The job queue between the API (producer) and the worker (consumer). Each colour has its own
// stream, read by its own worker through a consumer group: a canary's API and worker are tested
// together, a rollback moves what the candidate did not start to the stable colour's stream
// (supervisor/job-drain.ts), and nothing filters or skips another colour's entries. Failed jobs go
// to one dead-letter stream. Every attempt's outcome is reported on the outcome stream, which the
// proxy's judge reads per colour (rollout/job-outcomes.ts).
import type { Color } from '../config.js';

export const JOB_GROUP = 'workers';
export const DEAD_LETTER_STREAM = 'changelens:jobs:dead';
/** Attempt outcomes, newest kept (about OUTCOME_STREAM_MAXLEN): the judge reads them as they come. */
export const OUTCOME_STREAM = 'changelens:jobs:outcomes';
export const OUTCOME_STREAM_MAXLEN = 10_000;
/**
 * Set by the proxy alone (a client's is dropped) when jobs are split by the rollout's weight
 * (CHANGELENS_JOB_SPLIT=weight): the colour whose worker runs the jobs this request enqueues, for a
 * request the stable API serves. Absent: the API's own colour.
 */
export const JOB_COLOR_HEADER = 'x-changelens-job-color';
/** Where the API writes the jobs a colour's worker runs. */
export const jobStream = (color: Color): string => `changelens:jobs:${color}`;
export const JOB_STREAMS: readonly string[] = [jobStream('blue'), jobStream('green')];

/** Fields of one stream entry (Redis stream fields are strings). */
export interface JobMessage {
  schemaVersion: '1';
  taskId: string;
  /** Milliseconds of work the job asks for. */
  workMs: string;
  /** "1" makes the job fail (to exercise retries and the dead-letter stream). */
  fail: string;
  /** When the API accepted it (ms since the epoch): job latency runs from here to its outcome, across retries and moves. */
  enqueuedAt?: string;
  /** The colour whose stream it was moved from, when a rollback moved it (supervisor/job-drain.ts). */
  movedFrom?: string;
  /** W3C trace context of the request that enqueued it. */
  traceparent?: string;
  tracestate?: string;
}

export type TaskState = 'queued' | 'running' | 'completed' | 'failed';

/**
 * One attempt's end, as the worker reports it: `completed`, `failed` (it will be retried) or `dead`
 * (its last attempt failed; it went to the dead-letter stream). `latencyMs`: from `enqueuedAt` to
 * this end. A worker of another app reports the same fields to be judged on its jobs.
 */
export interface JobOutcome {
  color: Color;
  outcome: 'completed' | 'failed' | 'dead';
  latencyMs: number;
}

/** The stream fields of an outcome. */
export function outcomeFields(o: JobOutcome): Record<string, string> {
  return { color: o.color, outcome: o.outcome, latencyMs: String(Math.max(0, Math.round(o.latencyMs * 1000) / 1000)) };
}

/** An outcome read back from the stream; null for anything malformed (it is skipped, never judged). */
export function parseOutcome(fields: Record<string, string>): JobOutcome | null {
  const { color, outcome } = fields;
  const latencyMs = Number(fields.latencyMs);
  if (color !== 'blue' && color !== 'green') return null;
  if (outcome !== 'completed' && outcome !== 'failed' && outcome !== 'dead') return null;
  if (!Number.isFinite(latencyMs) || latencyMs < 0 || latencyMs > 86_400_000) return null;
  return { color, outcome, latencyMs };
}
