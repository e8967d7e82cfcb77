// The dashboard: its page, uPlot's two files, and the live per-colour seconds it charts.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { CL_ERR_NOT_FOUND } from '../../lib/errors.js';
import { dashboardPage, dashboardScript } from '../dashboard.js';
import type { AdminApiOptions } from './options.js';

/** uPlot's dist/, found by module resolution (so the dependency checks see it). */
const UPLOT_DIST = dirname(createRequire(import.meta.url).resolve('uplot'));
/** The two files of uPlot the dashboard loads (nothing else is served from node_modules). */
const ASSETS: Record<string, string> = { 'uPlot.iife.min.js': 'application/javascript; charset=utf-8', 'uPlot.min.css': 'text/css; charset=utf-8' };

export async function dashboardRoutes(admin: FastifyInstance, o: AdminApiOptions): Promise<void> {
  admin.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(dashboardPage()));
  admin.get<{ Params: { file: string } }>('/assets/:file', async (req, reply) => {
    if (req.params.file === 'dashboard.js') return reply.type('application/javascript; charset=utf-8').header('cache-control', 'no-store').send(dashboardScript());
    const type = ASSETS[req.params.file];
    if (!type) throw new CL_ERR_NOT_FOUND(`asset ${req.params.file}`);
    return reply.type(type).header('cache-control', 'max-age=86400').send(await readFile(join(UPLOT_DIST, req.params.file)));
  });
  admin.get<{ Querystring: { seconds?: number } }>('/api/live', {
    schema: { querystring: { type: 'object', properties: { seconds: { type: 'integer', minimum: 1, maximum: 120 } } } },
  }, async (req) => ({ seconds: o.live(req.query.seconds ?? 60) }));
}
