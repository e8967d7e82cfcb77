// Jobs for the worker: a row in `tasks` (its state, visible through GET /api/tasks/:id) and an
// entry on the jobs stream of this API's colour (its own worker runs it: a canary's API and worker
// are tested together), carrying the request's trace context and when it was accepted.
import type { Color } from '../../lib/config.js';
import { jobStream, type JobMessage, type TaskState } from '../../lib/contracts/jobs.js';
import type { Pool } from '../../lib/db.js';
import { needs } from '../../lib/dependencies.js';
import { CL_ERR_DEPENDENCY_UNAVAILABLE } from '../../lib/errors.js';
import type { RedisClient } from '../../lib/redis.js';
import { injectInto, type Context } from '../../lib/tracing.js';

export interface TaskView {
  id: string;
  state: TaskState;
  attempts: number;
  result: unknown;
  error: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export async function enqueueTask(pool: Pool, redis: RedisClient, color: Color, job: { workMs: number; fail: boolean; traceId: string }, ctx: Context): Promise<string> {
  // Refused while Redis is down, before a row exists: a job is never accepted that no worker will see.
  if (!redis.isReady) throw new CL_ERR_DEPENDENCY_UNAVAILABLE('redis', 'the connection is down');
  const { rows } = await needs('postgres', () => pool.query<{ id: string }>('INSERT INTO tasks (work_ms, fail, trace_id) VALUES ($1, $2, $3) RETURNING id', [job.workMs, job.fail, job.traceId]));
  const id = rows[0]!.id;
  const message: JobMessage = { schemaVersion: '1', taskId: id, workMs: String(job.workMs), fail: job.fail ? '1' : '0', enqueuedAt: String(Date.now()), ...injectInto(ctx, {}) };
  try {
    await needs('redis', () => redis.xAdd(jobStream(color), '*', { ...message }));
  } catch (err) {
    // Never leave a task queued that no worker will ever see (an entry the lost connection did add
    // finds the task failed: the worker acknowledges it without running it).
    await pool.query("UPDATE tasks SET state = 'failed', error = $2, finished_at = now() WHERE id = $1", [id, `not enqueued: ${(err as Error).message}`]).catch(() => {});
    throw err;
  }
  return id;
}

export async function findTask(pool: Pool, id: string): Promise<TaskView | undefined> {
  const { rows } = await pool.query<{ id: string; state: TaskState; attempts: number; result: unknown; error: string | null; created_at: Date; started_at: Date | null; finished_at: Date | null }>(
    `SELECT t.id, t.state, t.attempts, r.result, t.error, t.created_at, t.started_at, t.finished_at
     FROM tasks t LEFT JOIN task_results r ON r.task_id = t.id WHERE t.id = $1`, [id]);
  const t = rows[0];
  if (!t) return undefined;
  return {
    id: t.id, state: t.state, attempts: t.attempts, result: t.result ?? null, error: t.error,
    createdAt: t.created_at.toISOString(), startedAt: t.started_at?.toISOString() ?? null, finishedAt: t.finished_at?.toISOString() ?? null,
  };
}
