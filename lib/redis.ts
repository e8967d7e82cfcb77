// One way to reach Redis for every process: reconnects with a capped backoff, never throws on
// a dropped connection (an 'error' event without a listener would crash the process: every client,
// a second connection included, is made here), and says once when the connection is lost and when
// it is back. Commands while it is down fail at once (no offline queue): a request that needs
// Redis answers 503 instead of hanging until it returns (lib/dependencies.ts).
import { createClient } from '@redis/client';
import type { Logger } from './logger.js';

export function createRedisClient(url: string, options: { name?: string; reconnect?: boolean; log?: Logger } = {}) {
  const name = options.name ?? 'changelens';
  const client = createClient({
    url,
    name,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: 2_000,
      reconnectStrategy: options.reconnect === false ? false : (retries: number) => Math.min(50 * 2 ** retries, 2_000),
    },
  });
  let lost = false;
  client.on('error', (err: Error) => {
    if (lost || !options.log) return;
    lost = true;
    options.log.warn({ err: err.message, client: name }, 'redis unreachable; reconnecting');
  });
  client.on('ready', () => {
    if (!lost) return;
    lost = false;
    options.log?.info({ client: name }, 'redis connection back');
  });
  return client;
}

export type RedisClient = ReturnType<typeof createRedisClient>;

/** Closes a client now, whatever state it is in (destroying one already closed throws). */
export function destroyQuietly(client: RedisClient): void {
  if (client.isOpen) client.destroy();
}
