// Composition root of one colour's worker (worker-blue or worker-green): the job consumer of its
// colour's stream, plus a loopback port the supervisor probes and the admin API controls.
import { hostname } from 'node:os';
import { loadConfig } from '../../lib/config.js';
import { APP_CONTROL_HEADER, carriesControlToken } from '../../lib/contracts/app-control.js';
import { jobStream } from '../../lib/contracts/jobs.js';
import { parseWorkerRegressionSpec, WORKER_REGRESSION_TYPES, workerRegressionProblem, type WorkerRegressionType } from '../../lib/contracts/worker-regressions.js';
import { createPgPool } from '../../lib/db.js';
import { CL_ERR_APP_CONTROL, CL_ERR_REGRESSION_INVALID } from '../../lib/errors.js';
import { createHttpServer } from '../../lib/http-server.js';
import { createLogger } from '../../lib/logger.js';
import { collectStartupGarbage } from '../../lib/memory.js';
import { checkDependencies } from '../../lib/readiness.js';
import { createRedisClient } from '../../lib/redis.js';
import { onStopSignal } from '../../lib/shutdown.js';
import { initTracing, shutdownTracing } from '../../lib/tracing.js';
import { JobConsumer } from './job-consumer.js';
import { WorkerRegressions } from './regressions.js';
import { TaskSweeper } from './sweeper.js';

const config = loadConfig();
if (!config.color || !config.databaseUrl || !config.redisUrl) throw new Error('worker: CHANGELENS_COLOR, DATABASE_URL and REDIS_URL must be set (the supervisor sets them)');
const color = config.color;
const log = createLogger('worker', { level: config.logLevel, color });
await initTracing(`worker-${color}`, config.otlpEndpoint);
const pool = createPgPool(config.databaseUrl, { max: config.workerConcurrency + 2, applicationName: `changelens-worker-${color}` });
const redis = createRedisClient(config.redisUrl, { name: `changelens-worker-${color}`, log });
// Its own connection for the blocking reads, made the same way: with its error listener.
const reader = createRedisClient(config.redisUrl, { name: `changelens-worker-${color}-reader`, log });
await Promise.all([redis.connect(), reader.connect()]);

// config validated the spec already; parse it again for its values.
const spec = config.workerRegression === undefined ? { regressions: [] } : parseWorkerRegressionSpec(config.workerRegression);
const regressions = new WorkerRegressions('regressions' in spec ? spec.regressions : []);

// pm2 keeps a process's id across its restarts, so the restarted worker finds its own pending
// jobs; the host name keeps appliances that share one Redis (external mode) apart.
const consumerName = `${hostname()}-worker-${color}-${config.pmId ?? 0}`;
const stream = jobStream(color);
const consumer = new JobConsumer({
  pool, redis, reader, log, color, stream, regressions,
  consumer: consumerName,
  maxAttempts: config.jobMaxAttempts,
  claimIdleMs: config.jobClaimIdleMs,
  concurrency: config.workerConcurrency,
});
await consumer.start();
// Tasks whose stream entry Redis lost (its last second not on disk) are queued again, once.
const sweeper = new TaskSweeper({ pool, redis, log, stream });
sweeper.start();

const health = createHttpServer(log);
health.get('/healthz', async () => ({ status: 'ok', color }));
health.get('/readyz', async (_req, reply) => {
  const { ready, postgres, redis: rd } = await checkDependencies(pool, redis);
  return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', color, postgres, redis: rd, processed: consumer.processed, requeued: sweeper.requeued });
});
// The operator's (through the admin API, with the colour's control credential), like the API's.
const operatorOnly = async (req: { method: string; url: string; headers: Record<string, string | string[] | undefined> }): Promise<void> => {
  if (!carriesControlToken(req.headers[APP_CONTROL_HEADER], config.appControlToken)) throw new CL_ERR_APP_CONTROL(`${req.method} ${req.url}`);
};
const typeParams = { type: 'object', required: ['type'], properties: { type: { type: 'string', enum: WORKER_REGRESSION_TYPES } } } as const;
health.get('/api/worker-regression', async () => ({ color, regressions: regressions.list() }));
health.post<{ Params: { type: WorkerRegressionType }; Body: { intensity: number } }>('/api/worker-regression/:type', {
  onRequest: operatorOnly,
  schema: { params: typeParams, body: { type: 'object', required: ['intensity'], additionalProperties: false, properties: { intensity: { type: 'number' } } } },
}, async (req) => {
  const problem = workerRegressionProblem(req.params.type, req.body.intensity);
  if (problem) throw new CL_ERR_REGRESSION_INVALID(problem);
  log.info({ type: req.params.type, intensity: req.body.intensity }, `worker regression ${req.params.type} on`);
  return { color, regressions: regressions.set({ type: req.params.type, intensity: req.body.intensity }) };
});
health.delete<{ Params: { type: WorkerRegressionType } }>('/api/worker-regression/:type', { onRequest: operatorOnly, schema: { params: typeParams } }, async (req) => {
  log.info({ type: req.params.type }, `worker regression ${req.params.type} off`);
  return { color, regressions: regressions.remove(req.params.type) };
});
const port = color === 'blue' ? config.workerBluePort : config.workerGreenPort;
await health.listen({ port, host: '127.0.0.1' });
log.info({ port, consumer: consumerName, stream }, 'worker ready');
collectStartupGarbage();

onStopSignal(log, async () => {
  await health.close();
  await sweeper.stop();
  await consumer.stop();
  await Promise.allSettled([pool.end(), redis.quit(), reader.quit(), shutdownTracing()]);
}, { underPm2: config.pmId !== undefined });
