// Backups: the supervisor takes, verifies and restores them (over its control socket); an outside
// scheduler (a platform's cron, when the container gets no CPU while idle) can POST /api/backups.
import type { FastifyInstance } from 'fastify';
import { CL_ERR_DEPLOYMENT_RUNNING } from '../../lib/errors.js';
import { actorOf } from './auth.js';
import type { AdminApiOptions } from './options.js';

export async function backupRoutes(admin: FastifyInstance, o: AdminApiOptions): Promise<void> {
  admin.get('/api/backups', async () => o.backups.list());
  admin.post<{ Body: { kinds?: Array<'postgres' | 'redis'> } | undefined }>('/api/backups', {
    schema: { body: { type: ['object', 'null'], additionalProperties: false, properties: { kinds: { type: 'array', items: { type: 'string', enum: ['postgres', 'redis'] }, minItems: 1, maxItems: 2, uniqueItems: true } } } },
  }, async (req, reply) => reply.code(201).send(await o.backups.now(req.body?.kinds ?? [], 'manual')));
  admin.post<{ Params: { id: string } }>('/api/backups/:id/verify', async (req) => o.backups.verify(req.params.id));
  admin.post<{ Params: { id: string } }>('/api/backups/:id/restore', async (req) => {
    const running = o.controller.status().deployment;
    if (running) throw new CL_ERR_DEPLOYMENT_RUNNING(running.id, running.version, running.status.phase);
    // Clients are held (503 + Retry-After) from before the first write until the services answer again.
    o.holdTraffic({ reason: `restoring backup ${req.params.id}`, retryAfterSeconds: 30 });
    try {
      const result = await o.backups.restore(req.params.id);
      await o.store.audit({ eventType: 'restore', deploymentId: null, actor: actorOf(req), version: null, details: { backup: req.params.id }, success: true, error: null }).catch(() => {});
      return result;
    } finally {
      o.holdTraffic(null);
    }
  });
}
