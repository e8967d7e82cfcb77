// A colour whose worker is stopped runs no jobs: what its stream holds moves to the active colour's
// stream, once a second. This is how a rollback drains safely (the controller stops the candidate's
// worker at once; what it had not started runs on the stable colour), and how jobs the idle colour's
// API still accepts (a pinned preview, a request in flight at the swap) are never stranded.
// Each entry moves in one MULTI (added to the target, acknowledged and deleted at the source):
// never lost, never on both streams. An entry its worker had started (pending, left when the worker
// stopped) moves too; the task's attempt fence (apps/worker/job-consumer.ts) keeps a late result
// of the stopped worker from completing it a second time.
import type { Color } from '../lib/config.js';
import { JOB_GROUP, jobStream } from '../lib/contracts/jobs.js';
import type { Logger } from '../lib/logger.js';
import { createRedisClient, destroyQuietly, type RedisClient } from '../lib/redis.js';

const INTERVAL_MS = 1_000;
const BATCH = 500;
/** The one stream of appliances before a worker per colour: what an upgrade finds there runs on the active colour. */
const LEGACY_STREAM = 'changelens:jobs';

export interface JobDrain {
  close(): Promise<void>;
}

export function startJobDrain(o: {
  redisUrl: string; log: Logger; isRunning: (name: string) => boolean; activeColor: () => Color;
  /** A colour is being started or stopped: which workers run is about to change, so nothing moves. */
  changing: () => boolean;
  /** A handed-out entry idle this long has no live worker (CHANGELENS_JOB_CLAIM_IDLE_MS): only such move. */
  claimIdleMs: number;
  /**
   * A fleet (the streams shared by instances): this instance's stopped worker does not mean the
   * colour's is — another instance's may run it. Entries never handed out stay while any consumer
   * of the stream read within this long.
   */
  sharedLiveWithinMs?: number;
}): JobDrain {
  const redis = createRedisClient(o.redisUrl, { name: 'changelens-job-drain', log: o.log });
  let stopped = false;
  /** Until the older version's stream is found empty once. */
  let legacy = true;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> = Promise.resolve();
  redis.connect().catch(() => {}); // retried by the client; a tick while it is away does nothing

  const tick = async (): Promise<void> => {
    const active = o.activeColor();
    const idle: Color = active === 'blue' ? 'green' : 'blue';
    // Only into a worker that runs, and only out of one that does not.
    if (!redis.isReady || o.changing() || !o.isRunning(`worker-${active}`)) return;
    if (legacy) {
      const n = await moveJobs(redis, LEGACY_STREAM, jobStream(active), 'legacy', o.claimIdleMs);
      if (n > 0) o.log.info({ from: LEGACY_STREAM, to: active, jobs: n }, `moved ${n} job${n === 1 ? '' : 's'} left on the stream of an older version to ${active}'s stream`);
      // On while anything is left (a job the old worker held moves once idle for the claim time).
      legacy = n === BATCH || (await redis.xLen(LEGACY_STREAM)) > 0;
    }
    if (o.isRunning(`worker-${idle}`) || o.changing()) return;
    const n = await moveJobs(redis, jobStream(idle), jobStream(active), idle, o.claimIdleMs, () => !o.changing(), o.sharedLiveWithinMs);
    if (n > 0) {
      o.log.info({ from: idle, to: active, jobs: n }, `moved ${n} job${n === 1 ? '' : 's'} of ${idle} (its worker is stopped) to ${active}'s stream`);
    }
  };
  const next = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = tick().catch((err: Error) => o.log.warn({ err: err.message }, 'could not move the idle colour\'s jobs; trying again')).finally(next);
    }, INTERVAL_MS);
    timer.unref();
  };
  next();
  return {
    async close() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
      destroyQuietly(redis);
    },
  };
}

/**
 * Moves what `source`'s workers have not finished to `target`: entries never handed out, and those
 * handed out but left idle for `idleMs` (a live worker keeps its jobs fresh: another appliance's
 * worker on a shared Redis, or one that was started meanwhile, keeps what it works on). `from`
 * labels the moved entries; `stillOk` is asked before each move.
 */
export async function moveJobs(redis: RedisClient, source: string, target: string, from: string, idleMs: number, stillOk: () => boolean = () => true, liveWithinMs?: number): Promise<number> {
  const entries = await redis.xRange(source, '-', '+', { COUNT: BATCH });
  if (entries.length === 0) return 0;
  const groups = (await redis.xInfoGroups(source)) as unknown as Array<{ name: string; pending: number; 'last-delivered-id': string }>;
  const group = groups.find((g) => g.name === JOB_GROUP);
  // Another instance's worker reads this stream: what nobody took yet is its to take.
  const someoneReads = group !== undefined && liveWithinMs !== undefined
    && ((await redis.xInfoConsumers(source, JOB_GROUP)) as unknown as Array<{ idle: number }>).some((c) => c.idle < liveWithinMs);
  const lastDelivered = group?.['last-delivered-id'] ?? '0-0';
  const pending = new Map<string, number>();
  if (group && group.pending > 0) {
    for (const p of await redis.xPendingRange(source, JOB_GROUP, '-', '+', BATCH)) pending.set(p.id, p.millisecondsSinceLastDelivery);
  }
  let n = 0;
  for (const entry of entries) {
    const idle = pending.get(entry.id);
    // Handed out and acknowledged, but kept (another app's worker may not delete): done, not moved.
    if (idle === undefined && compareIds(entry.id, lastDelivered) <= 0) continue;
    // Handed out, and its worker still on it.
    if (idle !== undefined && idle < idleMs) continue;
    if (idle === undefined && someoneReads) continue;
    if (!stillOk()) break;
    const fields = { ...(entry.message as Record<string, string>), movedFrom: from };
    const multi = redis.multi().xAdd(target, '*', fields);
    if (group) multi.xAck(source, JOB_GROUP, entry.id);
    await multi.xDel(source, entry.id).exec();
    n++;
  }
  return n;
}

/** Orders stream ids ("ms-seq"). */
export function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am === bm ? (as === bs ? 0 : as < bs ? -1 : 1) : am < bm ? -1 : 1;
}
