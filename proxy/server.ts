// The public server: /healthz, /readyz and /_changelens/ (admin API, metrics) are fastify's; every
// other request goes straight from node:http to the forwarder (forward.ts), which sends it to the
// colour the router picks.
import type { IncomingMessage } from 'node:http';
import { createHttpServer } from '../lib/http-server.js';
import { CL_ERR_UNAUTHORIZED, errorCodeOf, type ChangeLensError } from '../lib/errors.js';
import { createForwarder, type ForwardOptions } from './forward.js';

/** The forwarder's options (routing, recording, retry, hold) and the appliance's own health details. */
export interface ProxyOptions extends ForwardOptions {
  /** `/healthz?all=1`: every service's state, `degraded` when one is not well. */
  healthDetails?: () => Promise<{ status: 'ok' | 'degraded'; [key: string]: unknown }>;
  /** Whether a request may see those details: null when it carries the admin token, else the refusal (401, or 429 past the limit of failures). */
  detailsRefusal?: (req: IncomingMessage) => ChangeLensError | null;
  /** Slow clients' bounds (408 and closed past them); default 10 s for the headers, 5 min for a whole request. */
  clientTimeouts?: { headersMs: number; requestMs: number };
  /** What the proxy itself still lacks to be ready (its rollout state), or null; default always ready. */
  notReady?: () => string | null;
}

/**
 * Headers come in one packet from any real client: 10 s is generous. A whole request, body
 * included, may be a large upload (an artifact) on a slow link: 5 minutes.
 */
const CLIENT_TIMEOUTS = { headersMs: 10_000, requestMs: 300_000 };

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
    clientTimeouts: options.clientTimeouts ?? CLIENT_TIMEOUTS,
    bypass: (req, res) => {
      if (isOwnPath(req)) return false;
      forwarder.handle(req, res);
      return true;
    },
  });

  // Liveness stays trivially cheap; `?all=1` asks for every service's state (for a person or a
  // platform's richer check), still answered 200: liveness must not fail for a degraded dependency.
  // The details name processes, pids and restarts: the operator's, so they need the admin token.
  app.get<{ Querystring: { all?: string } }>('/healthz', async (req) => {
    if (req.query.all !== '1' || !options.healthDetails) return { status: 'ok' };
    const refused = options.detailsRefusal ? options.detailsRefusal(req.raw) : new CL_ERR_UNAUTHORIZED();
    if (refused) throw refused;
    return options.healthDetails();
  });
  app.get('/readyz', async (_req, reply) => {
    const color = options.routingTable().stable;
    const lacking = options.notReady?.() ?? null;
    if (lacking !== null) return reply.code(503).send({ status: 'not ready', upstream: `api-${color}`, reason: lacking });
    try {
      const res = await fetch(`${options.upstreams[color]}/readyz`, { signal: AbortSignal.timeout(UPSTREAM_READY_TIMEOUT_MS) });
      await res.arrayBuffer();
      if (res.ok) return { status: 'ready', upstream: `api-${color}` };
      return reply.code(503).send({ status: 'not ready', upstream: `api-${color}`, reason: `upstream /readyz answered ${res.status}` });
    } catch (err) {
      // The error's code only: its message names internal addresses (connect ECONNREFUSED 127.0.0.1:3001).
      return reply.code(503).send({ status: 'not ready', upstream: `api-${color}`, reason: errorCodeOf(err) });
    }
  });

  app.addHook('onClose', async () => forwarder.close());
  return app;
}
