// Composition root of one API copy (api-blue or api-green), started by pm2 in cluster mode.
import { loadConfig } from '../../lib/config.js';
import { createPgPool } from '../../lib/db.js';
import { createLogger } from '../../lib/logger.js';
import { createRedisClient } from '../../lib/redis.js';
import { onStopSignal } from '../../lib/shutdown.js';
import { buildApiServer } from './server.js';

const config = loadConfig();
if (!config.color || !config.databaseUrl || !config.redisUrl) {
  throw new Error('api: CHANGELENS_COLOR, DATABASE_URL and REDIS_URL must be set (the supervisor sets them)');
}
const color = config.color;
const log = createLogger('api', { level: config.logLevel, color });
const pool = createPgPool(config.databaseUrl, { applicationName: `changelens-api-${color}` });
const redis = createRedisClient(config.redisUrl, { name: `changelens-api-${color}` });
await redis.connect();

const app = buildApiServer({ color, pool, redis, log });
await app.listen({ port: color === 'blue' ? config.apiBluePort : config.apiGreenPort, host: '127.0.0.1' });

onStopSignal(log, async () => {
  await app.close();
  await Promise.allSettled([pool.end(), redis.quit()]);
});
