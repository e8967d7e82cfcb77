// The demo API a release runs (one copy per colour). Every route has a JSON schema, so bad input
// is a 400 naming the field. Business routes (data, work, jobs) go through the colour's
// regressions and are measured; health, metrics and regression control are not, so a degraded
// colour can still be observed and repaired.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Color } from '../../lib/config.js';
import { APP_CONTROL_HEADER, carriesControlToken } from '../../lib/contracts/app-control.js';
import { JOB_COLOR_HEADER } from '../../lib/contracts/jobs.js';
import { REGRESSION_TYPES, regressionProblem, type RegressionType } from '../../lib/contracts/regressions.js';
import { inTransaction, type Pool } from '../../lib/db.js';
import { CL_ERR_APP_CONTROL, CL_ERR_REGRESSION_INVALID, CL_ERR_TASK_NOT_FOUND } from '../../lib/errors.js';
import { createHttpServer } from '../../lib/http-server.js';
import type { Logger } from '../../lib/logger.js';
import { needs } from '../../lib/dependencies.js';
import { checkDependencies } from '../../lib/readiness.js';
import type { RedisClient } from '../../lib/redis.js';
import { endSpan, loggerFor, SpanKind, startSpanFrom, traceFields, type Context, type Span } from '../../lib/tracing.js';
import { LatencyRecorder } from '../../monitoring/index.js';
import type { RegressionEffects } from './regression-effects.js';
import type { RegressionState } from './regression-state.js';
import { enqueueTask, findTask } from './tasks.js';

export interface ApiDeps {
  color: Color;
  pool: Pool;
  redis: RedisClient;
  log: Logger;
  regressions: RegressionState;
  effects: RegressionEffects;
  /** The control routes' credential (lib/contracts/app-control.ts); without it they refuse everyone. */
  controlToken: string | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    span: Span | null;
    traceContext: Context | null;
  }
}

