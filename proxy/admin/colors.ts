// The built-in API's and worker's controls, per colour: their regressions (the demo's way to make a
// release bad at run time) and the reset of the API's own metrics. They change how a colour behaves, so they are the
// operator's: here, behind the admin token, audited, sent to the colour with the control
// credential that the API demands and the forwarder never passes on from a client.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Color } from '../../lib/config.js';
import { APP_CONTROL_HEADER, appControlToken } from '../../lib/contracts/app-control.js';
import { REGRESSION_TYPES } from '../../lib/contracts/regressions.js';
import { WORKER_REGRESSION_TYPES } from '../../lib/contracts/worker-regressions.js';
import { CL_ERR_COLOR_NOT_RUNNING, CL_ERR_UPSTREAM } from '../../lib/errors.js';
import { actorOf } from './auth.js';
import type { AdminApiOptions } from './options.js';

const CALL_TIMEOUT_MS = 5_000;

const colorParams = { type: 'object', required: ['color'], properties: { color: { type: 'string', enum: ['blue', 'green'] } } } as const;
const typeParams = { ...colorParams, required: ['color', 'type'], properties: { ...colorParams.properties, type: { type: 'string', enum: REGRESSION_TYPES } } } as const;
const workerTypeParams = { ...colorParams, required: ['color', 'type'], properties: { ...colorParams.properties, type: { type: 'string', enum: WORKER_REGRESSION_TYPES } } } as const;

export async function colorRoutes(admin: FastifyInstance, o: AdminApiOptions): Promise<void> {
  const control = { blue: appControlToken(o.token, 'blue'), green: appControlToken(o.token, 'green') };

  /** One call to the colour's API (or its worker); its answer (status and JSON body) is passed back as is. */
  const call = async (color: Color, method: string, path: string, body?: unknown, to: 'api' | 'worker' = 'api'): Promise<{ status: number; body: unknown }> => {
    let res: Response;
    try {
      res = await fetch(`${(to === 'api' ? o.upstreams : o.workerUpstreams)[color]}${path}`, {
        method,
        // The credential only on a change, and only the colour's own: whatever runs there sees it.
        headers: { ...(method === 'GET' ? {} : { [APP_CONTROL_HEADER]: control[color] }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
      });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      // Nothing listens: the colour is stopped (the idle one, usually). A state, not a failure.
      if (e.cause?.code === 'ECONNREFUSED') throw new CL_ERR_COLOR_NOT_RUNNING(`${to}-${color}`);
      throw new CL_ERR_UPSTREAM(`${to}-${color}`, e.cause?.code ?? e.name);
    }
    const text = await res.text();
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // Not the built-in API (another app runs on this colour): its own words, untouched.
      parsed = { message: text.slice(0, 500) };
    }
    return { status: res.status, body: parsed };
  };

  const audited = async (req: FastifyRequest, eventType: string, details: Record<string, unknown>, status: number): Promise<void> => {
    await o.store.audit({ eventType, deploymentId: null, actor: actorOf(req), version: null, details, success: status < 400, error: status < 400 ? null : `HTTP ${status}` }).catch(() => {});
  };

  admin.get<{ Params: { color: Color } }>('/api/colors/:color/regressions', { schema: { params: colorParams } }, async (req, reply) => {
    const r = await call(req.params.color, 'GET', '/api/regression');
    return reply.code(r.status).send(r.body);
  });

  admin.post<{ Params: { color: Color; type: string }; Body: { intensity: number; timeoutRate?: number } }>('/api/colors/:color/regressions/:type', {
    schema: {
      params: typeParams,
      body: { type: 'object', required: ['intensity'], additionalProperties: false, properties: { intensity: { type: 'number' }, timeoutRate: { type: 'number' } } },
    },
  }, async (req, reply) => {
    const { color, type } = req.params;
    const r = await call(color, 'POST', `/api/regression/${type}`, req.body);
    await audited(req, 'regression.set', { color, type, ...req.body }, r.status);
    return reply.code(r.status).send(r.body);
  });

  admin.delete<{ Params: { color: Color; type: string } }>('/api/colors/:color/regressions/:type', { schema: { params: typeParams } }, async (req, reply) => {
    const { color, type } = req.params;
    const r = await call(color, 'DELETE', `/api/regression/${type}`);
    await audited(req, 'regression.clear', { color, type }, r.status);
    return reply.code(r.status).send(r.body);
  });

  // The worker's: the same shape, to the colour's worker (a release's worker that is not the built-in one answers as it likes).
  admin.get<{ Params: { color: Color } }>('/api/colors/:color/worker-regressions', { schema: { params: colorParams } }, async (req, reply) => {
    const r = await call(req.params.color, 'GET', '/api/worker-regression', undefined, 'worker');
    return reply.code(r.status).send(r.body);
  });

  admin.post<{ Params: { color: Color; type: string }; Body: { intensity: number } }>('/api/colors/:color/worker-regressions/:type', {
    schema: {
      params: workerTypeParams,
      body: { type: 'object', required: ['intensity'], additionalProperties: false, properties: { intensity: { type: 'number' } } },
    },
  }, async (req, reply) => {
    const { color, type } = req.params;
    const r = await call(color, 'POST', `/api/worker-regression/${type}`, req.body, 'worker');
    await audited(req, 'worker-regression.set', { color, type, ...req.body }, r.status);
    return reply.code(r.status).send(r.body);
  });

  admin.delete<{ Params: { color: Color; type: string } }>('/api/colors/:color/worker-regressions/:type', { schema: { params: workerTypeParams } }, async (req, reply) => {
    const { color, type } = req.params;
    const r = await call(color, 'DELETE', `/api/worker-regression/${type}`, undefined, 'worker');
    await audited(req, 'worker-regression.clear', { color, type }, r.status);
    return reply.code(r.status).send(r.body);
  });

  admin.post<{ Params: { color: Color } }>('/api/colors/:color/metrics/reset', { schema: { params: colorParams } }, async (req, reply) => {
    const r = await call(req.params.color, 'POST', '/api/metrics/reset');
    await audited(req, 'metrics.reset', { color: req.params.color }, r.status);
    return reply.code(r.status).send(r.body);
  });
}
