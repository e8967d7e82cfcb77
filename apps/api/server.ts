// The demo API a release runs (one copy per colour). Every route has a JSON schema, so bad input
// is a 400 naming the field. Health: /healthz (the process lives), /readyz (Postgres and Redis answer).
import type { Color } from '../../lib/config.js';
import type { Pool } from '../../lib/db.js';
import type { Logger } from '../../lib/logger.js';
import type { RedisClient } from '../../lib/redis.js';
import { checkDependencies } from '../../lib/readiness.js';
import { createHttpServer } from '../../lib/http-server.js';

export interface ApiDeps {
  color: Color;
  pool: Pool;
  redis: RedisClient;
  log: Logger;
}

export function buildApiServer(deps: ApiDeps) {
  const app = createHttpServer(deps.log, {
    // Longer than the proxy pool's idle keep-alive (undici: 4 s), so the proxy never reuses a
    // socket this server is closing ("other side closed").
    keepAliveTimeout: 72_000,
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

  // A call to a downstream dependency that takes `ms` to answer: the slow path that dependency
  // regressions lengthen, and the in-flight request that shutdown tests wait for.
  app.get<{ Querystring: { ms: number } }>('/api/work', {
    schema: {
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: { ms: { type: 'integer', minimum: 0, maximum: 10_000, default: 0 } },
      },
    },
  }, async (req) => {
    const started = performance.now();
    await new Promise((resolve) => setTimeout(resolve, req.query.ms));
    return { color: deps.color, ms: Math.round(performance.now() - started) };
  });

  return app;
}
