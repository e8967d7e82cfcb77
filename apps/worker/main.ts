// Composition root of the worker: the job consumer, plus a loopback health port the supervisor probes.
import { hostname } from 'node:os';
import { loadConfig } from '../../lib/config.js';
import { createPgPool } from '../../lib/db.js';
import { createHttpServer } from '../../lib/http-server.js';
import { createLogger } from '../../lib/logger.js';
import { checkDependencies } from '../../lib/readiness.js';
import { createRedisClient } from '../../lib/redis.js';
import { onStopSignal } from '../../lib/shutdown.js';
import { initTracing, shutdownTracing } from '../../lib/tracing.js';
import { JobConsumer } from './job-consumer.js';
import { TaskSweeper } from './sweeper.js';

const config = loadConfig();
if (!config.databaseUrl || !config.redisUrl) throw new Error('worker: DATABASE_URL and REDIS_URL must be set (the supervisor sets them)');
const log = createLogger('worker', { level: config.logLevel });
await initTracing('worker', config.otlpEndpoint);
const pool = createPgPool(config.databaseUrl, { max: config.workerConcurrency + 2, applicationName: 'changelens-worker' });
const redis = createRedisClient(config.redisUrl, { name: 'changelens-worker', log });
// Its own connection for the blocking reads, made the same way: with its error listener.
const reader = createRedisClient(config.redisUrl, { name: 'changelens-worker-reader', log });
await Promise.all([redis.connect(), reader.connect()]);

// pm2 keeps a process's id across its restarts, so the restarted worker finds its own pending
// jobs; the host name keeps appliances that share one Redis (external mode) apart.
const consumerName = `${hostname()}-worker-${config.pmId ?? 0}`;
const consumer = new JobConsumer({
  pool, redis, reader, log,
  consumer: consumerName,
  maxAttempts: config.jobMaxAttempts,
  claimIdleMs: config.jobClaimIdleMs,
  concurrency: config.workerConcurrency,
});
await consumer.start();
// Tasks whose stream entry Redis lost (its last second not on disk) are queued again, once.
const sweeper = new TaskSweeper({ pool, redis, log });
sweeper.start();

const health = createHttpServer(log);
health.get('/healthz', async () => ({ status: 'ok' }));
health.get('/readyz', async (_req, reply) => {
  const { ready, postgres, redis: rd } = await checkDependencies(pool, redis);
  return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', postgres, redis: rd, processed: consumer.processed, requeued: sweeper.requeued });
});
await health.listen({ port: config.workerPort, host: '127.0.0.1' });
log.info({ port: config.workerPort, consumer: consumerName }, 'worker ready');

onStopSignal(log, async () => {
  await health.close();
  await sweeper.stop();
  await consumer.stop();
  await Promise.allSettled([pool.end(), redis.quit(), reader.quit(), shutdownTracing()]);
}, { underPm2: config.pmId !== undefined });
