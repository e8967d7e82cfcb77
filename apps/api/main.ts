// Composition root of one API copy (api-blue or api-green), started by pm2 in cluster mode.
import { loadConfig } from '../../lib/config.js';
import { parseRegressionSpec } from '../../lib/contracts/regressions.js';
import { createPgPool } from '../../lib/db.js';
import { createLogger } from '../../lib/logger.js';
import { collectStartupGarbage } from '../../lib/memory.js';
import { createRedisClient } from '../../lib/redis.js';
import { onStopSignal } from '../../lib/shutdown.js';
import { closeGracefully } from '../../lib/http-server.js';
import { initTracing, shutdownTracing } from '../../lib/tracing.js';
import { RegressionEffects } from './regression-effects.js';
import { RegressionState } from './regression-state.js';
import { buildApiServer } from './server.js';

const config = loadConfig();
if (!config.color || !config.databaseUrl || !config.redisUrl) {
  throw new Error('api: CHANGELENS_COLOR, DATABASE_URL and REDIS_URL must be set (the supervisor sets them)');
}
const color = config.color;
const log = createLogger('api', { level: config.logLevel, color });
await initTracing(`api-${color}`, config.otlpEndpoint);
const pool = createPgPool(config.databaseUrl, { applicationName: `changelens-api-${color}` });
const redis = createRedisClient(config.redisUrl, { name: `changelens-api-${color}`, log });
// Its own connection (a subscriber can send nothing else), made the same way: with its error listener.
const subscriber = createRedisClient(config.redisUrl, { name: `changelens-api-${color}-sub`, log });

// config validated the spec already; parse it again for its values.
const spec = config.regression === undefined ? { regressions: [] } : parseRegressionSpec(config.regression);
// Run by hand (not by the supervisor) a copy has no release id: its changes last for this process.
const regressions = new RegressionState(color, config.releaseId ?? `pid-${process.pid}`, redis, 'regressions' in spec ? spec.regressions : [], log);
// Redis is waited for in the background: a copy (re)started while Redis is away still serves what
// needs only Postgres, with its release's regressions, and its readiness says Redis is missing.
void (async () => {
  await Promise.all([redis.connect(), subscriber.connect()]);
  await regressions.start(subscriber);
})().catch((err: Error) => log.error({ err: err.message }, 'could not follow run-time regressions; the release\'s own apply'));
const effects = new RegressionEffects(color, regressions, config.downstreamTimeoutMs);

const app = buildApiServer({ color, pool, redis, log, regressions, effects, controlToken: config.appControlToken });
await app.listen({ port: color === 'blue' ? config.apiBluePort : config.apiGreenPort, host: '127.0.0.1' });
collectStartupGarbage();

onStopSignal(log, async () => {
  await closeGracefully(app, 3_000);
  await Promise.allSettled([pool.end(), redis.quit(), subscriber.quit(), shutdownTracing()]);
}, { underPm2: config.pmId !== undefined });
