// The audit log: every change, by whom, since when.
import type { FastifyInstance } from 'fastify';
import { CL_ERR_INVALID_REQUEST } from '../../lib/errors.js';
import { SINCE_EXPECTED, sinceMs } from '../../lib/since.js';
import type { AdminApiOptions } from './options.js';

export async function auditRoutes(admin: FastifyInstance, o: AdminApiOptions): Promise<void> {
  admin.get<{ Querystring: { since?: string; limit?: number } }>('/api/audit', {
    schema: { querystring: { type: 'object', properties: { since: { type: 'string' }, limit: { type: 'integer', minimum: 1, maximum: 10_000 } } } },
  }, async (req) => {
    const sinceMs = parseSince(req.query.since ?? '24h', 'querystring/since');
    return { since: new Date(sinceMs).toISOString(), events: await o.store.auditSince(sinceMs, req.query.limit ?? 1000) };
  });
}

/** "90m", "1h", "7d" ago, or an ISO time; the error names the field. */
export function parseSince(value: string, field: string, now = Date.now()): number {
  const ms = sinceMs(value, now);
  if (ms === null) throw new CL_ERR_INVALID_REQUEST(`${field}: expected ${SINCE_EXPECTED}, got ${JSON.stringify(value)}`);
  return ms;
}
