// The worker's job loop on the Redis stream, read through a consumer group:
// - a job's result is written to Postgres idempotently (one row per task, whatever happens), and
//   the message is acknowledged only after that commit;
// - on start, the consumer first finishes what its previous incarnation left unacknowledged (pm2
//   restarts it under the same name after a kill -9), and it takes over messages left idle by any
//   other consumer for longer than claimIdleMs;
// - a failing job is retried up to maxAttempts, then moved to the dead-letter stream;
// - every attempt's outcome (completed, failed, dead) is reported with the job's latency since the
//   API accepted it, for the judge of its colour (lib/contracts/jobs.ts).
import type { Color } from '../../lib/config.js';
import { DEAD_LETTER_STREAM, JOB_GROUP, OUTCOME_STREAM, OUTCOME_STREAM_MAXLEN, outcomeFields, type JobMessage, type JobOutcome } from '../../lib/contracts/jobs.js';
import { inTransaction, type Pool } from '../../lib/db.js';
import type { Logger } from '../../lib/logger.js';
import type { RedisClient } from '../../lib/redis.js';
import { endSpan, loggerFor, SpanKind, startSpanFrom } from '../../lib/tracing.js';
import type { WorkerRegressions } from './regressions.js';

export interface JobConsumerOptions {
  pool: Pool;
  /** For commands. */
  redis: RedisClient;
  /** A dedicated connection for the blocking read. */
  reader: RedisClient;
  log: Logger;
  consumer: string;
  /** The colour this worker runs jobs for, and the stream it reads (lib/contracts/jobs.ts jobStream). */
  color: Color;
  stream: string;
  /** What this worker is told to get wrong (the benchmark's worker regressions). */
  regressions: WorkerRegressions;
  maxAttempts: number;
  claimIdleMs: number;
  concurrency: number;
}

interface StreamEntry {
  id: string;
  message: Record<string, string>;
}

const BLOCK_MS = 1_000;

export class JobConsumer {
  private stopping = false;
  private loopDone: Promise<void> = Promise.resolve();
  private lastClaim = 0;
  processed = 0;

  constructor(private readonly o: JobConsumerOptions) {}

  async start(): Promise<void> {
    // The group is made by the loop (where a Redis still loading, or away, is waited for).
    this.loopDone = this.loop().catch((err: Error) => {
      this.o.log.fatal({ err: err.message }, 'job loop failed');
      process.exitCode = 1;
      process.kill(process.pid, 'SIGTERM');
    });
  }

