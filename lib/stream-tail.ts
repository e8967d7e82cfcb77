// Following a Redis stream as entries come, for as long as the process runs: from where it stood
// when the reader connected (or from a while back), waiting out a Redis that goes away and reading on
// from where it left off (entries trimmed meanwhile are gone: missing samples, never wrong ones).
import type { Logger } from './logger.js';
import { createRedisClient, destroyQuietly } from './redis.js';

const BLOCK_MS = 1_000;
const COUNT = 1_000;

export interface StreamTail {
  close(): Promise<void>;
}

export interface StreamTailOptions {
  redisUrl: string;
  key: string;
  /** Client name (CLIENT LIST) and log label. */
  name: string;
  log: Logger;
  /** Read entries of the last this many ms first; default 0: only what comes after connecting. */
  backMs?: number;
  onEntry: (id: string, fields: Record<string, string>) => void;
  /** After each read (at least once a second while Redis answers), with the client; its failure counts as Redis's. */
  afterRead?: (redis: ReturnType<typeof createRedisClient>) => Promise<void>;
  /** Redis stopped answering (true) or answers again (false). */
  onLost?: (lost: boolean) => void;
  what: string;
}

export function tailStream(o: StreamTailOptions): StreamTail {
  const redis = createRedisClient(o.redisUrl, { name: o.name, log: o.log });
  let stopped = false;
  /** The id read up to; null until connected. */
  let last: string | null = null;
  const loop = async (): Promise<void> => {
    let failures = 0;
    while (!stopped) {
      try {
        if (!redis.isOpen) await redis.connect();
        if (last === null) {
          last = o.backMs ? `${Date.now() - o.backMs}-0` : (await redis.xRevRange(o.key, '+', '-', { COUNT: 1 }))[0]?.id ?? '0-0';
        }
        const res = (await redis.xRead({ key: o.key, id: last }, { COUNT, BLOCK: BLOCK_MS })) as { messages: { id: string; message: Record<string, string> }[] }[] | null;
        for (const entry of res?.[0]?.messages ?? []) {
          last = entry.id;
          o.onEntry(entry.id, entry.message);
        }
        await o.afterRead?.(redis);
        if (failures > 0) {
          o.log.info({ failures }, `reading ${o.what} again`);
          o.onLost?.(false);
        }
        failures = 0;
      } catch (err) {
        if (stopped) break;
        if (failures++ === 0) {
          o.log.warn({ err: (err as Error).message }, `cannot read ${o.what}; waiting for Redis`);
          o.onLost?.(true);
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** Math.min(failures, 5), 2_000)));
      }
    }
  };
  const done = loop();
  return {
    async close() {
      stopped = true;
      destroyQuietly(redis);
      await done;
    },
  };
}
