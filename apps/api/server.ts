// The demo API a release runs (one copy per colour). Every route has a JSON schema, so bad input
// is a 400 naming the field. Health: /healthz (the process lives), /readyz (Postgres and Redis answer).
import Fastify from 'fastify';
import type { Color } from '../../lib/config.js';
import type { Pool } from '../../lib/db.js';
import type { Logger } from '../../lib/logger.js';
import type { RedisClient } from '../../lib/redis.js';
import { checkDependencies } from '../../lib/readiness.js';

export interface ApiDeps {
  color: Color;
  pool: Pool;
  redis: RedisClient;
  log: Logger;
}

export function buildApiServer(deps: ApiDeps) {
  const app = Fastify({
    loggerInstance: deps.log,
    disableRequestLogging: true,
    // Longer than the proxy pool's idle keep-alive (undici: 4 s), so the proxy never reuses a
    // socket this server is closing ("other side closed").
    keepAliveTimeout: 72_000,
    return503OnClosing: true,
  });

  app.get('/healthz', { schema: { response: { 200: { type: 'object', properties: { status: { type: 'string' }, color: { type: 'string' } } } } } },
    async () => ({ status: 'ok', color: deps.color }));

  app.get('/readyz', async (_req, reply) => {
    const { ready, postgres, redis } = await checkDependencies(deps.pool, deps.redis);
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', color: deps.color, postgres, redis });
  });

  app.get<{ Querystring: { category?: string; limit: number } }>('/api/data', {
    schema: {
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          category: { type: 'string', minLength: 1, maxLength: 64 },
          limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
        },
      },
    },
  }, async (req) => {
    const { category, limit } = req.query;
    const { rows } = category === undefined
      ? await deps.pool.query('SELECT id, category, name, price_cents FROM items ORDER BY id LIMIT $1', [limit])
      : await deps.pool.query('SELECT id, category, name, price_cents FROM items WHERE category = $1 ORDER BY id LIMIT $2', [category, limit]);
    return { color: deps.color, count: rows.length, items: rows };
  });

  return app;
}
