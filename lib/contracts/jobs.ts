// The job queue between the API (producer) and the worker (consumer): a Redis stream read by a
// consumer group, with a dead-letter stream for jobs that failed every attempt.
export const JOB_STREAM = 'changelens:jobs';
export const JOB_GROUP = 'workers';
export const DEAD_LETTER_STREAM = 'changelens:jobs:dead';

/** Fields of one stream entry (Redis stream fields are strings). */
export interface JobMessage {
  schemaVersion: '1';
  taskId: string;
  /** Milliseconds of work the job asks for. */
  workMs: string;
  /** "1" makes the job fail (to exercise retries and the dead-letter stream). */
  fail: string;
  /** W3C trace context of the request that enqueued it. */
  traceparent?: string;
  tracestate?: string;
}

export type TaskState = 'queued' | 'running' | 'completed' | 'failed';
