// The workers' job outcomes (lib/contracts/jobs.ts), read as they come from their stream and handed
// to the judge per colour. Reads only what is new from the proxy's start (what came before belongs
// to no window it judges); a Redis that goes away is waited for, and what was added meanwhile is
// read from where it left off (entries beyond the stream's trimmed length are gone: missing samples,
// never wrong ones). A malformed entry is skipped.
import type { Color } from '../lib/config.js';
import { JOB_GROUP, jobStream, OUTCOME_STREAM, parseOutcome, type JobOutcome } from '../lib/contracts/jobs.js';
import type { Logger } from '../lib/logger.js';
import { createRedisClient } from '../lib/redis.js';

const BLOCK_MS = 1_000;
const COUNT = 1_000;

/** Jobs the workers' group has not finished on a stream: never handed out (lag) plus handed out and unacknowledged (pending). */
async function unfinished(redis: ReturnType<typeof createRedisClient>, stream: string): Promise<number> {
  if (!(await redis.exists(stream))) return 0;
  const groups = (await redis.xInfoGroups(stream)) as unknown as Array<{ name: string; pending: number; lag?: number | null }>;
  const group = groups.find((g) => g.name === JOB_GROUP);
  // No group yet: no worker ever read it, and everything on it waits.
  return group ? (group.lag ?? 0) + group.pending : await redis.xLen(stream);
}

export interface OutcomeReader {
  close(): Promise<void>;
}

/** `onBacklog`: once a second, how many jobs each colour's stream holds (waiting or in progress). */
export function readJobOutcomes(redisUrl: string, log: Logger, onOutcome: (o: JobOutcome) => void, onBacklog: (color: Color, jobs: number) => void = () => {}): OutcomeReader {
  const redis = createRedisClient(redisUrl, { name: 'changelens-proxy-job-outcomes', log });
  let stopped = false;
  /** The id read up to; null until connected (then: the newest there was, so only what is new is read). */
  let last: string | null = null;
  let backlogReadAt = 0;
  const loop = async (): Promise<void> => {
    let failures = 0;
    while (!stopped) {
      try {
        if (!redis.isOpen) await redis.connect();
        last ??= (await redis.xRevRange(OUTCOME_STREAM, '+', '-', { COUNT: 1 }))[0]?.id ?? '0-0';
        const res = (await redis.xRead({ key: OUTCOME_STREAM, id: last }, { COUNT, BLOCK: BLOCK_MS })) as { messages: { id: string; message: Record<string, string> }[] }[] | null;
        for (const entry of res?.[0]?.messages ?? []) {
          last = entry.id;
          const outcome = parseOutcome(entry.message);
          if (outcome) onOutcome(outcome);
        }
        if (Date.now() - backlogReadAt >= BLOCK_MS) {
          backlogReadAt = Date.now();
          for (const color of ['blue', 'green'] as const) onBacklog(color, await unfinished(redis, jobStream(color)));
        }
        if (failures > 0) log.info({ failures }, 'reading job outcomes again');
        failures = 0;
      } catch (err) {
        if (stopped) break;
        // Not known while Redis does not answer: no hold on a stale count.
        onBacklog('blue', 0);
        onBacklog('green', 0);
        if (failures++ === 0) log.warn({ err: (err as Error).message }, 'cannot read job outcomes; jobs are not judged until Redis answers');
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** Math.min(failures, 5), 2_000)));
      }
    }
  };
  const done = loop();
  return {
    async close() {
      stopped = true;
      redis.destroy();
      await done;
    },
  };
}
