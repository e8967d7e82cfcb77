// The admin API under /_changelens/: one fastify plugin per resource behind one auth hook
// (bearer token or the dashboard's session). Every body is validated; an error names the field.
// The CLI (cli/) is a thin client of these routes.
import type { FastifyInstance } from 'fastify';
import { CL_ERR_INVALID_REQUEST, CL_ERR_NOT_FOUND } from '../../lib/errors.js';
import type { createHttpServer } from '../../lib/http-server.js';
import { auditRoutes } from './audit.js';
import { authPlugin } from './auth.js';
import { backupRoutes } from './backups.js';
import { colorRoutes } from './colors.js';
import { previewRoutes } from './previews.js';
import { dashboardRoutes } from './dashboard.js';
import { deploymentRoutes } from './deployments.js';
import { ADMIN_PREFIX, type AdminApiOptions } from './options.js';
import { releaseRoutes } from './releases.js';
import { statusRoutes } from './status.js';

export { ADMIN_PREFIX, type AdminApiOptions, type LiveSecond } from './options.js';
export { parseSince } from './audit.js';
export { bearerMatches } from './auth.js';
export { AuthFailures } from './failed-auth.js';
export { DEPLOY_FIELDS, deployRequest, exportDeployment } from './deployments.js';

/** Scripts only from here (uPlot, the dashboard's own file); styles inline (the page's and uPlot's). */
const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

export async function registerAdminApi(host: Awaited<ReturnType<typeof createHttpServer>>, o: AdminApiOptions): Promise<void> {
  // The plugins are written against fastify's base instance type: they use nothing of the proxy's
  // server but routes, hooks and parsers (its logger type, pino's, is the only difference).
  const app = host as unknown as FastifyInstance;
  await app.register(async (admin) => {
    // Every answer here: no inline or foreign script, never framed, never sniffed, no referrer out.
    admin.addHook('onSend', async (_req, reply, payload) => {
      reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
      reply.header('x-content-type-options', 'nosniff');
      reply.header('x-frame-options', 'DENY');
      reply.header('referrer-policy', 'no-referrer');
      return payload;
    });
    // No NUL anywhere in what a request carries: Postgres refuses it in text and jsonb, which would
    // otherwise surface as a 500 from deep inside a query (found by the admin API's fuzz test).
    admin.addHook('preValidation', async (req) => {
      const where = nulAt({ path: req.params, query: req.query, body: req.body }, '');
      if (where !== null) throw new CL_ERR_INVALID_REQUEST(`${where.slice(1)}: contains a NUL character`);
    });
    // First: its hook guards only the routes registered after it (all of them, below).
    await admin.register(authPlugin, o);
    for (const routes of [dashboardRoutes, statusRoutes, deploymentRoutes, releaseRoutes, auditRoutes, backupRoutes, colorRoutes, previewRoutes]) await admin.register(routes, o);
    // Nothing under /_changelens/ ever reaches an app colour.
    admin.all('/*', async (req) => {
      throw new CL_ERR_NOT_FOUND(`${req.method} ${req.url}`);
    });
  }, { prefix: ADMIN_PREFIX });
}

/** Where in a request's parsed parts (params, query, a JSON body) the first string holding a NUL is, as a dotted path. */
function nulAt(value: unknown, path: string, depth = 0): string | null {
  if (typeof value === 'string') return value.includes('\u0000') ? path : null;
  // Only what JSON and query parsing make: plain objects and arrays (an upload's body is a stream).
  if (typeof value !== 'object' || value === null || depth > 64) return null;
  const proto = Object.getPrototypeOf(value) as unknown;
  if (!Array.isArray(value) && proto !== Object.prototype && proto !== null) return null;
  for (const [key, inner] of Object.entries(value)) {
    if (key.includes('\u0000')) return `${path}.${key.replace(/\u0000/g, '\\0')}`;
    const found = nulAt(inner, `${path}.${key}`, depth + 1);
    if (found !== null) return found;
  }
  return null;
}
