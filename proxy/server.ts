// The public server: /healthz and /readyz of its own, everything else forwarded to a colour picked
// per request by the router (getUpstream, with `upstream: ''`: the only way @fastify/http-proxy
// honours it). Each request continues the client's trace or starts one here, and the upstream
// request carries it on.
import httpProxy from '@fastify/http-proxy';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AccessLog, Color } from '../lib/config.js';
import { CL_ERR_BAD_PIN } from '../lib/errors.js';
import { createHttpServer } from '../lib/http-server.js';
import type { Logger } from '../lib/logger.js';
import { endSpan, injectInto, loggerFor, SpanKind, startSpanFrom, traceFields, type Context, type Span } from '../lib/tracing.js';
import { COLOR_PIN_HEADER, route, STICKY_COOKIE, type RoutingTable } from './router.js';

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
}

const METRIC_HEADER = 'x-changelens-metric-';

declare module 'fastify' {
  interface FastifyRequest {
    color: Color;
    setSticky: string | null;
    proxySpan: Span | null;
    proxyContext: Context | null;
    /** Where a failed connection to the candidate goes instead (null: no retry for this request). */
    retryColor: Color | null;
    /** The colour that refused the connection, when the request was retried. */
    retriedFrom: Color | null;
    /** What http-proxy handed to reply.from, to send the same request again. */
    proxyTarget: { dest: string; options: object } | null;
  }
}

/** Safe to send twice and carry no body (the first attempt consumed the request stream). */
const RETRYABLE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Failures where the candidate never answered: nothing reached the app, or its socket was dead. */
const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'EPIPE']);

const UPSTREAM_READY_TIMEOUT_MS = 1_000;
const SLOW_REQUEST_MS = 1_000;

