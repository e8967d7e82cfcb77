// The audit log: every change, by whom, since when.
import type { FastifyInstance } from 'fastify';
import { CL_ERR_INVALID_REQUEST } from '../../lib/errors.js';
import type { AdminApiOptions } from './options.js';

export async function auditRoutes(admin: FastifyInstance, o: AdminApiOptions): Promise<void> {
  admin.get<{ Querystring: { since?: string; limit?: number } }>('/api/audit', {
    schema: { querystring: { type: 'object', properties: { since: { type: 'string' }, limit: { type: 'integer', minimum: 1, maximum: 10_000 } } } },
  }, async (req) => {
    const sinceMs = parseSince(req.query.since ?? '24h', 'querystring/since');
    return { since: new Date(sinceMs).toISOString(), events: await o.store.auditSince(sinceMs, req.query.limit ?? 1000) };
  });
}

/** "90m", "1h", "7d" ago, or an ISO time. */
export function parseSince(value: string, field: string, now = Date.now()): number {
  const rel = /^(\d{1,6})([smhd])$/.exec(value);
  if (rel) return now - Number(rel[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 's' | 'm' | 'h' | 'd'];
  const abs = Date.parse(value);
  if (/^\d{4}-\d{2}-\d{2}/.test(value) && !Number.isNaN(abs)) return abs;
  throw new CL_ERR_INVALID_REQUEST(`${field}: expected a duration like 30m, 1h, 7d or an ISO time, got ${JSON.stringify(value)}`);
}