  private async ensureGroup(): Promise<void> {
    try {
      await this.o.redis.xGroupCreate(this.o.stream, JOB_GROUP, '0', { MKSTREAM: true });
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) throw err;
    }
  }

  /** Stops reading and waits for the jobs in hand to finish (they are short; pm2's kill_timeout bounds it). */
  async stop(): Promise<void> {
    this.stopping = true;
    // Cut the blocking read short instead of waiting out its BLOCK time.
    this.o.reader.destroy();
    await this.loopDone;
  }

  /** Jobs being processed; at most `concurrency`, and a slow one never holds up the others' slots. */
  private readonly inFlight = new Set<Promise<void>>();

  private async loop(): Promise<void> {
    // What this consumer had been given before a crash: pending under its own name.
    let recovered = false;
    let grouped = false;
    let failures = 0;
    while (!this.stopping) {
      try {
        if (!grouped) {
          await this.ensureGroup();
          grouped = true;
        }
        if (!recovered) {
          for (const entry of await this.read('0', this.o.concurrency)) this.dispatch(entry);
          recovered = true;
        }
        const free = this.o.concurrency - this.inFlight.size;
        if (free <= 0) {
          await Promise.race(this.inFlight);
          continue;
        }
        await this.claimStale(free);
        for (const entry of await this.read('>', this.o.concurrency - this.inFlight.size)) this.dispatch(entry);
        if (failures > 0) this.o.log.info({ failures }, 'job loop reading again');
        failures = 0;
      } catch (err) {
        if (this.stopping) break;
        // Redis away (killed, restarting, a network blip): the worker waits for it, it does not die.
        // A Redis that came back without the group (its last second not on disk) gets it again.
        if (failures++ === 0) this.o.log.warn({ err: (err as Error).message }, 'job loop cannot read the stream; retrying until Redis answers');
        if (String((err as Error).message).includes('NOGROUP')) await this.ensureGroup().catch(() => {});
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** Math.min(failures, 5), 2_000)));
      }
    }
    await Promise.all(this.inFlight);
  }

  private dispatch(entry: StreamEntry): void {
    const job: Promise<void> = this.process(entry).finally(() => this.inFlight.delete(job));
    this.inFlight.add(job);
  }

  private async read(id: '0' | '>', count: number): Promise<StreamEntry[]> {
    if (count <= 0) return [];
    const res = await this.o.reader.xReadGroup(JOB_GROUP, this.o.consumer, { key: this.o.stream, id }, { COUNT: count, ...(id === '>' ? { BLOCK: BLOCK_MS } : {}) });
    return (res as { messages: StreamEntry[] }[] | null)?.[0]?.messages ?? [];
  }

  private async claimStale(free: number): Promise<void> {
    const now = Date.now();
    if (now - this.lastClaim < Math.max(100, this.o.claimIdleMs / 2)) return;
    this.lastClaim = now;
    const res = await this.o.redis.xAutoClaim(this.o.stream, JOB_GROUP, this.o.consumer, this.o.claimIdleMs, '0-0', { COUNT: free });
    const claimed = (res.messages as (StreamEntry | null)[]).filter((m): m is StreamEntry => m !== null);
    if (claimed.length > 0) this.o.log.warn({ count: claimed.length }, 'took over jobs left idle by another worker');
    for (const entry of claimed) this.dispatch(entry);
  }

  private async process(entry: StreamEntry): Promise<void> {
    const job = entry.message as unknown as JobMessage;
    const { span } = startSpanFrom(job as unknown as Record<string, string>, 'process job', SpanKind.CONSUMER);
    const log = loggerFor(this.o.log, span).child({ taskId: job.taskId });
    let failure: unknown;
    try {
      const { rows } = await this.o.pool.query<{ attempts: number; work_ms: number; fail: boolean }>(
        `UPDATE tasks SET state = 'running', attempts = attempts + 1, started_at = coalesce(started_at, now()), requeued_at = NULL
         WHERE id = $1 AND state IN ('queued', 'running') RETURNING attempts, work_ms, fail`, [job.taskId]);
      const task = rows[0];
      if (!task) {
        // Finished already (a duplicate delivery) or unknown: nothing to do but acknowledge.
        log.info('job already finished; acknowledging the duplicate');
        await this.ack(entry.id);
        return;
      }
      if (task.attempts > this.o.maxAttempts) {
        // It was started that often and never finished: it kills workers. Stop trying.
        await this.deadLetter(entry, job, task.attempts, 'abandoned: the worker died on every attempt', log);
        this.report(job, entry.id, 'dead');
        return;
      }
      log.info({ attempt: task.attempts, workMs: task.work_ms }, 'job started');
      // While it works, keep the entry fresh so no other worker takes it over as abandoned.
      const keepClaimed = setInterval(() => {
        this.o.redis.xClaimJustId(this.o.stream, JOB_GROUP, this.o.consumer, 0, entry.id).catch(() => {});
      }, Math.max(100, Math.floor(this.o.claimIdleMs / 3)));
      try {
        await new Promise((resolve) => setTimeout(resolve, task.work_ms));
        if (task.fail) throw new Error('the job asked to fail');
        await this.o.regressions.apply();
      } catch (err) {
        failure = err;
        const next = await this.retryOrDeadLetter(entry, job, task.attempts, (err as Error).message, log);
        // A superseded attempt (another took the task over) is not this worker's outcome to report.
        if (next !== 'superseded') this.report(job, entry.id, next === 'dead' ? 'dead' : 'failed');
        return;
      } finally {
        clearInterval(keepClaimed);
      }
      const completed = await this.complete(job.taskId, task.attempts, { workMs: task.work_ms, attempt: task.attempts, worker: this.o.consumer });
      await this.ack(entry.id);
      if (!completed) {
        log.warn({ attempt: task.attempts }, 'job result discarded: a later attempt owns the task');
        return;
      }
      this.processed++;
      this.report(job, entry.id, 'completed');
      log.info({ attempt: task.attempts }, 'job completed');
    } catch (err) {
      // Postgres or Redis failed: leave the message pending; it is retried after claimIdleMs.
      failure = err;
      log.error({ err: (err as Error).message }, 'job could not be processed; it stays pending');
    } finally {
      endSpan(span, undefined, failure);
    }
  }

  /**
   * Writes the result, fenced by the attempt number: only the attempt that started last may finish
   * the task, so a run that was taken over (or outlived its worker) can never overwrite it.
   */
  private async complete(taskId: string, attempt: number, result: object): Promise<boolean> {
    const client = await this.o.pool.connect();
    try {
      return await inTransaction(client, async () => {
        const { rowCount } = await client.query("UPDATE tasks SET state = 'completed', error = NULL, finished_at = now() WHERE id = $1 AND state = 'running' AND attempts = $2", [taskId, attempt]);
        if (!rowCount) return false;
        await client.query('INSERT INTO task_results (task_id, result, worker) VALUES ($1, $2, $3) ON CONFLICT (task_id) DO NOTHING', [taskId, JSON.stringify(result), this.o.consumer]);
        return true;
      });
    } finally {
      client.release();
    }
  }

  /** Reports one attempt's end for the judge; a report that fails is only a missing sample, never a failed job. */
  private report(job: JobMessage, entryId: string, outcome: JobOutcome['outcome']): void {
    // Accepted at enqueuedAt (kept across retries and moves); an entry without it: its id's time.
    const since = Number(job.enqueuedAt ?? entryId.split('-')[0]);
    const latencyMs = Number.isFinite(since) ? Math.max(0, Date.now() - since) : 0;
    this.o.redis.xAdd(OUTCOME_STREAM, '*', outcomeFields({ color: this.o.color, outcome, latencyMs }), { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: OUTCOME_STREAM_MAXLEN } })
      .catch((err: Error) => {
        // Unjudged jobs are worth saying, once a minute at most.
        if (Date.now() - this.reportWarnedAt < 60_000) return;
        this.reportWarnedAt = Date.now();
        this.o.log.warn({ err: err.message }, 'could not report a job outcome: the judge does not see this worker\'s jobs');
      });
  }

  private reportWarnedAt = 0;

  /** Queued again, dead-lettered (its last attempt), or superseded (a later attempt owns the task). */
  private async retryOrDeadLetter(entry: StreamEntry, job: JobMessage, attempts: number, error: string, log: Logger): Promise<'retried' | 'dead' | 'superseded'> {
    if (attempts >= this.o.maxAttempts) {
      await this.deadLetter(entry, job, attempts, error, log);
      return 'dead';
    }
    const { rowCount } = await this.o.pool.query("UPDATE tasks SET state = 'queued', error = $2 WHERE id = $1 AND state = 'running' AND attempts = $3", [job.taskId, error, attempts]);
    if (!rowCount) {
      // A later attempt owns the task now: this one's failure changes nothing.
      await this.ack(entry.id);
      return 'superseded';
    }
    // A new entry for the next attempt, then the old one acknowledged: a crash in between only
    // means one more (idempotent) attempt, never a lost job.
    await this.o.redis.xAdd(this.o.stream, '*', { ...entry.message });
    await this.ack(entry.id);
    log.warn({ attempt: attempts, maxAttempts: this.o.maxAttempts, error }, 'job failed; retrying');
    return 'retried';
  }

  private async deadLetter(entry: StreamEntry, job: JobMessage, attempts: number, error: string, log: Logger): Promise<void> {
    await this.o.redis.xAdd(DEAD_LETTER_STREAM, '*', { ...entry.message, error, attempts: String(attempts), failedAt: new Date().toISOString(), sourceId: entry.id });
    await this.o.pool.query("UPDATE tasks SET state = 'failed', error = $2, finished_at = now() WHERE id = $1 AND state IN ('queued', 'running') AND attempts = $3", [job.taskId, error, attempts]);
    await this.ack(entry.id);
    log.error({ attempts, error }, 'job failed for good; moved to the dead-letter stream');
  }

  /** Acknowledges and deletes the entry: a processed job has no reason to stay in the stream. */
  private async ack(id: string): Promise<void> {
    await this.o.redis.multi().xAck(this.o.stream, JOB_GROUP, id).xDel(this.o.stream, id).exec();
  }
}