export async function buildProxyServer(options: ProxyOptions) {
  const app = createHttpServer(options.log, {
    // Close idle keep-alive sockets at shutdown so draining waits only for requests in flight.
    forceCloseConnections: 'idle',
  });
  const writeAccessLog = accessLogWriter(options.log, options.accessLog);

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

  await app.register(async (proxied) => {
    proxied.decorateRequest('color', 'blue');
    proxied.decorateRequest('setSticky', null);
    proxied.decorateRequest('proxySpan', null);
    proxied.decorateRequest('proxyContext', null);
    proxied.decorateRequest('retryColor', null);
    proxied.decorateRequest('retriedFrom', null);
    proxied.decorateRequest('proxyTarget', null);
    proxied.addHook('onRequest', async (req, reply) => {
      const table = options.routingTable();
      const decision = route(req.headers, table, Math.random);
      if ('error' in decision) {
        throw new CL_ERR_BAD_PIN(decision.error);
      }
      req.color = decision.color;
      // A request the rollout sent to the candidate falls back to the stable colour if the candidate
      // cannot be reached; a pinned one (a preview) must see the candidate's real failure.
      req.retryColor = decision.reason !== 'pin' && decision.color !== table.stable && RETRYABLE_METHODS.has(req.method) ? table.stable : null;
      req.setSticky = decision.setSticky ?? null;
      const { span, ctx } = startSpanFrom(req.headers, `proxy ${req.method}`, SpanKind.SERVER);
      span.setAttribute('changelens.color', decision.color);
      req.proxySpan = span;
      req.proxyContext = ctx;
      // Any line fastify or reply-from logs for this request (an upstream failure) carries the trace.
      // Made on first use: a child logger per request cost ~7 % of the proxy's CPU (bench:proxy
      // profile), and most requests log nothing.
      const base = req.log;
      let traced: typeof base | undefined;
      Object.defineProperty(req, 'log', { configurable: true, enumerable: true, get: () => (traced ??= loggerFor(base, span)), set: (v: typeof base) => { traced = v; } });
      return undefined;
    });
    const measured = options.onMeasured ?? (() => {});
    const reportMetric = options.onMetric ?? (() => {});
    proxied.addHook('onResponse', async (req, reply) => {
      if (!req.proxySpan) return;
      measured(req.color, reply.elapsedTime, reply.statusCode);
      endSpan(req.proxySpan, reply.statusCode);
      writeAccessLog(req, reply);
    });

    const retriedOnStable = options.onRetriedOnStable ?? (() => {});
    await proxied.register(httpProxy, {
      upstream: '',
      prefix: '/',
      // Remember what was sent, so a refused connection can be sent again to another colour.
      handler: (req, reply, dest, replyOptions) => {
        req.proxyTarget = { dest, options: replyOptions };
        return reply.from(dest, replyOptions);
      },
      replyOptions: {
        onError: (reply, { error }) => {
          const req = reply.request as FastifyRequest;
          if (req.retryColor !== null && req.retriedFrom === null && req.proxyTarget && !reply.sent && isConnectFailure(error)) {
            // The judge still sees the candidate fail; the client gets the stable colour's answer.
            measured(req.color, reply.elapsedTime, 502);
            retriedOnStable(req.color);
            req.retriedFrom = req.color;
            req.color = req.retryColor;
            // http-proxy hands the handler a getUpstream fixed to the first choice: choose again.
            return reply.from(req.proxyTarget.dest, { ...req.proxyTarget.options, getUpstream: () => options.upstreams[req.color] });
          }
          return reply.send(error);
        },
        getUpstream: (req) => options.upstreams[(req as FastifyRequest).color],
        rewriteRequestHeaders: (req, headers) => {
          const ctx = (req as FastifyRequest).proxyContext;
          return ctx ? { ...headers, ...injectInto(ctx, {}) } : headers;
        },
        rewriteHeaders: (headers, req) => {
          const r = req as FastifyRequest | undefined;
          const out: Record<string, unknown> = { ...headers, [COLOR_PIN_HEADER]: r?.color };
          if (r?.retriedFrom) out['x-changelens-retried-from'] = r.retriedFrom;
          for (const name in out) {
            if (!name.startsWith(METRIC_HEADER)) continue;
            const value = Number(out[name]);
            const metric = name.slice(METRIC_HEADER.length);
            if (r && Number.isFinite(value) && /^[a-z0-9_]{1,40}$/.test(metric)) reportMetric(r.color, metric, value);
            delete out[name];
          }
          if (r?.setSticky) {
            const sticky = `${STICKY_COOKIE}=${encodeURIComponent(r.setSticky)}; Path=/; HttpOnly; SameSite=Lax; Max-Age=86400`;
            const upstream = headers['set-cookie'];
            out['set-cookie'] = upstream === undefined ? sticky : [...(Array.isArray(upstream) ? upstream : [String(upstream)]), sticky];
          }
          return out as typeof headers;
        },
        // reply-from retries a GET answered 503 up to 10 times by default (and `maxRetriesOn503: 0`
        // reads as 10): that would hide a failing colour's errors from clients and from the judge,
        // and stretch its latency. Never retry here; retrying on the stable colour is the router's call.
        retryDelay: () => null,
      },
      // One request per connection at a time: pipelining inflates throughput and distorts P99.
      // An idle pooled socket is dropped after 4 s, before any app closes it: the built-in API keeps
      // sockets 72 s, Node's default is 5 s. A socket reused just as the app closes it ("other side
      // closed", undici #583/#3141) would fail the request; an idempotent request to a candidate with
      // a shorter timeout is covered by the retry on the stable colour (onError above).
      undici: { connections: 128, pipelining: 1, keepAliveTimeout: 4_000 },
      // reply-from logs two info lines per request otherwise: nothing per request on the hot path.
      disableRequestLogging: true,
    });
  });
  return app;
}

type AccessLogWriter = (req: FastifyRequest, reply: FastifyReply) => void;

/** Chosen once: no per-request `if` when access logging is off. */
function accessLogWriter(log: Logger, mode: AccessLog): AccessLogWriter {
  const write: AccessLogWriter = (req, reply) => {
    const line = { ...traceFields(req.proxySpan!), method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10, color: req.color };
    if (reply.statusCode >= 500) log.warn(line, 'request failed');
    else log.info(line, 'request');
  };
  switch (mode) {
    case 'off': return () => {};
    case 'all': return write;
    case 'errors': return (req, reply) => {
      if (reply.statusCode >= 500 || reply.elapsedTime > SLOW_REQUEST_MS) write(req, reply);
    };
  }
}

function isConnectFailure(error: unknown): boolean {
  for (let e = error as { code?: string; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (e.code && CONNECT_FAILURES.has(e.code)) return true;
  }
  return false;
}
