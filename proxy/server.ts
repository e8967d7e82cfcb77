// The public server: /healthz, /readyz and /_changelens/ (admin API, metrics) are fastify's; every
// other request goes straight from node:http to the forwarder (forward.ts), which sends it to the
// colour the router picks.
import type { IncomingMessage } from 'node:http';
import type { AccessLog, Color } from '../lib/config.js';
import { createHttpServer } from '../lib/http-server.js';
import type { Logger } from '../lib/logger.js';
import { createForwarder, type ForwardOptions } from './forward.js';
import type { RoutingTable } from './router.js';

export interface ProxyOptions {
  log: Logger;
  upstreams: Record<Color, string>;
  /** The current routing table; read per request, swapped whole when routing changes. */
  routingTable: () => RoutingTable;
  accessLog: AccessLog;
  /** Called once per proxied response: the monitor records it into its colour's current slice. */
  onMeasured?: (color: Color, latencyMs: number, statusCode: number) => void;
  /** `/healthz?all=1`: every service's state, `degraded` when one is not well. */
  healthDetails?: () => Promise<{ status: 'ok' | 'degraded'; [key: string]: unknown }>;
  /** A request to the candidate that could not connect was sent to the stable colour instead. */
  onRetriedOnStable?: (from: Color) => void;
  /** An app-reported metric (x-changelens-metric-<name> response header, stripped before the client sees it). */
  onMetric?: (color: Color, name: string, value: number) => void;
  /** While it returns a reason (a restore runs), proxied requests are answered 503 + Retry-After. */
  unavailable?: ForwardOptions['unavailable'];
}

const UPSTREAM_READY_TIMEOUT_MS = 1_000;

/** The appliance's own paths; everything else belongs to the app behind the proxy. */
function isOwnPath(req: IncomingMessage): boolean {
  const url = req.url!;
  if (url.startsWith('/_changelens')) return url.length === 12 || url[12] === '/' || url[12] === '?';
  const path = url.indexOf('?') === -1 ? url : url.slice(0, url.indexOf('?'));
  return path === '/healthz' || path === '/readyz';
}

export async function buildProxyServer(options: ProxyOptions) {
  const forwarder = createForwarder(options);
  const app = createHttpServer(options.log, {
    // Close idle keep-alive sockets at shutdown so draining waits only for requests in flight.
    forceCloseConnections: 'idle',
    bypass: (req, res) => {
      if (isOwnPath(req)) return false;
      forwarder.handle(req, res);
      return true;
    },
  });

  // Liveness stays trivially cheap; `?all=1` asks for every service's state (for a person or a
  // platform's richer check), still answered 200: liveness must not fail for a degraded dependency.
  app.get<{ Querystring: { all?: string } }>('/healthz', async (req) => {
    if (req.query.all !== '1' || !options.healthDetails) return { status: 'ok' };
    return options.healthDetails();
  });
  app.get('/readyz', async (_req, reply) => {
    const color = options.routingTable().stable;
    try {
      const res = await fetch(`${options.upstreams[color]}/readyz`, { signal: AbortSignal.timeout(UPSTREAM_READY_TIMEOUT_MS) });
      await res.arrayBuffer();
      if (res.ok) return { status: 'ready', upstream: `api-${color}` };
      return reply.code(503).send({ status: 'not ready', upstream: `api-${color}`, reason: `upstream /readyz answered ${res.status}` });
    } catch (err) {
      return reply.code(503).send({ status: 'not ready', upstream: `api-${color}`, reason: (err as Error).message });
    }
  });

  app.addHook('onClose', async () => forwarder.close());
  return app;
}
