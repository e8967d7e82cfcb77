// Composition root of the proxy process: the only public port.
import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { dataPaths } from '../lib/paths.js';
import { readRoutingSnapshot } from '../lib/routing-snapshot.js';
import { onStopSignal } from '../lib/shutdown.js';
import { closeGracefully } from '../lib/http-server.js';
import { initTracing, shutdownTracing } from '../lib/tracing.js';
import { stableOnly } from './router.js';
import { buildProxyServer } from './server.js';

const config = loadConfig();
const log = createLogger('proxy', { level: config.logLevel });
await initTracing('proxy', config.otlpEndpoint);
// The routing snapshot lets a restarted proxy route before Postgres answers.
const activeColor = readRoutingSnapshot(dataPaths(config.dataDir).routing)?.activeColor ?? 'blue';
// Until rollouts drive it, the table sends everything that is not pinned to the active colour.
const table = stableOnly(activeColor);
const app = await buildProxyServer({
  log,
  upstreams: { blue: `http://127.0.0.1:${config.apiBluePort}`, green: `http://127.0.0.1:${config.apiGreenPort}` },
  routingTable: () => table,
  accessLog: config.accessLog,
});
await app.listen({ port: config.port, host: config.host });
log.info({ port: config.port, activeColor }, 'proxy listening');

// Stop accepting, finish every request in flight, then exit: the supervisor stops the APIs after.
onStopSignal(log, async () => {
  // All of pm2's kill_timeout but a margin: the drain is bounded by the stop budget.
  await closeGracefully(app, Math.max(500, config.stopTimeoutMs - 3_500));
  await shutdownTracing();
}, { underPm2: config.pmId !== undefined });