export function buildApiServer(deps: ApiDeps) {
  const app = createHttpServer(deps.log, {
    // Longer than the proxy pool's idle keep-alive (undici: 4 s), so the proxy never reuses a
    // socket this server is closing ("other side closed").
    keepAliveTimeout: 72_000,
  });
  const metrics = new LatencyRecorder();

  // Every request continues the caller's trace (the proxy's span) and logs with its ids.
  app.decorateRequest('span', null);
  app.decorateRequest('traceContext', null);
  app.addHook('onRequest', async (req) => {
    const { span, ctx } = startSpanFrom(req.headers, `${req.method} ${req.routeOptions.url ?? 'unknown'}`, SpanKind.SERVER);
    span.setAttribute('changelens.color', deps.color);
    req.span = span;
    req.traceContext = ctx;
    req.log = loggerFor(req.log, span);
  });
  app.addHook('onResponse', async (req, reply) => {
    if (req.span) endSpan(req.span, reply.statusCode);
  });

  app.get('/healthz', async () => ({ status: 'ok', color: deps.color }));
  app.get('/readyz', async (_req, reply) => {
    const { ready, postgres, redis } = await checkDependencies(deps.pool, deps.redis);
    // Ready once it applies what every instance of its colour does: the run-time regressions too.
    const following = deps.regressions.following;
    const ok = ready && following;
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ready' : 'not ready', color: deps.color, postgres, redis, regressions: following ? 'following' : 'not read yet' });
  });

  // What changes this colour's behaviour is the operator's: refused (before the body is even read)
  // unless the admin API sent it with the control credential.
  const operatorOnly = async (req: FastifyRequest): Promise<void> => {
    if (!carriesControlToken(req.headers[APP_CONTROL_HEADER], deps.controlToken)) throw new CL_ERR_APP_CONTROL(`${req.method} ${req.routeOptions.url ?? req.url}`);
  };

  // This process's own view of its business requests, since the last reset.
  app.get('/api/metrics', async () => ({ color: deps.color, pid: process.pid, ...metrics.snapshot() }));
  app.post('/api/metrics/reset', { onRequest: operatorOnly }, async () => {
    metrics.reset();
    return { color: deps.color, pid: process.pid, ...metrics.snapshot() };
  });

  const typeParams = {
    type: 'object',
    required: ['type'],
    properties: { type: { type: 'string', enum: REGRESSION_TYPES } },
  } as const;
  app.get('/api/regression', async () => ({ color: deps.color, regressions: deps.regressions.list() }));
  app.post<{ Params: { type: RegressionType }; Body: { intensity: number; timeoutRate?: number } }>('/api/regression/:type', {
    onRequest: operatorOnly,
    schema: {
      params: typeParams,
      body: {
        type: 'object',
        required: ['intensity'],
        additionalProperties: false,
        properties: { intensity: { type: 'number' }, timeoutRate: { type: 'number' } },
      },
    },
  }, async (req) => {
    const { type } = req.params;
    const problem = regressionProblem(type, req.body.intensity, req.body.timeoutRate);
    if (problem) throw new CL_ERR_REGRESSION_INVALID(problem);
    const regressions = await needs('redis', () => deps.regressions.set({ type, intensity: req.body.intensity, ...(req.body.timeoutRate === undefined ? {} : { timeoutRate: req.body.timeoutRate }) }));
    req.log.info({ type, intensity: req.body.intensity }, `regression ${type} on`);
    return { color: deps.color, regressions };
  });
  app.delete<{ Params: { type: RegressionType } }>('/api/regression/:type', { onRequest: operatorOnly, schema: { params: typeParams } }, async (req) => {
    const regressions = await needs('redis', () => deps.regressions.remove(req.params.type));
    req.log.info({ type: req.params.type }, `regression ${req.params.type} off`);
    return { color: deps.color, regressions };
  });

  // Business routes: through the regressions, and measured.
  void app.register(async (business) => {
    business.addHook('preHandler', async () => deps.effects.beforeRequest());
    business.addHook('onResponse', async (_req: FastifyRequest, reply: FastifyReply) => {
      metrics.record(reply.elapsedTime, reply.statusCode >= 500);
    });

    business.get<{ Querystring: { category?: string; limit: number } }>('/api/data', {
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
      await deps.effects.callDownstream();
      const items = await needs('postgres', () => queryItems(deps.pool, req.query, deps.effects.dbCost()));
      return { color: deps.color, count: items.length, items };
    });

    // A call to a downstream dependency that takes `ms` to answer: the slow path that dependency
    // regressions lengthen, and the in-flight request that shutdown tests wait for.
    business.get<{ Querystring: { ms: number } }>('/api/work', {
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
      await deps.effects.callDownstream();
      return { color: deps.color, ms: Math.round(performance.now() - started) };
    });

    business.post<{ Body: { workMs: number; fail: boolean } }>('/api/process', {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            workMs: { type: 'integer', minimum: 0, maximum: 60_000, default: 100 },
            fail: { type: 'boolean', default: false },
          },
        },
      },
    }, async (req, reply) => {
      // The proxy names another colour's worker when jobs are split by weight (it drops a client's header).
      const named = req.headers[JOB_COLOR_HEADER];
      const color: Color = named === 'blue' || named === 'green' ? named : deps.color;
      const id = await enqueueTask(deps.pool, deps.redis, color, { workMs: req.body.workMs, fail: req.body.fail, traceId: traceFields(req.span!).trace_id }, req.traceContext!);
      req.log.info({ taskId: id, workMs: req.body.workMs, jobColor: color }, 'job enqueued');
      return reply.code(202).send({ id, state: 'queued' });
    });

    business.get<{ Params: { id: string } }>('/api/tasks/:id', {
      schema: { params: { type: 'object', required: ['id'], properties: { id: { type: 'string', format: 'uuid' } } } },
    }, async (req) => {
      const task = await needs('postgres', () => findTask(deps.pool, req.params.id));
      if (!task) throw new CL_ERR_TASK_NOT_FOUND(req.params.id);
      return task;
    });
  });

  return app;
}

/**
 * The items query. Under a db regression it runs with index scans off for this transaction only
 * (SET LOCAL: the other colour's queries keep their plans) plus `cost` × 1,000 rows of extra work.
 */
async function queryItems(pool: Pool, q: { category?: string; limit: number }, cost: number): Promise<unknown[]> {
  const where = q.category === undefined ? '' : 'WHERE category = $2';
  const args: unknown[] = q.category === undefined ? [q.limit] : [q.limit, q.category];
  if (cost === 0) {
    return (await pool.query(`SELECT id, category, name, price_cents FROM items ${where} ORDER BY id LIMIT $1`, args)).rows;
  }
  const client = await pool.connect();
  try {
    const slowWhere = `${where ? `${where} AND` : 'WHERE'} (SELECT count(*) FROM generate_series(1, $${args.length + 1}::int * 1000)) >= 0`;
    return await inTransaction(client, async () => (await client.query(`SELECT id, category, name, price_cents FROM items ${slowWhere} ORDER BY id LIMIT $1`, [...args, cost])).rows,
      'BEGIN; SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_indexonlyscan = off');
  } finally {
    client.release();
  }
}
