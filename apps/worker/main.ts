// Composition root of the worker: connected to Redis and Postgres, with a loopback health port
// the supervisor probes. The job consumer itself comes with the demo services.
import { loadConfig } from '../../lib/config.js';
import { createPgPool } from '../../lib/db.js';
import { createLogger } from '../../lib/logger.js';
import { createRedisClient } from '../../lib/redis.js';
import { checkDependencies } from '../../lib/readiness.js';
import { createHttpServer } from '../../lib/http-server.js';
import { onStopSignal } from '../../lib/shutdown.js';

const config = loadConfig();
if (!config.databaseUrl || !config.redisUrl) throw new Error('worker: DATABASE_URL and REDIS_URL must be set (the supervisor sets them)');
const log = createLogger('worker', { level: config.logLevel });
const pool = createPgPool(config.databaseUrl, { max: 4, applicationName: 'changelens-worker' });
const redis = createRedisClient(config.redisUrl, { name: 'changelens-worker' });
await redis.connect();

// A heartbeat others (status, the monitor) can read: the worker is alive and reaches Redis.
const HEARTBEAT_KEY = 'changelens:worker:heartbeat';
const beat = (): void => {
  redis.set(HEARTBEAT_KEY, JSON.stringify({ pid: process.pid, at: new Date().toISOString() }), { EX: 30 }).catch((err: Error) => log.warn({ err: err.message }, 'heartbeat failed'));
};
beat();
const heartbeat = setInterval(beat, 5_000);

const health = createHttpServer(log);
health.get('/healthz', async () => ({ status: 'ok' }));
health.get('/readyz', async (_req, reply) => {
  const { ready, postgres, redis: rd } = await checkDependencies(pool, redis);
  return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', postgres, redis: rd });
});
await health.listen({ port: config.workerPort, host: '127.0.0.1' });
log.info({ port: config.workerPort }, 'worker ready');

onStopSignal(log, async () => {
  clearInterval(heartbeat);
  await health.close();
  await Promise.allSettled([pool.end(), redis.quit()]);
});
