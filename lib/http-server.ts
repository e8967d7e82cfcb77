// The fastify instance every Node process of ChangeLens starts from: our pino logger, no
// per-request log lines (the proxy's hot path stays quiet), every 5xx logged with its cause, and
// errors answered as {statusCode, code, error, message, hint}.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyError } from 'fastify';
import { ChangeLensError, CL_ERR_CLOSING, CL_ERR_INTERNAL, errorBody, reasonOf } from './errors.js';
import type { Logger } from './logger.js';

export interface HttpServerOptions {
  keepAliveTimeout?: number;
  forceCloseConnections?: boolean | 'idle';
  /**
   * Requests it claims (returns true for) never reach fastify: the proxy's hot path, where
   * fastify's routing, hooks and reply object cost more than the forwarding itself.
   */
  bypass?: (req: IncomingMessage, res: ServerResponse) => boolean;
  /**
   * A public server's bounds on slow clients: all headers within `headersMs`, the whole request
   * (body included) within `requestMs`, checked every second (408 and closed past them).
   * Without it, as node's defaults less the request timeout (apps behind the proxy).
   */
  clientTimeouts?: { headersMs: number; requestMs: number };
}

const DEFAULT_KEEP_ALIVE_MS = 72_000;

export function createHttpServer(log: Logger, options: HttpServerOptions = {}) {
  const { bypass, clientTimeouts, ...fastifyOptions } = options;
  const counter = { inFlight: 0 };
  let closing = false;
  const app = Fastify({
    loggerInstance: log,
    logController: new LogController({ disableRequestLogging: true }),
    // While closing, answer new requests 503 with Connection: close instead of hanging.
    return503OnClosing: true,
    ...fastifyOptions,
    // Counting at the node:http level covers both fastify's requests and bypassed ones.
    serverFactory: (handler) => {
      const bounds = clientTimeouts ? { headersTimeout: clientTimeouts.headersMs, requestTimeout: clientTimeouts.requestMs, connectionsCheckingInterval: 1_000 } : {};
      const server = createServer(bounds, (req, res) => {
        counter.inFlight++;
        // 'close' fires once per response, finished or aborted.
        res.once('close', () => counter.inFlight--);
        if (bypass) {
          if (closing) {
            res.writeHead(503, { connection: 'close', 'content-type': 'application/json' }).end(JSON.stringify(errorBody(new CL_ERR_CLOSING())));
            return;
          }
          if (bypass(req, res)) return;
        }
        handler(req, res);
      });
      // What fastify sets on a server it creates itself.
      server.keepAliveTimeout = options.keepAliveTimeout ?? DEFAULT_KEEP_ALIVE_MS;
      if (!clientTimeouts) server.requestTimeout = 0;
      return server;
    },
  });
  inFlightOf.set(app, counter);
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.setErrorHandler((err: FastifyError | ChangeLensError, req, reply) => {
    if (err instanceof ChangeLensError) {
      if (err.statusCode >= 500) req.log.warn({ code: err.code, url: req.url }, err.message);
      // A 503 is temporary by definition: say when to come back.
      if (err.statusCode === 503 && !reply.hasHeader('retry-after')) void reply.header('retry-after', '1');
      return reply.code(err.statusCode).send(errorBody(err));
    }
    const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) {
      // An uncoded error: log its cause, never show it.
      req.log.error({ err, method: req.method, url: req.url }, 'request failed');
      return reply.code(500).send(errorBody(new CL_ERR_INTERNAL()));
    }
    // Validation and other client errors: fastify's message names the field (querystring/limit …).
    return reply.code(status).send({ statusCode: status, code: err.code ?? 'CL_ERR_BAD_REQUEST', error: reasonOf(status), message: err.message });
  });
  return app;
}

const inFlightOf = new WeakMap<object, { inFlight: number }>();

/**
 * Stops accepting, lets the requests in flight finish (up to `deadlineMs`), then closes every
 * connection. Fastify's close alone waits for keep-alive connections that went idle after it
 * began, which a pooling client (the proxy's, a load generator's) keeps open indefinitely.
 */
export async function closeGracefully(app: { close(): PromiseLike<unknown>; server: { closeAllConnections(): void } }, deadlineMs: number): Promise<void> {
  const counter = inFlightOf.get(app);
  const closing = app.close();
  const deadline = Date.now() + deadlineMs;
  while (counter && counter.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  app.server.closeAllConnections();
  await closing;
}
