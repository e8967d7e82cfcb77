// The readiness check every Node service shares: Postgres and Redis both answer a round trip.
import type { Pool } from './db.js';
import { errorCodeOf } from './errors.js';
import type { RedisClient } from './redis.js';

export interface Readiness {
  ready: boolean;
  postgres: string;
  redis: string;
}

export async function checkDependencies(pool: Pool, redis: RedisClient): Promise<Readiness> {
  const [pg, rd] = (await Promise.allSettled([
    pool.query('SELECT 1'),
    redis.isReady ? redis.ping() : Promise.reject(Object.assign(new Error('redis not connected'), { code: 'NOT_CONNECTED' })),
  // What failed, not where: a readiness answer can reach anyone (the proxy forwards app paths).
  ])).map((c) => (c.status === 'fulfilled' ? 'ok' : errorCodeOf(c.reason)));
  return { ready: pg === 'ok' && rd === 'ok', postgres: pg!, redis: rd! };
}
