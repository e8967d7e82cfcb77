// The fastify instance every Node process of ChangeLens starts from: our pino logger, no
// per-request log lines (the proxy's hot path stays quiet), but every 5xx logged with its cause.
import Fastify, { LogController } from 'fastify';
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
  app.addHook('onError', (req, _reply, err, done) => {
    if ((err.statusCode ?? 500) >= 500) req.log.error({ err, method: req.method, url: req.url }, 'request failed');
    done();
  });
  return app;
}
