// The public server: /healthz and /readyz of its own, everything else forwarded to the active
// colour. Weighted routing, pins and the admin API arrive with progressive delivery; the shape
// is already theirs: the upstream is picked per request by getUpstream (with `upstream: ''`,
// the only way @fastify/http-proxy honours it).
import httpProxy from '@fastify/http-proxy';
import type { Color } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import { createHttpServer } from '../lib/http-server.js';

export interface ProxyOptions {
  log: Logger;
  upstreams: Record<Color, string>;
  /** The colour that gets traffic; read per request, swapped whole when routing changes. */
  activeColor: () => Color;
}

const UPSTREAM_READY_TIMEOUT_MS = 1_000;

export async function buildProxyServer(options: ProxyOptions) {
  const app = createHttpServer(options.log, {
    // Close idle keep-alive sockets at shutdown so draining waits only for requests in flight.
    forceCloseConnections: 'idle',
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const color = options.activeColor();
    try {
      const res = await fetch(`${options.upstreams[color]}/readyz`, { signal: AbortSignal.timeout(UPSTREAM_READY_TIMEOUT_MS) });
      await res.arrayBuffer();
      if (res.ok) return { status: 'ready', upstream: `api-${color}` };
      return reply.code(503).send({ status: 'not ready', upstream: `api-${color}`, reason: `upstream /readyz answered ${res.status}` });
    } catch (err) {
      return reply.code(503).send({ status: 'not ready', upstream: `api-${color}`, reason: (err as Error).message });
    }
  });

  await app.register(httpProxy, {
    upstream: '',
    prefix: '/',
    replyOptions: { getUpstream: () => options.upstreams[options.activeColor()] },
    // One request per connection at a time: pipelining inflates throughput and distorts P99.
    undici: { connections: 128, pipelining: 1, keepAliveTimeout: 4_000 },
  });
  return app;
}
