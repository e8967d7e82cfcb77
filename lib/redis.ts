// One way to reach Redis for every process: reconnects with a capped backoff, never throws on
// a dropped connection (the 'error' event would otherwise crash the process).
import { createClient } from '@redis/client';

export function createRedisClient(url: string, options: { name?: string; reconnect?: boolean } = {}) {
  const client = createClient({
    url,
    name: options.name ?? 'changelens',
    socket: {
      connectTimeout: 2_000,
      reconnectStrategy: options.reconnect === false ? false : (retries: number) => Math.min(50 * 2 ** retries, 2_000),
    },
  });
  client.on('error', () => {});
  return client;
}

export type RedisClient = ReturnType<typeof createRedisClient>;
