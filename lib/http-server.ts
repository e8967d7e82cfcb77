// The fastify instance every Node process of ChangeLens starts from: our pino logger, no
// per-request log lines (the proxy's hot path stays quiet), every 5xx logged with its cause, and
// errors answered as {statusCode, code, error, message, hint}.
import Fastify, { LogController, type FastifyError } from 'fastify';
import { ChangeLensError } from './errors.js';
import type { Logger } from './logger.js';

export interface HttpServerOptions {
  keepAliveTimeout?: number;
  forceCloseConnections?: boolean | 'idle';
}

export function createHttpServer(log: Logger, options: HttpServerOptions = {}) {
  const app = Fastify({
    loggerInstance: log,
    logController: new LogController({ disableRequestLogging: true }),
    // While closing, answer new requests 503 with Connection: close instead of hanging.
    return503OnClosing: true,
    ...options,
  });
  const counter = { inFlight: 0 };
  inFlightOf.set(app, counter);
  app.addHook('onRequest', (_req, reply, done) => {
    counter.inFlight++;
    // 'close' fires once per response, finished or aborted.
    reply.raw.once('close', () => counter.inFlight--);
    done();
  });
  app.setErrorHandler((err: FastifyError | ChangeLensError, req, reply) => {
    if (err instanceof ChangeLensError) {
      if (err.statusCode >= 500) req.log.warn({ code: err.code, url: req.url }, err.message);
      return reply.code(err.statusCode).send({ statusCode: err.statusCode, code: err.code, error: reasonOf(err.statusCode), message: err.message, hint: err.hint });
    }
    const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) {
      // An uncoded error: log its cause, never show it.
      req.log.error({ err, method: req.method, url: req.url }, 'request failed');
      return reply.code(500).send({ statusCode: 500, code: 'CL_ERR_INTERNAL', error: 'Internal Server Error', message: 'internal error', hint: 'see the JSON logs for the cause' });
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

function reasonOf(status: number): string {
  return ({ 400: 'Bad Request', 404: 'Not Found', 409: 'Conflict', 503: 'Service Unavailable', 504: 'Gateway Timeout' } as Record<number, string>)[status] ?? (status >= 500 ? 'Internal Server Error' : 'Bad Request');
}
