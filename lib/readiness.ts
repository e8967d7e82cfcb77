// The readiness check every Node service shares: Postgres and Redis both answer a round trip.
import type { Pool } from './db.js';
import type { RedisClient } from './redis.js';

export interface Readiness {
  ready: boolean;
  postgres: string;
  redis: string;
}

export async function checkDependencies(pool: Pool, redis: RedisClient): Promise<Readiness> {
  const [pg, rd] = (await Promise.allSettled([
    pool.query('SELECT 1'),
    redis.isReady ? redis.ping() : Promise.reject(new Error('redis not connected')),
  ])).map((c) => (c.status === 'fulfilled' ? 'ok' : String((c.reason as Error).message)));
  return { ready: pg === 'ok' && rd === 'ok', postgres: pg!, redis: rd! };
}
