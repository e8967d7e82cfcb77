// The workers' job outcomes (lib/contracts/jobs.ts), read as they come from their stream and handed
// to the judge per colour. Reads only what is new from the proxy's start (what came before belongs
// to no window it judges); a Redis that goes away is waited for, and what was added meanwhile is
// read from where it left off (entries beyond the stream's trimmed length are gone: missing samples,
// never wrong ones). A malformed entry is skipped.
import type { Color } from '../lib/config.js';
import { JOB_GROUP, jobStream, OUTCOME_STREAM, parseOutcome, type JobOutcome } from '../lib/contracts/jobs.js';
import type { Logger } from '../lib/logger.js';
import type { createRedisClient } from '../lib/redis.js';
import { tailStream, type StreamTail } from '../lib/stream-tail.js';

/** Jobs the workers' group has not finished on a stream: never handed out (lag) plus handed out and unacknowledged (pending). */
async function unfinished(redis: ReturnType<typeof createRedisClient>, stream: string): Promise<number> {
  if (!(await redis.exists(stream))) return 0;
  const groups = (await redis.xInfoGroups(stream)) as unknown as Array<{ name: string; pending: number; lag?: number | null }>;
  const group = groups.find((g) => g.name === JOB_GROUP);
  // No group yet: no worker ever read it, and everything on it waits.
  return group ? (group.lag ?? 0) + group.pending : await redis.xLen(stream);
}

export type OutcomeReader = StreamTail;

/** `onBacklog`: once a second, how many jobs each colour's stream holds (waiting or in progress). */
export function readJobOutcomes(redisUrl: string, log: Logger, onOutcome: (o: JobOutcome) => void, onBacklog: (color: Color, jobs: number) => void = () => {}): OutcomeReader {
  let backlogReadAt = 0;
  return tailStream({
    redisUrl, key: OUTCOME_STREAM, name: 'changelens-proxy-job-outcomes', log, what: 'job outcomes (jobs are not judged meanwhile)',
    onEntry: (_id, fields) => {
      const outcome = parseOutcome(fields);
      if (outcome) onOutcome(outcome);
    },
    afterRead: async (redis) => {
      if (Date.now() - backlogReadAt < 1_000) return;
      backlogReadAt = Date.now();
      for (const color of ['blue', 'green'] as const) onBacklog(color, await unfinished(redis, jobStream(color)));
    },
    onLost: (lost) => {
      // Not known while Redis does not answer: no hold on a stale count.
      if (!lost) return;
      onBacklog('blue', 0);
      onBacklog('green', 0);
    },
  });
}
