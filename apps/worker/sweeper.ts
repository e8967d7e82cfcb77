// The sweeper: a task left `queued` whose job entry is not on the stream is queued again, once.
// Redis acknowledges an XADD before it is on disk (appendfsync everysec): killed in that second, it
// comes back without the entry, and the task would wait for ever. A task is suspected when it has
// been queued a while and its entry is missing, and re-queued only when it is still missing at the
// next sweep: a retry's new entry (written just after the task went back to queued) is never
// mistaken for a lost one. Once per start of the task: a worker starting it clears the mark. The re-queue happens in one transaction with its row locked and marked,
// so two workers never queue it twice, and a failed XADD leaves it for the next sweep.
import { JOB_STREAMS, type JobMessage } from '../../lib/contracts/jobs.js';
import { inTransaction, type Pool } from '../../lib/db.js';
import type { Logger } from '../../lib/logger.js';
import type { RedisClient } from '../../lib/redis.js';

export const SWEEP_INTERVAL_MS = 10_000;
/** Queued for less than this: its entry may still be on the way (the API inserts, then XADDs). */
export const SWEEP_MIN_AGE_MS = 30_000;
const SWEEP_BATCH = 100;
/** A stream longer than this is a backlog, not a loss: the sweep waits until it has been read. */
const STREAM_SCAN_LIMIT = 10_000;

export class TaskSweeper {
  private suspects = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> = Promise.resolve();
  requeued = 0;

  constructor(private readonly o: {
    pool: Pool; redis: RedisClient; log: Logger;
    /** This worker's colour's stream: where a lost task is queued again. */
    stream: string;
    intervalMs?: number; minAgeMs?: number;
  }) {}

  private stopped = false;

  /** Sweeps every interval, one sweep at a time (the next is scheduled when one ends). */
  start(): void {
    const next = (): void => {
      if (this.stopped) return;
      this.timer = setTimeout(() => {
        this.running = this.sweep()
          .catch((err: Error) => this.o.log.warn({ err: err.message }, 'task sweep failed; trying again at the next'))
          .finally(next);
      }, this.o.intervalMs ?? SWEEP_INTERVAL_MS);
      this.timer.unref();
    };
    next();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** One sweep; resolves with how many tasks it queued again. */
  async sweep(): Promise<number> {
    const { pool, redis, log } = this.o;
    if (!redis.isReady) return 0; // Redis away: nothing can be checked (the job loop says so already)
    const { rows } = await pool.query<{ id: string }>(
      `SELECT id FROM tasks WHERE state = 'queued' AND requeued_at IS NULL AND created_at < now() - $1 * interval '1 millisecond'
       ORDER BY created_at LIMIT $2`, [this.o.minAgeMs ?? SWEEP_MIN_AGE_MS, SWEEP_BATCH]);
    if (rows.length === 0) {
      this.suspects.clear();
      return 0;
    }
    const lengths = await Promise.all(JOB_STREAMS.map((s) => redis.xLen(s)));
    if (lengths.some((n) => n > STREAM_SCAN_LIMIT)) return 0;
    // Entries stay on the stream until processed (acknowledged and deleted): what is there is still
    // to do. Either colour's: a rollback moves entries from one to the other (never through neither).
    const onStream = new Set<string>();
    for (const s of JOB_STREAMS) for (const e of await redis.xRange(s, '-', '+', { COUNT: STREAM_SCAN_LIMIT })) onStream.add(e.message.taskId!);
    const missing = rows.map((r) => r.id).filter((id) => !onStream.has(id));
    const lost = missing.filter((id) => this.suspects.has(id));
    this.suspects = new Set(missing.filter((id) => !this.suspects.has(id)));
    let requeued = 0;
    for (const id of lost) {
      const client = await pool.connect();
      try {
        const done = await inTransaction(client, async () => {
          const { rows: task } = await client.query<{ work_ms: number; fail: boolean; created_at: Date }>(
            "UPDATE tasks SET requeued_at = now() WHERE id = $1 AND state = 'queued' AND requeued_at IS NULL RETURNING work_ms, fail, created_at", [id]);
          if (!task[0]) return false; // another worker's sweep, or the job ran meanwhile
          // Its latency still runs from when the API accepted it.
          const message: JobMessage = { schemaVersion: '1', taskId: id, workMs: String(task[0].work_ms), fail: task[0].fail ? '1' : '0', enqueuedAt: String(task[0].created_at.getTime()) };
          await redis.xAdd(this.o.stream, '*', { ...message });
          return true;
        });
        if (done) {
          requeued++;
          log.warn({ taskId: id }, 'task re-queued: its entry was not on the jobs stream (lost by Redis)');
        }
      } finally {
        client.release();
      }
    }
    this.requeued += requeued;
    return requeued;
  }
}
